// The web app: a login, then the worklist, the alert inbox, a pump's page and the audit log
// (admins). Hash routes (#/worklist, #/alerts, #/pumps/<id>, #/audit): nothing secret is
// ever in a URL.
import * as api from './api.js';
import { h, clear } from './util.js';
import { renderWorklist } from './worklist.js';
import { renderInbox } from './inbox.js';
import { renderPump } from './pump.js';
import { renderAudit } from './audit.js';

const main = document.getElementById('main');
const top = document.getElementById('top');
let teardown = null;

function setView(name) {
  for (const a of document.querySelectorAll('[data-nav]')) {
    if (a.dataset.nav === name) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

async function route() {
  if (teardown) { teardown(); teardown = null; }
  if (!api.me) { showLogin(); return; }
  const hash = location.hash || '#/worklist';
  const m = /^#\/pumps\/(.+)$/.exec(hash);
  clear(main);
  try {
    if (m) { setView(''); teardown = await renderPump(main, decodeURIComponent(m[1])); }
    else if (hash === '#/alerts') { setView('alerts'); teardown = await renderInbox(main); }
    else if (hash === '#/audit') { setView('audit'); teardown = await renderAudit(main); }
    else { setView('worklist'); teardown = await renderWorklist(main); }
  } catch (e) {
    if (!api.me) return;  // the session ended: the login shows
    main.append(h('p', { class: 'error', role: 'alert' }, e.message));
  }
  main.focus({ preventScroll: true });
}

function showLogin(message) {
  top.hidden = true;
  api.stopAlertStream();
  clear(main);
  const err = h('p', { class: 'error', role: 'alert', id: 'login-error' }, message || '');
  const name = h('input', { id: 'login-name', name: 'username', autocomplete: 'username', spellcheck: 'false' });
  const token = h('input', { id: 'login-token', name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  // method=post: even without this script the token would never go into a URL.
  const form = h('form', { id: 'login', class: 'card login', method: 'post', action: '/session', 'aria-labelledby': 'login-title' },
    h('h1', { id: 'login-title' }, 'pumptwin · remote monitoring'),
    h('p', { class: 'muted' }, 'Log in with the access token your administrator gave you. The token stays on the server for this session; the browser keeps only a session cookie.'),
    h('label', { for: 'login-name' }, 'Name (optional)'), name,
    h('label', { for: 'login-token' }, 'Access token'), token,
    h('button', { type: 'submit' }, 'Log in'), err);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    err.textContent = '';
    try {
      await api.login(name.value.trim(), token.value.trim());
      token.value = '';
      started();
    } catch (ex) {
      err.textContent = ex.message;
    }
  });
  main.append(form);
  token.focus();
}

function started() {
  top.hidden = false;
  const who = api.me;
  document.getElementById('whoami').textContent =
      `${who.actor} · ${who.role}${who.clinic ? ' · clinic ' + who.clinic : ' · all clinics'}`;
  document.getElementById('nav-audit').hidden = !api.can('admin');
  api.startAlertStream(document.getElementById('live'));
  route();
}

api.onLoggedOut(() => showLogin('Your session has ended: log in again.'));
api.onAlerts(() => {
  const n = api.activeAlerts((a) => a.state === 'ALERT_STATE_RAISED').length;
  document.getElementById('alert-count').textContent = n ? String(n) : '';
});
document.getElementById('logout').addEventListener('click', async () => {
  await api.logout().catch(() => {});
});
window.addEventListener('hashchange', route);

(async () => {
  if (await api.resume()) started(); else showLogin();
})();
