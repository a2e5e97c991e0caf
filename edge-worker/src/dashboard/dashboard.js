// The dashboard's buttons and the destination form. Answers are shown with textContent, never as HTML.
'use strict';
const api = h => '/admin/api/destinations/' + encodeURIComponent(h);
const home = h => '/admin' + (h ? '?host=' + encodeURIComponent(h) : '');
const $ = id => document.getElementById(id);

// Sends JSON with the header the CSRF guard asks for: {ok, status, body}.
async function call(method, url, body) {
  const r = await fetch(url, {
    method,
    credentials: 'same-origin',
    headers: { 'Content-Type': 'application/json', 'X-Requested-With': 'ttedge' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let j = null;
  try { j = await r.json(); } catch (e) { /* not JSON */ }
  return { ok: r.ok, status: r.status, body: j || {} };
}
const why = r => (r.body.error && r.body.error.message) || 'HTTP ' + r.status;

// call(), throwing the API's error message.
async function send(method, url, body) {
  const r = await call(method, url, body);
  if (!r.ok) throw new Error(why(r));
  return r.body;
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text != null) e.textContent = text;
  return e;
}

function flash(text, cls) {
  const f = $('flash');
  f.className = 'flash ' + (cls || '');
  f.textContent = text;
}

// As the server renders the last test on the card.
function showTest(out, r) {
  const head = el('div');
  head.append(el('span', 'badge ' + (r.ok ? 'ok' : 'bad'), r.ok ? 'OK' : 'Failed'), ' ' + (r.message || ''));
  out.replaceChildren(head, el('div', 'muted', r.latency_ms + ' ms · HTTP ' + r.http_status +
    ' · TikTok code ' + (r.tiktok_code ?? '–')));
  if (r.hint) out.append(el('div', 'warn', r.hint));
  const q = r.emq;
  if (q) {
    out.append(el('div', null, 'EMQ ' + q.score + ' (' + String(q.grade || '').replace(/_/g, ' ') + ')'));
    const ul = el('ul');
    for (const c of q.coaching || []) ul.append(el('li', null, c.factor + ' +' + c.gain + ': ' + c.advice));
    if (ul.firstChild) out.append(ul);
  }
}

// A refusal next to the field its JSON path names (site_origins[1] → Site origins).
function showError(f, path, text) {
  const m = /^([a-z_]+)(?:\[(\d+)\]|\.(.+))?$/.exec(path || '') || [];
  const slot = (m[1] && $('e-' + m[1])) || $('e-form');
  slot.textContent = (m[2] ? 'Line ' + (+m[2] + 1) + ': ' : m[3] ? m[3] + ': ' : '') + text;
  const input = slot.id !== 'e-form' && f.elements[m[1]];
  if (input) {
    input.setAttribute('aria-invalid', 'true');
    const d = input.closest('details');
    if (d) d.open = true;
    input.focus();
  }
}

// Save: the form as the PUT's settings. A new destination is not live; an edit keeps the
// switch as it is, and an empty token keeps the stored one.
async function save(f) {
  const E = f.elements, v = n => E[n].value.trim();
  const lines = n => v(n).split('\n').map(s => s.trim()).filter(Boolean);
  for (const p of f.querySelectorAll('.err')) p.textContent = '';
  for (const i of f.querySelectorAll('[aria-invalid]')) i.removeAttribute('aria-invalid');
  const host = v('host').toLowerCase();
  const body = {
    pixel_id: v('pixel_id'), test_event_code: v('test_event_code'),
    baseline_pixel_code: v('baseline_pixel_code'), live: f.dataset.live === 'true',
    offline_event_set_id: v('offline_event_set_id'),
    site_origins: lines('site_origins'), cookie_domain: v('cookie_domain'), event_overrides: {},
    custom_events: E.custom_events.checked, conversion_events: lines('conversion_events'),
    cod_checkout_events: lines('cod_checkout_events'),
  };
  for (const n of ['access_token', 'webhook_secret']) if (v(n)) body[n] = v(n);
  // Digits go as numbers, anything else as typed: the API names what is wrong.
  for (const n of ['rate_limit_per_minute', 'cod_days', 'identity_days']) {
    if (v(n)) body[n] = /^\d+$/.test(v(n)) ? Number(v(n)) : v(n);
  }
  let bad = host ? null : ['host', 'Enter the host this Worker is routed on, such as t.shop.com.'];
  lines('event_overrides').forEach((l, i) => {
    const p = l.split('=').map(s => s.trim());
    if (p.length !== 2 || !p[0] || !p[1]) bad = bad || ['event_overrides[' + i + ']', 'write incoming name = TikTok name'];
    else body.event_overrides[p[0]] = p[1];
  });
  const button = f.querySelector('[type=submit]');
  button.disabled = true;
  try {
    if (!bad && f.dataset.mode === 'add') {
      const r = await call('GET', api(host));
      if (r.ok) bad = ['host', host + ' already has a destination: use its Edit button.'];
      else if (r.status !== 404) bad = [r.body.error && r.body.error.path, why(r)];
    }
    if (!bad) {
      const r = await call('PUT', api(host), body);
      if (r.ok) { location.href = home(host); return; }
      bad = [r.body.error && r.body.error.path, why(r)];
    }
  } catch (e) {
    bad = ['', e.message];
  } finally {
    button.disabled = false;
  }
  E.access_token.value = E.webhook_secret.value = '';
  showError(f, bad[0], bad[1]);
}

const form = $('destination-form');
if (form) form.addEventListener('submit', ev => { ev.preventDefault(); save(form); });

// Import: a pixel baseline for the shown destination; a refusal goes under its field.
const baseline = $('baseline-form');
if (baseline) baseline.addEventListener('submit', async ev => {
  ev.preventDefault();
  const E = baseline.elements, n = E.pixel_conversions.value.trim();
  for (const p of baseline.querySelectorAll('.err')) p.textContent = '';
  try {
    const r = await call('POST', api(baseline.dataset.host) + '/baseline',
      { from: E.from.value.trim(), to: E.to.value.trim(), pixel_conversions: /^\d+$/.test(n) ? Number(n) : n });
    if (r.ok) return location.reload();
    ($('eb-' + (r.body.error && r.body.error.path)) || $('eb-form')).textContent = why(r);
  } catch (e) { $('eb-form').textContent = e.message; }
});

async function copy(b) {
  const pre = $(b.dataset.target);
  let done = false;
  try { await navigator.clipboard.writeText(pre.textContent); done = true; } catch (e) {
    const r = document.createRange(), s = getSelection();
    r.selectNodeContents(pre);
    s.removeAllRanges();
    s.addRange(r);
    try { done = document.execCommand('copy'); } catch (e2) { /* selected: Ctrl+C */ }
  }
  b.textContent = done ? 'Copied' : 'Press Ctrl+C';
  setTimeout(() => { b.textContent = 'Copy'; }, 2000);
}

document.addEventListener('click', async ev => {
  const b = ev.target.closest('button[data-action]');
  if (!b) return;
  const h = b.dataset.host, a = b.dataset.action;
  if (a === 'replay' && !b.dataset.eventId && !confirm('Replay every parked event of ' + h + '?')) return;
  if (a === 'delete' && !confirm('Delete the destination ' + h + '? Its settings and token are removed.')) return;
  if (a === 'live' && b.dataset.live !== 'true' && b.dataset.tested !== 'true' &&
    !confirm(h + ' has never passed a connection test. Turn it live anyway?')) return;
  b.disabled = true;
  try {
    if (a === 'test') {
      const out = $('test-result-' + h);
      out.replaceChildren(el('span', 'muted', 'Sending a test event…'));
      try {
        const r = await send('POST', api(h) + '/test', {});
        showTest(out, r);
        if (r.ok) for (const s of document.querySelectorAll('[data-action=live]')) if (s.dataset.host === h) s.dataset.tested = 'true';
      } catch (e) { out.replaceChildren(el('span', 'bad', e.message)); }
    } else if (a === 'live') {
      const want = b.dataset.live !== 'true';
      const d = await send('POST', api(h) + '/live', { live: want });
      b.dataset.live = String(d.live ?? want);
      b.setAttribute('aria-checked', b.dataset.live);
      location.reload();
    } else if (a === 'delete') {
      await send('DELETE', api(h));
      location.href = home();
    } else if (a === 'copy') {
      await copy(b);
    } else if (a === 'replay') {
      const id = b.dataset.eventId;
      const r = await send('POST', api(h) + '/parked/replay', id ? { event_ids: [id] } : {});
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

// Offline upload: the CSV goes to …/offline in chunks of whole records, each after the
// header line. A line ends with LF, CRLF or a lone CR (as the Worker counts file lines); one
// inside quotes is no boundary. A chunk stays under the endpoint's 1,000 rows and 1 MiB
// (300,000 UTF-16 units are at most 900 KB of UTF-8). Blank lines are no rows.
const ROWS = 1000, UNITS = 300000;
function chunks(text) {
  if (text.charCodeAt(0) === 0xFEFF) text = text.slice(1);
  const parts = [];
  let head = null, start = 0, first = 1, n = 0, prev = 0, prevLine = 1, line = 1, q = false, blank = true, total = 0;
  const cut = (to, rows) => { parts.push({ body: text.slice(start, to), first, rows }); };
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 34) q = !q;
    if (c !== 10 && c !== 13 && c !== 32) blank = false;
    if (c !== 10 && (c !== 13 || text.charCodeAt(i + 1) === 10)) continue;
    line++;
    if (q) continue;
    if (head === null) { head = text.slice(0, i + 1); start = prev = i + 1; first = prevLine = line; blank = true; continue; }
    if (blank) continue;
    blank = true;
    // This record would make the chunk too big: the chunk ends before it.
    if (n && i + 1 - start + head.length > UNITS) { cut(prev, n); start = prev; first = prevLine; n = 0; }
    n++; total++; prev = i + 1; prevLine = line;
    if (n === ROWS) { cut(prev, n); start = prev; first = line; n = 0; }
  }
  if (head === null) head = text + '\n';
  else if (!blank) { n++; total++; }
  if (n) cut(text.length, n);
  return { head, parts, total };
}

// POST with retries: 429, 5xx and network errors wait 0.5, 1, 2 … 16 s (or Retry-After).
async function postChunk(url, body, retrying) {
  for (let wait = 500; ; wait *= 2) {
    let r = null, failure;
    try {
      r = await fetch(url, { method: 'POST', credentials: 'same-origin', body,
        headers: { 'Content-Type': 'text/csv', 'X-Requested-With': 'ttedge' } });
    } catch (e) { if (wait > 16000) throw e; failure = e.message; }
    if (r && r.status !== 429 && r.status < 500) {
      let j = {};
      try { j = await r.json(); } catch (e) { /* not JSON */ }
      if (!r.ok) throw new Error(why({ status: r.status, body: j }));
      return j;
    }
    if (wait > 16000) throw new Error('HTTP ' + r.status + ' after retries');
    const after = (r && +r.headers.get('Retry-After')) * 1000 || wait;
    retrying((r ? 'HTTP ' + r.status : failure) + ', retrying in ' + after / 1000 + ' s');
    await new Promise(f => setTimeout(f, after));
  }
}

async function upload(f) {
  const file = f.elements.file.files[0], offset = f.elements.utc_offset.value.trim();
  const bar = f.querySelector('progress'), status = f.querySelector('.status'), list = f.querySelector('.rejected');
  const button = f.querySelector('[type=submit]');
  if (!file) { status.className = 'status bad'; status.textContent = 'Choose a CSV file first.'; return; }
  const { head, parts, total } = chunks(await file.text());
  const c = { sent: 0, total, accepted: 0, duplicates: 0, rejected: 0, retries: 0 };
  let live = true;
  const show = (done, error, note) => {
    Object.assign(f.dataset, c, { state: error ? 'failed' : done ? 'done' : 'sending' });
    bar.max = Math.max(total, 1);
    bar.value = c.sent;
    status.className = 'status ' + (error ? 'bad' : '');
    status.textContent = (error || note ? (error || note) + ' · ' : done ? 'Done · ' : '') + 'Rows sent ' + c.sent + ' of ' + total +
      ' · accepted ' + c.accepted + ' · duplicates ' + c.duplicates + ' · rejected ' + c.rejected +
      (live ? '' : ' · not live: stored and counted, not sent to TikTok');
  };
  list.replaceChildren();
  bar.hidden = false;
  button.disabled = true;
  show(false);
  try {
    for (const p of parts) {
      const q = '?first_line=' + p.first + (offset ? '&utc_offset=' + encodeURIComponent(offset) : '');
      const a = await postChunk(api(f.dataset.host) + '/offline' + q, head + p.body,
        note => { c.retries++; show(false, null, note); });
      if (a.live === false) live = false;
      for (const e of a.events || []) {
        c.sent++;
        if (e.status === 'ready') c.accepted++;
        else if (e.status === 'duplicate') c.duplicates++;
        else if (e.status === 'rejected') {
          c.rejected++;
          const li = el('li', null, 'Line ' + e.line + ': ' + e.reason);
          li.dataset.line = e.line;
          list.append(li);
        }
      }
      show(false);
    }
    show(true);
  } catch (e) {
    show(false, e.message);
  } finally {
    button.disabled = false;
  }
}

// The browser's UTC offset now, as +HH:MM.
const tz = -new Date().getTimezoneOffset(), pad = n => String(n).padStart(2, '0');
for (const f of document.querySelectorAll('form.upload')) {
  f.elements.utc_offset.value = (tz < 0 ? '-' : '+') + pad(Math.abs(tz) / 60 | 0) + ':' + pad(Math.abs(tz) % 60);
  f.addEventListener('submit', ev => { ev.preventDefault(); upload(f); });
}
