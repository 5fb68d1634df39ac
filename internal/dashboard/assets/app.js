// app.js: the WabSync dashboard. Plain DOM code, no framework: sign in with a
// token, list and operate sessions, link them (live QR, pair code), send test
// messages and watch their statuses, follow the event stream, and manage
// webhooks with their delivery log.
import { APIError, auth, call, streamEvents } from './api.js';

const $ = (id) => document.getElementById(id);

// ---------------------------------------------------------------- errors

// Errors of the page itself are shown, never swallowed: a banner says what
// went wrong, and the rest of the page keeps working where it can.
function showPageError(msg) {
  $('jserror-text').textContent = msg;
  $('jserror').hidden = false;
}
window.addEventListener('error', (e) => showPageError(e.message || String(e.error)));
window.addEventListener('unhandledrejection', (e) => {
  const r = e.reason;
  showPageError(r instanceof Error ? `${r.name}: ${r.message}` : String(r));
});

let flashTimer = 0;
/** flash shows a short message under the header: 'ok' fades, 'error' stays. */
function flash(text, kind = 'ok') {
  const p = el('p', { class: kind, role: kind === 'error' ? 'alert' : null }, text);
  $('flash').replaceChildren(p);
  clearTimeout(flashTimer);
  if (kind === 'ok') flashTimer = setTimeout(() => p.remove(), 6000);
}

/** guard runs an async UI action: API errors become a flash with the API's message. */
function guard(fn) {
  return async (event) => {
    const btn = event && event.submitter ? event.submitter : event && event.currentTarget;
    if (event && event.type === 'submit') event.preventDefault();
    const disable = btn instanceof HTMLButtonElement;
    if (disable) btn.disabled = true;
    try {
      await fn(event);
    } catch (err) {
      if (err instanceof APIError) flash(err.describe(), 'error');
      else showPageError(err instanceof Error ? `${err.name}: ${err.message}` : String(err));
    } finally {
      if (disable) btn.disabled = false;
    }
  };
}

// ---------------------------------------------------------------- DOM helpers

/** el builds an element; attributes with null values are left out. */
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c !== null && c !== undefined && c !== false) e.append(c instanceof Node ? c : String(c));
  }
  return e;
}

function badge(status) {
  return el('span', { class: `badge s-${status}` }, status.replace('_', ' '));
}

function when(ts) {
  if (!ts) return '';
  const d = new Date(ts);
  return isNaN(d) ? ts : d.toLocaleTimeString();
}

async function copy(id) {
  const node = $(id);
  const text = node.textContent;
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    // No clipboard API (plain http on a LAN address): select it for Ctrl+C.
    const range = document.createRange();
    range.selectNodeContents(node);
    const sel = getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
    if (!document.execCommand || !document.execCommand('copy')) {
      flash('Selected: press Ctrl+C (⌘C) to copy.');
      return;
    }
  }
  flash('Copied.');
}

// ---------------------------------------------------------------- state

const state = {
  mode: '', // 'admin' or 'session'
  sessions: new Map(), // id → Session
  selected: '', // session id
  stamp: 0, // time of the newest state shown for the selected session
  stream: null,
  sent: new Map(), // message id → Message, sent from this page
  seen: new Map(), // message id → Message, the newest from events (may come before the send's answer)
  qrURL: '',
  qrLoading: false,
  listTimer: 0,
  gen: 0, // sign-in generation: work started under an earlier sign-in is dropped
  hookID: '', // webhook whose deliveries are open
  deliveryTimer: 0,
};

// ---------------------------------------------------------------- sign-in

function showSignin(error) {
  $('loading').hidden = true;
  $('app').hidden = true;
  $('who').hidden = true;
  $('signout').hidden = true;
  $('signin').hidden = false;
  $('signin-error').hidden = !error;
  $('signin-error').textContent = error || '';
  $('token').focus();
}

