/*! ttedge browser SDK; see README, "Browser SDK" */
(() => {
  const w = window, d = document, T = w.ttedge;
  if (T?.loaded) return;
  const warned = {}, own = {}, gcm = {}, NAMES = {}, src = d.currentScript?.src;
  let cfg, early = [], pending = [], user = {}, clear = {}, chain = Promise.resolve();
  let busy, timer, tries = 0, pixel, pixelFailed, dl, seen = 0, lastUrl, lastHref, ref = d.referrer;

  // Never throw into the page; warn once per kind.
  const warn = (kind, ...msg) => warned[kind] || ((warned[kind] = 1), console.warn("ttedge:", ...msg));
  const safe = (f) => (...a) => { try { return f(...a); } catch (e) { warn(0, e); } };
  const later = (f) => (chain = chain.then(f).catch((e) => warn(0, e)));
  const after = (o, k, f) => {
    const original = o[k];
    o[k] = function () { const r = original.apply(this, arguments); f(); return r; };
  };
  const isObj = (v) => v && typeof v == "object" && !Array.isArray(v);
  const str = (v) => ((typeof v == "string" || typeof v == "number") && (v = ("" + v).trim()) ? v : undefined);
  const num = (v) => (v === "" || v == null || !isFinite((v = +v)) ? undefined : v);
  const pick = (o, ...keys) => keys.map((k) => o[k]).find((v) => v != null && v !== "");
  const store = (area, key, value) => {
    try {
      (area = w[area + "Storage"]), (key = "ttedge:" + key);
      if (value === undefined) return JSON.parse(area.getItem(key));
      value ? area.setItem(key, JSON.stringify(value)) : area.removeItem(key);
    } catch {} // storage off or full
  };
  const cookie = (name) => (d.cookie.match("(^|; )" + name + "=([^;]*)") || [])[2];
  const uuid = () => crypto.randomUUID?.() || Date.now().toString(36) + Math.random().toString(36);

  // Event names as the Worker maps them (DESIGN.md).
  ("Pageview page_view page|ViewContent view_item product_viewed|ClickButton click select_item product_clicked|" +
    "Search view_search_results products_searched|AddToWishlist product_added_to_wishlist|AddToCart product_added|" +
    "InitiateCheckout begin_checkout checkout_started|AddPaymentInfo payment_info_entered|PlaceAnOrder place_order " +
    "order_placed|CompletePayment purchase order_completed|CompleteRegistration sign_up signed_up|Lead generate_lead|" +
    "SubmitForm form_submitted|Contact callback_started|Download file_download download_link_clicked|Subscribe " +
    "subscription_created|StartTrial trial_started|Schedule|FindLocation|CustomizeProduct|SubmitApplication|ApplicationApproval")
    .split("|").forEach((names) => {
      const [tiktok, ...aliases] = names.split(" ");
      for (const n of [tiktok.toLowerCase(), tiktok.replace(/\B[A-Z]/g, "_$&").toLowerCase(), ...aliases]) NAMES[n] = tiktok;
    });
  delete NAMES.place_an_order;
  const tiktokName = (name) => {
    const n = (name = name.trim()).toLowerCase().replace(/[ -]/g, "_").replace(/^dl_/, "");
    return cfg.eventMap?.[n] ||
      (/^(identify|session_start|page_hidden|consent_update|gtm\..*)$/.test(n) ? "" : NAMES[n] || name.replace(/^dl_/i, ""));
  };

  // ttedge('consent') wins over Google Consent Mode.
  const consent = () => {
    const c = { ...gcm };
    if (c.ad_storage == "granted" && c.ad_user_data == "granted") c.sendable_to_ads = true;
    return Object.assign(c, own);
  };
  const setConsent = (to, given) => {
    if (!isObj(given)) return warn("consent", "consent needs an object");
    for (const k of ["sendable_to_ads", "ad_storage", "ad_user_data"]) {
      const v = given[k];
      if (k[0] == "s" ? typeof v == "boolean" : /^(granted|denied)$/.test(v)) to[k] = v;
      else if (k in given) warn(k, "bad consent", k, v);
    }
    if (consent().ad_storage == "denied") store("session", "c", 0);
  };

  // Hashed as the Worker does; kept for the session.
  const HEX = /^[0-9a-f]{64}$/i, HASHED = { email: "email_hash", phone: "phone_hash", external_id: "external_id" };
  const sha256 = async (text) => [...new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)))]
    .map((b) => (b + 256).toString(16).slice(1)).join("");
  const identify = (data) => isObj(data) ? later(async () => {
    for (const k in HASHED) {
      let v = str(data[k] || (k == "phone" && data.phone_number));
      if (v && !HEX.test(v)) v = k == "email" ? v.toLowerCase() : k == "phone" ? v.replace(/\D/g, "") : v;
      if (v) (clear[k] = v), (user[HASHED[k]] = HEX.test(v) ? v.toLowerCase() : crypto.subtle && (await sha256(v)));
    }
    store("session", "u", user);
  }) : warn("identify", "identify needs an object");

  // A wrong type would refuse a whole batch.
  const item = (i) => isObj(i) && {
    content_id: str(pick(i, "content_id", "product_id", "item_id", "id", "sku")),
    content_name: str(pick(i, "content_name", "name", "item_name")),
    content_category: str(pick(i, "content_category", "category", "item_category")),
    brand: str(pick(i, "brand", "item_brand")),
    quantity: num(i.quantity) >= 0 ? Math.round(i.quantity) : undefined,
    price: num(i.price),
  };
  const properties = (p) => {
    let items = pick(p, "contents", "items", "line_items", "products") || (p.content_id != null && [p]), currency = str(p.currency);
    items = Array.isArray(items) && items.length ? items.map(item).filter(Boolean) : undefined;
    if (currency && !/^[a-z]{3}$/i.test(currency)) currency = void warn("currency", "bad currency", currency);
    const query = str(pick(p, "query", "search_term")), order_id = str(pick(p, "order_id", "transaction_id"));
    return { value: num(p.value), currency, order_id, query, contents: items, content_type: items && "product" };
  };

  const track = (name, props, opts) => {
    if (!(name = str(name))) return warn("name", "track needs an event name");
    if (props != null && !isObj(props)) warn("props", "properties must be an object");
    const p = properties(isObj(props) ? props : {}), tiktok = tiktokName(name), c = consent();
    // Order ids: a reloaded thank-you page counts once.
    const id = str(isObj(opts) && opts.event_id) || (p.order_id && tiktok ? tiktok + "-" + p.order_id : uuid());
    const ev = { event: name, event_id: id, timestamp: Date.now(), url: location.href, referrer: ref, properties: p, consent: c };
    // Same name and event_id: TikTok dedupes.
    if (cfg.mirrorToPixel && tiktok && c.sendable_to_ads !== false && w.ttq?.track)
      ttq.track(tiktok, JSON.parse(JSON.stringify(p)), { event_id: id });
    later(() => {
      const ttclid = new URLSearchParams(location.search).get("ttclid"), storage = c.ad_storage != "denied";
      if (ttclid && storage) store("session", "c", ttclid);
      ev.context = { ttp: storage ? cookie("_ttp") : null, ttclid: ttclid || store("session", "c") || cookie("ttclid") };
      if (c.ad_user_data != "denied" && Object.keys(user).length)
        (ev.h = { ...user }), (ev.user_data = cfg.hashPII && crypto.subtle ? ev.h : { ...user, ...clear });
      enqueue(ev);
    });
  };

  const page = (force) => {
    const url = location.href.split("#")[0];
    if (url == lastUrl && !force) return;
    if (lastUrl && url != lastUrl) ref = lastHref;
    (lastUrl = url), (lastHref = location.href);
    track("page_view");
  };

  // gtag() pushes its arguments.
  const fromDataLayer = (m) => {
    if (!m || typeof m != "object") return;
    if (typeof m[0] == "string") {
      if (m[0] == "consent" && isObj(m[2]) && !m[2].region) setConsent(gcm, m[2]);
      if (m[0] == "event") fromDataLayer({ ...m[2], event: m[1] });
    } else if (str(m.event) && !/^gtm\./.test(m.event) && !(cfg.autoPageview && tiktokName("" + m.event) == "Pageview"))
      track("dl_" + m.event, { ...m, ...m.ecommerce }, m);
  };
  const drain = () => { while (seen < dl.length) safe(fromDataLayer)(dl[seen++]); };

  const isPixel = (s) => s && s.includes(cfg?.pixelScript || "analytics.tiktok.com");
  addEventListener("error", (e) => isPixel(e.target.src) && (pixelFailed = 1), true);
  const checkPixel = () => {
    const s = [...d.scripts].find((s) => isPixel(s.src));
    if (!s) return w.ttq ? "loaded" : "absent";
    // Resource timing lists failed loads too: ask for the script again (from the cache if it came).
    return pixelFailed ? "blocked" : fetch(s.src, { mode: "no-cors", cache: "force-cache" }).then(() => "loaded", () => "blocked");
  };

  const endpoint = () => {
    const e = cfg.endpoint || (src && new URL(src).origin);
    return e && e.replace(/\/*(collect)?\/*$/, "") + "/collect";
  };
  const kept = (change) => {
    const next = change(store("local", "q") || []).slice(-50);
    store("local", "q", next.length && next);
  };
  const enqueue = (ev) => {
    const { h, ...copy } = ev;
    if (h) copy.user_data = h;
    pending.push(ev);
    kept((list) => [...list, copy]);
    timer = timer || setTimeout(flush, cfg.batchMs ?? 1e3);
  };
  const body = (events) => JSON.stringify(events[1] ? { batch: events } : events[0], (k, v) => (k == "h" ? undefined : v));
  const take = () => {
    let n = 0, size = 0;
    while (n < 50 && n < pending.length && (size += body([pending[n]]).length) < 5e4) n++;
    const c = consent(), batch = pending.splice(0, n || 1);
    for (const ev of batch) {
      ev.context.pixel ||= pixel;
      if (!Object.keys(ev.consent).length) ev.consent = c;
      if (ev.consent.ad_user_data == "denied") delete ev.user_data;
    }
    return batch;
  };
  const flush = () => (clearTimeout(timer), (timer = 0), send().catch((e) => warn(0, e, (busy = 0))));
  const send = async () => {
    const url = cfg && endpoint();
    if (busy || !url || !pending.length) return;
    busy = 1;
    if (!/^(loaded|blocked)$/.test(pixel)) pixel = (await Promise.race([checkPixel(), new Promise((r) => setTimeout(r, 3e3))])) || pixel;
    if (!pending.length) return (busy = 0);
    const batch = take(), b = body(batch);
    let res, answer = {};
    try {
      res = await fetch(url, { method: "POST", body: b, credentials: "include", keepalive: b.length < 6e4, headers: { "Content-Type": "text/plain" } });
      answer = await res.json().catch(() => answer);
    } catch {} // offline
    busy = 0;
    if (!res || res.status >= 500 || res.status == 429) {
      pending.unshift(...batch);
      return (timer = setTimeout(flush, Math.min(3e4, 1e3 * 2 ** tries++)));
    }
    tries = 0;
    for (const r of answer.events || []) if (r.status == "rejected") warn(r.reason, "event rejected:", r.reason);
    if (res.status != 202) warn(res.status, "endpoint answered", res.status, answer.error?.message);
    kept((list) => list.filter((e) => !batch.some((s) => s.event_id == e.event_id)));
    if (pending.length) flush();
  };
  // Stored until a later page's request confirms them.
  const beacon = () => { const url = cfg && endpoint(); while (url && pending.length) navigator.sendBeacon(url, body(take())); };

  const api = {
    init(options) {
      if (cfg) return warn("init", "init called twice");
      cfg = { autoPageview: true, hashPII: true, ...options };
      if (!endpoint()) warn("endpoint", "init needs {endpoint}");
      Object.assign(user, store("session", "u"));
      // Unsent events of earlier pages (< 7 days).
      const old = (store("local", "q") || []).filter((e) => e?.context && e.consent && Date.now() - e.timestamp < 6048e5);
      if (old.length) pending.push(...old), (timer = setTimeout(flush));
      early.forEach((a) => ttedge(...a));
      early = 0;
      // After the snippet's own calls (consent, identify):
      later(() => {
        const name = cfg.dataLayer ?? "dataLayer";
        if (name) after((dl = w[name] = w[name] || []), "push", drain), drain(), setInterval(drain, 1e3);
        if (cfg.autoPageview) after(history, "pushState", safe(page)), addEventListener("popstate", safe(() => page())), page();
      });
    },
    track,
    page: () => page(1),
    identify,
    consent: (c) => setConsent(own, c),
    // Logout: forget here, and have the Worker erase what it linked to this browser's _ttp.
    reset: () => {
      const url = endpoint(), ttp = cookie("_ttp");
      (user = {}), (clear = {}), store("session", "u", 0);
      if (url) later(() => fetch(url + "/reset", { method: "POST", body: JSON.stringify(ttp ? { ttp } : {}), credentials: "include", keepalive: true, headers: { "Content-Type": "text/plain" } }));
    },
    flush: () => later(flush),
  };

  function ttedge(command, ...args) {
    try {
      if (!cfg && command != "init") return void early.push([command, ...args]);
      return api.hasOwnProperty(command) ? api[command](...args) : warn(command, "unknown command", command);
    } catch (e) {
      warn(0, e);
    }
  }
  ttedge.loaded = 1;
  w.ttedge = ttedge;
  addEventListener("visibilitychange", safe(() => cfg && d.hidden && flush()));
  addEventListener("pagehide", safe(beacon));
  (T?.q || []).forEach((a) => ttedge(...a));
})();
