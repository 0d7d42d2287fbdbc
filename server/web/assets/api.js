// The HTTP/JSON API with the browser session: the session cookie (HttpOnly: scripts never
// see it) authenticates; the CSRF token the server gave at login goes in X-CSRF-Token on
// every change. The token a person logs in with is sent once, in the login's body, and
// kept nowhere in the browser.

let csrf = '';
export let me = null;  // {actor, role, clinic, expiresTimeMs}

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.httpStatus = status;
    this.status = body && body.status;
  }
}

const listeners = { logout: [] };
export function onLoggedOut(fn) { listeners.logout.push(fn); }
function loggedOut() {
  me = null;
  csrf = '';
  pumpCache.clear();
  drugsCache = null;
  for (const fn of listeners.logout) fn();
}

export async function call(method, path, body) {
  const init = { method, headers: {}, credentials: 'same-origin', cache: 'no-store' };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  if (method !== 'GET') init.headers['X-CSRF-Token'] = csrf;
  const r = await fetch(path, init);
  let json = null;
  try { json = await r.json(); } catch (e) { json = null; }
  if (!r.ok) {
    if (r.status === 401 && path !== '/session') loggedOut();
    throw new ApiError(r.status, json);
  }
  return json;
}

export const roleRank = (r) => ({ viewer: 1, clinician: 2, admin: 3 })[r] || 0;
export const can = (role) => me !== null && roleRank(me.role) >= roleRank(role);

export async function resume() {
  try {
    const who = await call('GET', '/session');
    csrf = who.csrfToken;
    delete who.csrfToken;
    me = who;
    return me;
  } catch (e) {
    return null;
  }
}

export async function login(name, token) {
  const who = await call('POST', '/session', { name, token });
  csrf = who.csrfToken;
  delete who.csrfToken;
  me = who;
  return me;
}

export async function logout() {
  try { await call('DELETE', '/session'); } finally { loggedOut(); }
}

export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === '' || v === false) continue;
    if (Array.isArray(v)) v.forEach((x) => q.append(k, x));
    else q.append(k, String(v));
  }
  const s = q.toString();
  return s ? '?' + s : '';
}

// GET every page of a list method (bounded).
export async function listAll(path, params, field, maxPages = 20) {
  const out = [];
  let pageToken = '';
  for (let i = 0; i < maxPages; i++) {
    const r = await call('GET', path + query({ ...params, pageToken }));
    out.push(...(r[field] || []));
    pageToken = r.nextPageToken || '';
    if (!pageToken) break;
  }
  return out;
}

// One alert stream for the whole app (WatchAlerts from the start of the log, then live):
// the latest state of every alert, and listeners told of each change. EventSource
// reconnects by itself, sending Last-Event-ID, from which the server resumes with no gap.
// A refused stream (the server holds its maximum of streams, or the session ended) is not
// retried by EventSource: the app asks who it is, then opens a new stream after a growing
// wait (1 s doubling to 15 s, with jitter, reset once a stream opens), so that refused tabs
// never hammer a busy server.
export const alerts = new Map();  // alert name -> Alert
const alertListeners = new Set();
let source = null;
let statusEl = null;
let retryMs = 0;
let retryTimer = null;
const RETRY_FIRST_MS = 1000;
const RETRY_MAX_MS = 15000;
export function onAlerts(fn) { alertListeners.add(fn); return () => alertListeners.delete(fn); }
let pending = null;
function notify(changed) {
  // Coalesced: one redraw per animation frame however many events arrive.
  if (pending) { pending.push(changed); return; }
  pending = [changed];
  requestAnimationFrame(() => {
    const batch = pending;
    pending = null;
    for (const fn of alertListeners) fn(batch);
  });
}
function setStatus(text, on) {
  if (!statusEl) return;
  statusEl.textContent = text;
  statusEl.classList.toggle('on', on);
}
export function startAlertStream(statusElement) {
  statusEl = statusElement;
  if (source || retryTimer) return;
  source = new EventSource('/v1/alerts:watch');
  source.addEventListener('open', () => { retryMs = 0; setStatus('live', true); });
  source.addEventListener('AlertEvent', (e) => {
    const ev = JSON.parse(e.data);
    const a = ev.alert || {};
    a.seenAtMs = Date.now();
    alerts.set(a.name, a);
    notify(a);
  });
  source.addEventListener('end', () => { /* the server ended the stream; EventSource reconnects */ });
  source.addEventListener('error', async () => {
    setStatus('reconnecting', false);
    if (!source || source.readyState !== EventSource.CLOSED) return;
    // Refused: was it the session (401) or the server (429, 503)?
    stopAlertStream();
    if (!(await resume())) { loggedOut(); return; }
    retryMs = Math.min(RETRY_MAX_MS, retryMs ? retryMs * 2 : RETRY_FIRST_MS);
    const wait = Math.round(retryMs * (0.5 + Math.random() / 2));
    setStatus(`reconnecting in ${Math.ceil(wait / 1000)} s`, false);
    retryTimer = setTimeout(() => { retryTimer = null; startAlertStream(statusEl); }, wait);
  });
}
export function stopAlertStream() {
  if (source) source.close();
  source = null;
  if (retryTimer) clearTimeout(retryTimer);
  retryTimer = null;
  alerts.clear();
}

export const isActive = (a) => a.state === 'ALERT_STATE_RAISED' || a.state === 'ALERT_STATE_ACKNOWLEDGED';
export function activeAlerts(filter = () => true) {
  return [...alerts.values()].filter((a) => isActive(a) && filter(a)).sort((x, y) =>
    (SEV[y.severity] || 0) - (SEV[x.severity] || 0) || Number(y.raisedTimeMs || 0) - Number(x.raisedTimeMs || 0));
}
const SEV = { SEVERITY_CRITICAL: 3, SEVERITY_WARNING: 2, SEVERITY_INFO: 1 };

// Twin updates of some pumps (WatchTwin), until the returned function is called.
export function watchTwins(pumpIds, onTwin, minIntervalMs = 2000) {
  if (!pumpIds.length) return () => {};
  const es = new EventSource('/v1/twins:watch' +
      query({ names: pumpIds.map((p) => 'pumps/' + p), minIntervalMs }));
  es.addEventListener('TwinState', (e) => onTwin(JSON.parse(e.data)));
  return () => es.close();
}

let drugsCache = null;
export async function drugs() {
  if (!drugsCache) drugsCache = (await call('GET', '/v1/drugs')).drugs || [];
  return drugsCache;
}

const pumpCache = new Map();
export async function pump(id) {
  if (!pumpCache.has(id)) pumpCache.set(id, await call('GET', '/v1/pumps/' + encodeURIComponent(id)));
  return pumpCache.get(id);
}
export function knownPump(id) { return pumpCache.get(id); }
export function rememberPump(p) { pumpCache.set(p.pumpId, p); }
