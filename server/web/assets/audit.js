// The audit log (admins): who changed what, when, with before/after, newest pages first as
// the server gives them; filter by resource and actor.
import * as api from './api.js';
import { h, clear, num } from './util.js';

export async function renderAudit(main) {
  const resource = h('input', { id: 'audit-resource', placeholder: 'pumps/P-1001' });
  const actor = h('input', { id: 'audit-actor', placeholder: 'dr.smith' });
  const tbody = h('tbody');
  const more = h('button', { type: 'button', hidden: true }, 'More');
  const status = h('p', { class: 'muted', role: 'status' });
  const form = h('form', { class: 'filters' }, h('label', { for: 'audit-resource' }, 'Resource'), resource,
    h('label', { for: 'audit-actor' }, 'Actor'), actor, h('button', { type: 'submit' }, 'Show'));
  main.append(h('h1', {}, 'Audit log'), form,
    h('table', { class: 'grid', id: 'audit' }, h('thead', {}, h('tr', {},
      ['#', 'Time (UTC)', 'Actor', 'Role', 'Method', 'Resource', 'Reason', 'Change'].map((x) => h('th', { scope: 'col' }, x)))), tbody),
    more, status);
  let token = '';
  const fmt = new Intl.DateTimeFormat('en-GB', { timeZone: 'UTC', dateStyle: 'medium', timeStyle: 'medium' });
  async function page(first) {
    if (first) { clear(tbody); token = ''; }
    const r = await api.call('GET', '/v1/auditRecords' + api.query({ resource: resource.value.trim(), actor: actor.value.trim(), pageSize: 100, pageToken: token }));
    for (const a of r.records || []) {
      tbody.append(h('tr', {}, h('td', {}, a.sequence), h('td', {}, fmt.format(new Date(num(a.serverTimeMs)))),
        h('td', {}, a.actor), h('td', {}, a.role), h('td', {}, a.method), h('td', {}, a.resource || ''), h('td', {}, a.reason || ''),
        h('td', {}, h('details', {}, h('summary', {}, 'before / after'),
          h('pre', {}, a.beforeJson || '—'), h('pre', {}, a.afterJson || '—')))));
    }
    token = r.nextPageToken || '';
    more.hidden = !token;
    status.textContent = `${tbody.children.length} records shown`;
  }
  form.addEventListener('submit', (e) => { e.preventDefault(); page(true).catch((ex) => { status.textContent = ex.message; }); });
  more.addEventListener('click', () => page(false).catch((ex) => { status.textContent = ex.message; }));
  await page(true);
  return () => {};
}