async function signIn(token) {
  let sessions;
  let mode = token.startsWith('WBT|') ? 'session' : 'admin';
  if (mode === 'admin') {
    try {
      sessions = (await call('GET', '/sessions?limit=100', { token })).items;
    } catch (err) {
      if (!(err instanceof APIError) || err.status !== 403) throw err;
      mode = 'session'; // a valid token that may not list sessions: a session token
    }
  }
  if (mode === 'session') sessions = [await call('GET', '/sessions/me', { token })];
  auth.set(token);
  state.mode = mode;
  document.body.classList.toggle('session-mode', mode === 'session');
  state.sessions = new Map(sessions.map((s) => [s.id, s]));
  $('signin').hidden = true;
  $('loading').hidden = true;
  $('app').hidden = false;
  $('who').hidden = false;
  $('who').textContent = mode === 'admin' ? 'Signed in with the admin token' : 'Signed in with a session token';
  $('signout').hidden = false;
  renderSessions();
  if (mode === 'session') select(sessions[0].id);
  else if (state.selected && state.sessions.has(state.selected)) select(state.selected);
  schedulePoll();
}

function signOut() {
  state.gen++;
  auth.clear();
  closeSession();
  clearTimeout(state.listTimer);
  state.sessions.clear();
  state.selected = '';
  $('session-list').replaceChildren();
  $('flash').replaceChildren();
  $('token').value = '';
  showSignin('');
}

// ---------------------------------------------------------------- sessions list

function schedulePoll() {
  clearTimeout(state.listTimer);
  if (state.mode !== 'admin') return;
  state.listTimer = setTimeout(pollSessions, 3000);
}

async function pollSessions() {
  const gen = state.gen;
  try {
    const list = (await call('GET', '/sessions?limit=100')).items;
    if (gen !== state.gen) return; // signed out meanwhile
    const shown = state.sessions.get(state.selected);
    state.sessions = new Map(list.map((s) => [s.id, s]));
    const cur = state.sessions.get(state.selected);
    if (cur && (Date.parse(cur.updated_at) || 0) > state.stamp) showSession(cur);
    else if (cur && shown) state.sessions.set(cur.id, shown); // an event showed newer
    renderSessions();
  } catch (err) {
    if (gen !== state.gen) return;
    if (err instanceof APIError && err.status === 401) {
      signOut();
      showSignin(err.message);
      return;
    }
    // A passing network problem: keep the page, try again.
  }
  schedulePoll();
}

function renderSessions() {
  const items = [...state.sessions.values()].sort((a, b) => a.name.localeCompare(b.name));
  $('session-list').replaceChildren(...items.map((s) => el('li', {},
    el('button', {
      type: 'button', 'aria-current': s.id === state.selected ? 'true' : null, 'data-session': s.id,
      onclick: () => select(s.id),
    }, el('span', { class: 'name' }, s.name || s.id), badge(s.status)))));
  $('session-empty').hidden = items.length > 0;
  $('known-phones').replaceChildren(...items.filter((s) => s.phone && s.id !== state.selected)
    .map((s) => el('option', { value: s.phone }, s.name)));
}

const createSession = guard(async () => {
  const name = $('create-name').value.trim();
  const engine = $('create-engine').value;
  const res = await call('POST', '/sessions', { body: { name, engine } });
  state.sessions.set(res.session.id, res.session);
  $('create-name').value = '';
  renderSessions();
  select(res.session.id);
  showToken(res.token);
  flash(`Session “${res.session.name}” created. Connect it to link it.`);
});

// ---------------------------------------------------------------- one session

function closeSession() {
  if (state.stream) state.stream.close();
  state.stream = null;
  clearTimeout(state.deliveryTimer);
  state.hookID = '';
  setQR('');
  state.sent.clear();
  state.seen.clear();
}

function select(id) {
  if (state.selected !== id) {
    closeSession();
    $('token-box').hidden = true;
    $('secret-box').hidden = true;
    $('deliveries').hidden = true;
    $('pair-code').hidden = true;
    $('event-list').replaceChildren();
    $('events-empty').hidden = false;
    renderSent();
  }
  state.selected = id;
  renderSessions();
  const s = state.sessions.get(id);
  for (const c of ['session-card', 'link-card', 'try-card', 'hooks-card', 'events-card']) $(c).hidden = false;
  $('no-selection').hidden = true;
  state.stamp = 0;
  showSession(s);
  if (!state.stream) {
    state.stream = streamEvents(id, { onEvent, onState: streamState });
  }
  loadHooks().catch((err) => flash(err.describe ? err.describe() : String(err), 'error'));
}

