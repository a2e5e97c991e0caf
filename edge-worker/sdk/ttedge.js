/* ttedge browser snippet: ttedge('track', name, properties, options) posts to /collect. */
(function (w) {
  "use strict";
  var script = document.currentScript;
  var endpoint = (script && script.src ? new URL(script.src).origin : "") + "/collect";
  var queue = (w.ttedge && w.ttedge.q) || [];
  function id() {
    return (w.crypto && crypto.randomUUID) ? crypto.randomUUID() : String(Date.now()) + Math.random();
  }
  function send(event) {
    try {
      fetch(endpoint, {
        method: "POST", credentials: "include", keepalive: true,
        headers: { "Content-Type": "text/plain" }, body: JSON.stringify(event)
      }).catch(function () {});
    } catch (e) { /* never break the page */ }
  }
  function ttedge(command, name, properties, options) {
    try {
      if (command === "init" && name && name.endpoint) { endpoint = name.endpoint.replace(/\/$/, "") + "/collect"; return; }
      if (command !== "track" || typeof name !== "string") { console.warn("ttedge: unknown call", command); return; }
      send({
        event: name, event_id: (options && options.event_id) || id(), timestamp: Date.now(),
        url: location.href, referrer: document.referrer || null, properties: properties || {}
      });
    } catch (e) { console.warn("ttedge:", e); }
  }
  w.ttedge = ttedge;
  for (var i = 0; i < queue.length; i++) ttedge.apply(null, queue[i]);
})(window);
