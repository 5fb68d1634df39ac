// api.js: calls to the WabSync API with the signed-in token, and a reader of
// the Server-Sent Events stream. EventSource cannot send an Authorization
// header, so the stream is read with fetch() and parsed here.

const TOKEN_KEY = 'wabsync.token';

/** The token of this tab, kept in session storage (never a URL or a cookie). */
export const auth = {
  get token() { return sessionStorage.getItem(TOKEN_KEY) || ''; },
  set(token) { sessionStorage.setItem(TOKEN_KEY, token); },
  clear() { sessionStorage.removeItem(TOKEN_KEY); },
};

/** APIError is an error answer of the API, with its message, code and details. */
export class APIError extends Error {
  constructor(status, envelope) {
    const msg = envelope && typeof envelope.message === 'string' && envelope.message
      ? envelope.message
      : (status ? `The server answered HTTP ${status}.` : 'The server cannot be reached.');
    super(msg);
    this.name = 'APIError';
    this.status = status;
    this.code = (envelope && envelope.code) || '';
    this.details = (envelope && envelope.details) || {};
  }

  /** describe returns the message followed by the fields the API named. */
  describe() {
    const fields = Object.entries(this.details).map(([k, v]) => `${k} ${v}`);
    return fields.length ? `${this.message} (${fields.join('; ')})` : this.message;
  }
}

/** newKey returns a random Idempotency-Key (works outside secure contexts too). */
export function newKey() {
  const b = new Uint8Array(16);
  crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

async function errorOf(res) {
  let env = null;
  try { env = await res.json(); } catch { /* not JSON: the status says it */ }
  return new APIError(res.status, env);
}

/**
 * call sends a request to /api/v1 + path and returns the envelope's data (or
 * a Blob when accept is image/png). body is sent as JSON, form as multipart.
 */
export async function call(method, path, { body, form, accept, token } = {}) {
  const headers = { Authorization: 'Bearer ' + (token ?? auth.token) };
  let payload;
  if (form) {
    payload = form;
  } else if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  if (accept) headers.Accept = accept;
  if (method === 'POST') headers['Idempotency-Key'] = newKey();
  let res;
  try {
    res = await fetch('/api/v1' + path, { method, headers, body: payload, cache: 'no-store' });
  } catch (err) {
    throw new APIError(0, { message: `The server cannot be reached (${err.message}).` });
  }
  if (!res.ok) throw await errorOf(res);
  if (accept === 'image/png') return res.blob();
  const env = await res.json();
  return env.data;
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
  });
}

/**
 * streamEvents follows a session's events. onEvent(type, event) gets each
 * one; onState(state, error) hears 'connecting', 'live', 'reconnecting' and
 * 'closed' (for good: the token or the session is gone). A dropped stream
 * reconnects after the server's retry delay and resumes with Last-Event-ID,
 * so nothing is missed or seen twice. close() ends it.
 */
export function streamEvents(sessionID, { onEvent, onState }) {
  const ctrl = new AbortController();
  let lastID = '';
  let retry = 2000;

  const run = async () => {
    while (!ctrl.signal.aborted) {
      try {
        onState('connecting');
        const headers = { Authorization: 'Bearer ' + auth.token, Accept: 'text/event-stream' };
        if (lastID) headers['Last-Event-ID'] = lastID;
        const res = await fetch(`/api/v1/sessions/${encodeURIComponent(sessionID)}/events`,
          { headers, signal: ctrl.signal, cache: 'no-store' });
        if (!res.ok) {
          const err = await errorOf(res);
          if ([401, 403, 404].includes(res.status)) {
            onState('closed', err);
            return;
          }
          throw err;
        }
        onState('live');
        await readStream(res.body, ctrl.signal, (ev) => {
          if (ev.retry) { retry = ev.retry; return; }
          if (ev.id) lastID = ev.id;
          if (!ev.data) return;
          let parsed;
          try { parsed = JSON.parse(ev.data); } catch { return; }
          onEvent(ev.type, parsed);
        });
      } catch (err) {
        if (ctrl.signal.aborted) return;
        onState('reconnecting', err);
      }
      if (ctrl.signal.aborted) return;
      onState('reconnecting');
      await sleep(retry, ctrl.signal);
    }
  };
  run();
  return { close() { ctrl.abort(); } };
}

// readStream parses text/event-stream from body, calling dispatch with
// {id, type, data} for each event and {retry} for a retry field.
async function readStream(body, signal, dispatch) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  signal.addEventListener('abort', () => { reader.cancel().catch(() => {}); }, { once: true });
  let buf = '';
  let id = '';
  let type = '';
  let data = [];
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += value;
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      let line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (line.endsWith('\r')) line = line.slice(0, -1);
      if (line === '') {
        if (data.length || id) dispatch({ id, type: type || 'message', data: data.join('\n') });
        id = ''; type = ''; data = [];
        continue;
      }
      if (line.startsWith(':')) continue; // a comment: the heartbeat
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      let val = colon < 0 ? '' : line.slice(colon + 1);
      if (val.startsWith(' ')) val = val.slice(1);
      if (field === 'id') id = val;
      else if (field === 'event') type = val;
      else if (field === 'data') data.push(val);
      else if (field === 'retry' && /^\d+$/.test(val)) dispatch({ retry: Number(val) });
    }
  }
}