function streamState(st, err) {
  if (st === 'live') {
    // Events are followed from now on: read the state they start from.
    const id = state.selected;
    call('GET', `/sessions/${encodeURIComponent(id)}`).then(showIfNewer)
      .catch((e) => flash(e.describe ? e.describe() : String(e), 'error'));
  }
  const labels = { connecting: 'connecting…', live: 'live', reconnecting: 'reconnecting…', closed: 'stopped' };
  $('stream-state').className = `stream ${st}`;
  $('stream-state').textContent = labels[st] || st;
  if (st === 'closed' && err) flash(`Event stream stopped: ${err.describe()}`, 'error');
}

/** showSession shows s as the selected session's state. */
function showSession(s) {
  state.stamp = Math.max(state.stamp, Date.parse(s.updated_at) || 0);
  state.sessions.set(s.id, s);
  $('session-name').textContent = s.name || s.id;
  const st = $('session-status');
  st.className = `badge s-${s.status}`;
  st.textContent = s.status.replace('_', ' ');
  $('session-reason').textContent = s.status_reason || '—';
  $('session-phone').textContent = s.phone ? `${s.phone}${s.push_name ? ` (${s.push_name})` : ''}` : 'not linked yet';
  $('session-engine').textContent = s.engine;
  $('session-id').textContent = s.id;
  const linked = s.status === 'connected';
  $('linked').hidden = !linked;
  $('linked').textContent = linked ? `Linked${s.phone ? ` as ${s.phone}` : ''}. Messages flow.` : '';
  $('pair-form').hidden = s.status !== 'scan_qr';
  const hints = {
    stopped: 'Not running. Connect to show a QR code (or to reconnect a linked session).',
    starting: 'Starting…',
    reconnecting: 'The connection dropped; retrying.',
    logged_out: 'Unlinked. Connect to show a new QR code.',
    failed: 'Failed: see the reason above, then connect or restart.',
  };
  $('link-hint').textContent = hints[s.status] || '';
  if (s.status === 'scan_qr') {
    if (!state.qrURL) loadQR();
  } else {
    setQR('');
  }
  renderSessions();
}

function setQR(url, expires) {
  if (state.qrURL) URL.revokeObjectURL(state.qrURL);
  state.qrURL = url;
  $('qr-box').hidden = !url;
  if (url) {
    $('qr-img').src = url;
    $('qr-expiry').textContent = expires ? `This code is valid until ${when(expires)}.` : '';
  } else {
    $('qr-img').removeAttribute('src');
  }
}

async function loadQR(expires) {
  const id = state.selected;
  if (state.qrLoading) {
    state.qrAgain = true; // the code rotated while loading: fetch the new one next
    return;
  }
  state.qrLoading = true;
  try {
    const blob = await call('GET', `/sessions/${encodeURIComponent(id)}/qr`, { accept: 'image/png' });
    if (state.selected === id && state.sessions.get(id)?.status === 'scan_qr') setQR(URL.createObjectURL(blob), expires);
  } catch (err) {
    // 409: no longer waiting for a scan (linked meanwhile); the status shows it.
    if (!(err instanceof APIError) || err.status !== 409) flash(err.describe ? err.describe() : String(err), 'error');
  } finally {
    state.qrLoading = false;
  }
  if (state.qrAgain) {
    state.qrAgain = false;
    if (state.selected === id && state.sessions.get(id)?.status === 'scan_qr') await loadQR(expires);
  }
}

/** showIfNewer shows a session read from the API unless an event already showed something newer. */
function showIfNewer(s) {
  if (s && s.id === state.selected && (Date.parse(s.updated_at) || 0) >= state.stamp) showSession(s);
}

const sessionAction = guard(async (event) => {
  const action = event.currentTarget.dataset.action;
  showIfNewer(await call('POST', `/sessions/${encodeURIComponent(state.selected)}/${action}`));
  flash(`${action[0].toUpperCase()}${action.slice(1)}: done.`);
});

