// The dashboard's buttons. Every answer is shown with textContent, never as HTML.
'use strict';
const api = h => '/admin/api/destinations/' + encodeURIComponent(h);

// POSTs JSON with the header the CSRF guard asks for; throws the API's error message.
async function post(url, body) {
  const r = await fetch(url, {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'Content-Type': 'application/json', 'X-Requested-With': 'ttedge' },
    body: JSON.stringify(body),
  });
  let j = null;
  try { j = await r.json(); } catch (e) { /* not JSON */ }
  if (!r.ok) throw new Error((j && j.error && j.error.message) || 'HTTP ' + r.status);
  return j || {};
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text != null) e.textContent = text;
  return e;
}

function flash(text, cls) {
  const f = document.getElementById('flash');
  f.className = 'flash ' + (cls || '');
  f.textContent = text;
}

function showTest(out, r) {
  const head = el('div');
  head.append(el('span', 'badge ' + (r.ok ? 'ok' : 'bad'), r.ok ? 'OK' : 'Failed'), ' ',
    r.message || '', el('span', 'muted', ' · ' + r.latency_ms + ' ms · HTTP ' + r.http_status +
      (r.tiktok_code != null ? ' · code ' + r.tiktok_code : '')));
  out.replaceChildren(head);
  if (r.hint) out.append(el('div', 'warn', r.hint));
  const q = r.emq;
  if (q) {
    out.append(el('div', null, 'EMQ ' + q.score + ' (' + String(q.grade || '').replace(/_/g, ' ') + ')'));
    const ul = el('ul');
    for (const c of q.coaching || []) ul.append(el('li', null, c.factor + ' +' + c.gain + ': ' + c.advice));
    if (ul.firstChild) out.append(ul);
  }
}

document.addEventListener('click', async ev => {
  const b = ev.target.closest('button[data-action]');
  if (!b) return;
  const h = b.dataset.host, a = b.dataset.action;
  if (a === 'replay' && !b.dataset.eventId && !confirm('Replay every parked event of ' + h + '?')) return;
  b.disabled = true;
  try {
    if (a === 'test') {
      const out = document.getElementById('test-result-' + h);
      out.replaceChildren(el('span', 'muted', 'Sending a test event…'));
      try { showTest(out, await post(api(h) + '/test', {})); }
      catch (e) { out.replaceChildren(el('span', 'bad', e.message)); }
    } else if (a === 'live') {
      const want = b.dataset.live !== 'true';
      const d = await post(api(h) + '/live', { live: want });
      b.dataset.live = String(d.live ?? want);
      b.setAttribute('aria-checked', b.dataset.live);
      location.reload();
    } else if (a === 'replay') {
      const id = b.dataset.eventId;
      const r = await post(api(h) + '/parked/replay', id ? { event_ids: [id] } : {});
      const nf = r.not_found || [];
      flash('Replayed ' + r.replayed + (nf.length ? '; not found: ' + nf.join(', ') : ''), 'ok');
      setTimeout(() => location.reload(), 900);
    }
  } catch (e) {
    flash(e.message, 'bad');
  } finally {
    b.disabled = false;
  }
});