const rotateToken = guard(async () => {
  const { token } = await call('POST', `/sessions/${encodeURIComponent(state.selected)}/token`);
  if (state.mode === 'session') {
    // Our own token was just revoked: carry on with the new one.
    auth.set(token);
    closeSession();
    const id = state.selected;
    state.selected = '';
    select(id);
  }
  showToken(token);
  flash('New session token issued; the old one no longer works.');
});

function showToken(token) {
  $('token-value').textContent = token;
  $('token-box').hidden = false;
}

const deleteSession = guard(async () => {
  const s = state.sessions.get(state.selected);
  if (!confirm(`Delete session “${s.name}”? It is logged out and its messages and webhooks are deleted.`)) return;
  await call('DELETE', `/sessions/${encodeURIComponent(s.id)}`);
  closeSession();
  state.sessions.delete(s.id);
  state.selected = '';
  for (const c of ['session-card', 'link-card', 'try-card', 'hooks-card', 'events-card']) $(c).hidden = true;
  $('no-selection').hidden = false;
  renderSessions();
  flash(`Session “${s.name}” deleted.`);
});

const pairCode = guard(async () => {
  const { code } = await call('POST', `/sessions/${encodeURIComponent(state.selected)}/pair-code`,
    { body: { phone: $('pair-phone').value.trim() } });
  $('pair-code').textContent = code;
  $('pair-code').hidden = false;
  flash('On the phone: Linked devices → Link with phone number instead, then enter the code.');
});

// ---------------------------------------------------------------- events

function onEvent(type, ev) {
  if (ev.session_id && ev.session_id !== state.selected) return;
  addEvent(ev);
  const d = ev.data || {};
  const s = state.sessions.get(state.selected);
  if (type === 'session.status' && s) {
    showSession({ ...s, status: d.status, status_reason: d.reason, phone: d.phone || s.phone,
      push_name: d.push_name || s.push_name, updated_at: ev.created_at });
    if (d.status === 'connected') flash(`Linked${d.phone ? ` as ${d.phone}` : ''}.`);
  } else if (type === 'session.qr' && s) {
    if (s.status !== 'scan_qr') showSession({ ...s, status: 'scan_qr', updated_at: ev.created_at });
    else loadQR(d.expires_at);
  } else if (type.startsWith('message.') && d.id) {
    state.seen.set(d.id, newer(state.seen.get(d.id), d));
    if (state.seen.size > 500) state.seen.delete(state.seen.keys().next().value);
    if (state.sent.has(d.id)) {
      state.sent.set(d.id, newer(state.sent.get(d.id), d));
      renderSent();
    }
  }
}

/** newer returns whichever of two states of a message has come further. */
function newer(a, b) {
  if (!a || !b) return a || b;
  const n = (m) => (m.status_history || []).length;
  return n(b) >= n(a) ? b : a;
}

function summary(ev) {
  const d = ev.data || {};
  switch (ev.type) {
    case 'session.status':
      return `${d.previous || '?'} → ${d.status}${d.reason ? `: ${d.reason}` : ''}`;
    case 'session.qr':
      return `New QR code, valid until ${when(d.expires_at)}`;
    case 'webhook.test':
      return 'Test event';
    default:
      if (d.kind) {
        const who = d.direction === 'in' ? `from ${d.from || d.from_jid || d.chat}` : `to ${d.to || d.to_jid || d.chat}`;
        return `${d.kind} ${who}${d.text ? `: ${d.text}` : ''} — ${d.status}`;
      }
      return JSON.stringify(d).slice(0, 200);
  }
}

function addEvent(ev) {
  const list = $('event-list');
  list.prepend(el('li', {}, el('span', { class: 'type' }, ev.type),
    el('span', { class: 'muted' }, `#${ev.sequence} · ${when(ev.created_at)}`),
    el('span', { class: 'summary' }, summary(ev))));
  while (list.children.length > 200) list.lastChild.remove();
  $('events-empty').hidden = true;
}

// ---------------------------------------------------------------- try it

const sendMessage = guard(async () => {
  const to = $('send-to').value.trim();
  const text = $('send-text').value;
  const file = $('send-file').files[0];
  const base = `/sessions/${encodeURIComponent(state.selected)}/messages`;
  let msg;
  if (file) {
    const form = new FormData();
    form.append('to', to);
    if ($('send-caption').value) form.append('caption', $('send-caption').value);
    form.append('file', file, file.name);
    msg = await call('POST', `${base}/file`, { form });
  } else if (text.trim()) {
    msg = await call('POST', `${base}/text`, { body: { to, text } });
  } else {
    flash('Write a text or choose a file to send.', 'error');
    $('send-text').focus();
    return;
  }
  // Its events may have come before this answer: show the furthest state.
  state.sent.set(msg.id, newer(msg, state.seen.get(msg.id)));
  renderSent();
  $('send-text').value = '';
  $('send-file').value = '';
  $('send-caption').value = '';
  flash('Accepted: the message is queued and goes out in order.');
});

function renderSent() {
  const items = [...state.sent.values()].reverse();
  $('sent-list').replaceChildren(...items.map((m) => el('li', { 'data-message': m.id },
    el('div', { class: 'row spread' },
      el('span', {}, `${m.kind} to ${m.to || m.to_jid || m.chat}`), badge(m.status)),
    m.text ? el('div', {}, m.text) : null,
    m.media && m.media.filename ? el('div', {}, m.media.filename) : null,
    m.error ? el('div', { class: 'error' }, `${m.error.code}: ${m.error.message}`) : null,
    el('p', { class: 'history' }, (m.status_history || []).map((h) => `${h.status} ${when(h.at)}`).join(' → ')))));
  $('sent-empty').hidden = items.length > 0;
}

// ---------------------------------------------------------------- webhooks

function hooksBase() {
  return $('hooks-scope').value === 'global' ? '/webhooks' : `/sessions/${encodeURIComponent(state.selected)}/webhooks`;
}

async function loadHooks() {
  const hooks = (await call('GET', `${hooksBase()}?limit=100`)).items;
  $('hook-list').replaceChildren(...hooks.map((w) => el('li', { 'data-webhook': w.id },
    el('div', { class: 'row spread' }, el('span', { class: 'url' }, w.url), badge(w.enabled ? 'enabled' : 'disabled')),
    el('div', { class: 'muted' }, `Events: ${w.events.join(', ')}${w.description ? ` · ${w.description}` : ''}`),
    w.disabled_reason ? el('div', { class: 'error' }, w.disabled_reason) : null,
    el('div', { class: 'row wrap' },
      el('button', { type: 'button', class: 'secondary small', onclick: guard(() => testHook(w)) }, 'Send test'),
      el('button', { type: 'button', class: 'secondary small', onclick: guard(() => openDeliveries(w)) }, 'Deliveries'),
      el('button', { type: 'button', class: 'secondary small', onclick: guard(() => toggleHook(w)) }, w.enabled ? 'Disable' : 'Enable'),
      el('button', { type: 'button', class: 'danger small', onclick: guard(() => deleteHook(w)) }, 'Delete')))));
  $('hook-empty').hidden = hooks.length > 0;
}

const createHook = guard(async () => {
  const events = $('hook-events').value.split(',').map((e) => e.trim()).filter(Boolean);
  const w = await call('POST', hooksBase(), { body: {
    url: $('hook-url').value.trim(), events, description: $('hook-desc').value.trim(),
  } });
  $('secret-value').textContent = w.secret;
  $('secret-box').hidden = false;
  $('hook-url').value = '';
  $('hook-desc').value = '';
  await loadHooks();
  flash('Webhook created. Its signing secret is shown once below.');
});

async function testHook(w) {
  await call('POST', `${hooksBase()}/${encodeURIComponent(w.id)}/test`);
  flash('Test event sent; see the delivery log.');
  await openDeliveries(w);
}

async function toggleHook(w) {
  await call('PATCH', `${hooksBase()}/${encodeURIComponent(w.id)}`, { body: { enabled: !w.enabled } });
  await loadHooks();
}

async function deleteHook(w) {
  if (!confirm(`Delete the webhook to ${w.url}?`)) return;
  await call('DELETE', `${hooksBase()}/${encodeURIComponent(w.id)}`);
  if (state.hookID === w.id) closeDeliveries();
  await loadHooks();
  flash('Webhook deleted.');
}

async function openDeliveries(w) {
  state.hookID = w.id;
  state.hookURL = w.url;
  $('deliveries-h').textContent = `Deliveries to ${w.url}`;
  $('deliveries').hidden = false;
  await loadDeliveries();
}

function closeDeliveries() {
  clearTimeout(state.deliveryTimer);
  state.hookID = '';
  $('deliveries').hidden = true;
}

async function loadDeliveries() {
  clearTimeout(state.deliveryTimer);
  const id = state.hookID;
  if (!id) return;
  const base = `${hooksBase()}/${encodeURIComponent(id)}/deliveries`;
  let items;
  try {
    items = (await call('GET', `${base}?limit=50`)).items;
  } catch (err) {
    flash(err.describe ? err.describe() : String(err), 'error');
    return;
  }
  if (state.hookID !== id) return;
  $('delivery-rows').replaceChildren(...items.map((d) => el('tr', { 'data-delivery': d.id },
    el('td', {}, d.event_type),
    el('td', {}, badge(d.status)),
    el('td', {}, d.attempts.length ? el('ul', {}, d.attempts.map((a) => el('li', {},
      `${when(a.at)}: ${a.status_code ? `HTTP ${a.status_code}` : 'no answer'}, ${a.latency_ms} ms${a.error ? ` — ${a.error}` : ''}`))) : 'none yet'),
    el('td', {}, d.next_attempt_at ? when(d.next_attempt_at) : '—'),
    el('td', {}, el('button', { type: 'button', class: 'secondary small', onclick: guard(async () => {
      await call('POST', `${base}/${encodeURIComponent(d.id)}/retry`);
      flash('Delivering again now.');
      await loadDeliveries();
    }) }, 'Retry now')))));
  $('delivery-empty').hidden = items.length > 0;
  // The log changes by itself as attempts are made: follow it while open.
  state.deliveryTimer = setTimeout(loadDeliveries, 2000);
}

// ---------------------------------------------------------------- start

function boot() {
  $('jserror-reload').addEventListener('click', () => location.reload());
  $('signin-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const btn = e.submitter;
    if (btn) btn.disabled = true;
    $('signin-error').hidden = true;
    try {
      await signIn($('token').value.trim());
      $('token').value = '';
    } catch (err) {
      if (!(err instanceof APIError)) throw err;
      showSignin(err.describe());
    } finally {
      if (btn) btn.disabled = false;
    }
  });
  $('signout').addEventListener('click', signOut);
  $('create-form').addEventListener('submit', createSession);
  for (const b of document.querySelectorAll('[data-action]')) b.addEventListener('click', sessionAction);
  $('rotate-token').addEventListener('click', rotateToken);
  $('delete-session').addEventListener('click', deleteSession);
  $('pair-form').addEventListener('submit', pairCode);
  $('send-form').addEventListener('submit', sendMessage);
  $('hook-form').addEventListener('submit', createHook);
  $('hooks-scope').addEventListener('change', () => {
    closeDeliveries();
    loadHooks().catch((err) => flash(err.describe ? err.describe() : String(err), 'error'));
  });
  $('deliveries-close').addEventListener('click', closeDeliveries);
  $('events-clear').addEventListener('click', () => {
    $('event-list').replaceChildren();
    $('events-empty').hidden = false;
  });
  for (const b of document.querySelectorAll('[data-copy]')) b.addEventListener('click', () => copy(b.dataset.copy));
  for (const b of document.querySelectorAll('[data-dismiss]')) {
    b.addEventListener('click', () => { $(b.dataset.dismiss).hidden = true; });
  }
  if (!auth.token) {
    showSignin('');
    return;
  }
  signIn(auth.token).catch((err) => {
    auth.clear();
    if (!(err instanceof APIError)) throw err;
    showSignin(err.describe());
  });
}

boot();
