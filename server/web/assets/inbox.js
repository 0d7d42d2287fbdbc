// The alert inbox: active alerts, live, most severe first; evidence and the alternatives the
// twin considered; acknowledge with a comment (clinicians).
import * as api from './api.js';
import { h, clear, num, label, severityBadge, fmtTime, fmtAgo } from './util.js';

// Comments being written, kept across redraws (the list is rebuilt as alerts arrive).
const drafts = new Map();

export function alertItem(a, { onAck } = {}) {
  const p = api.knownPump(a.pumpId);
  const zone = (p && p.timeZone) || 'UTC';
  const acked = a.state === 'ALERT_STATE_ACKNOWLEDGED';
  const li = h('li', { class: `alert ${acked ? 'acked' : ''}`, dataset: { alertId: a.alertId, pump: a.pumpId, state: a.state, type: a.type } },
    h('div', { class: 'alert-head' }, severityBadge(a.severity), ' ',
      h('strong', {}, label(a.type, 'ALERT_TYPE_')), ' · ',
      h('a', { href: '#/pumps/' + encodeURIComponent(a.pumpId) }, a.pumpId),
      a.clinic ? h('span', { class: 'muted' }, ` · ${a.clinic}`) : null,
      h('span', { class: 'muted small' }, ` · raised ${fmtTime(a.raisedTimeMs, zone)} (${fmtAgo(a.raisedTimeMs)})`)),
    h('p', { class: 'summary' }, a.summary || ''),
    a.diagnosis ? h('p', {}, h('strong', {}, 'Diagnosis: '), a.diagnosis) : null,
    acked ? h('p', { class: 'muted small' }, `Acknowledged by ${a.acknowledgedBy} ${fmtTime(a.acknowledgedTimeMs, zone)}: “${a.acknowledgeComment || ''}”`) : null);
  const ev = a.evidence || [];
  const alt = a.alternatives || [];
  if (ev.length || alt.length) {
    li.append(h('details', {}, h('summary', {}, `Evidence (${ev.length}) and alternatives (${alt.length})`),
      ev.length ? h('table', { class: 'grid small' },
        h('thead', {}, h('tr', {}, ['Signal', 'Observed', 'Predicted', 'Threshold', 'Unit', 'Note'].map((x) => h('th', { scope: 'col' }, x)))),
        h('tbody', {}, ev.map((e) => h('tr', {}, h('td', {}, e.signal), h('td', {}, fmtNum(e.observed)),
          h('td', {}, fmtNum(e.predicted)), h('td', {}, fmtNum(e.threshold)), h('td', {}, e.unit || ''), h('td', {}, e.note || ''))))) : null,
      alt.length ? h('ul', {}, alt.map((x) => h('li', {}, h('strong', {}, x.cause), x.ruledOut ? ' (ruled out)' : '', ': ', x.evidence))) : null));
  }
  if (!acked && api.can('clinician')) {
    const comment = h('textarea', { rows: 2, id: `ack-${a.alertId}`, 'aria-label': `Comment on ${label(a.type, 'ALERT_TYPE_')} of ${a.pumpId}`, class: 'ack-comment', required: true });
    comment.value = drafts.get(a.name) || '';
    comment.addEventListener('input', () => drafts.set(a.name, comment.value));
    const msg = h('span', { class: 'error', role: 'alert' });
    const form = h('form', { class: 'ack' }, comment, h('button', { type: 'submit', class: 'ack-button', id: `ack-button-${a.alertId}` }, 'Acknowledge'), msg);
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      msg.textContent = '';
      try {
        const out = await api.call('POST', `/v1/${a.name}:acknowledge`, { comment: comment.value });
        drafts.delete(a.name);
        api.alerts.set(out.name, { ...out, seenAtMs: a.seenAtMs });
        if (onAck) onAck(out);
      } catch (ex) { msg.textContent = ex.message; }
    });
    li.append(form);
  }
  return li;
}
const fmtNum = (v) => (v === undefined ? '—' : Number(v).toLocaleString('en-GB', { maximumFractionDigits: 3 }));

export async function renderInbox(main) {
  const list = h('ul', { class: 'alerts', id: 'inbox', 'aria-live': 'polite' });
  const empty = h('p', { class: 'muted' });
  const showAcked = h('input', { type: 'checkbox', id: 'show-acked', checked: true });
  main.append(h('h1', {}, 'Alert inbox'),
    h('p', {}, h('label', { class: 'check' }, showAcked, ' show acknowledged alerts')), list, empty);
  // Alerts of pumps not seen yet: their registration (time zone) is fetched once.
  const draw = () => {
    // Focus stays where it was across the rebuild (keyboard users).
    const focusedId = document.activeElement && list.contains(document.activeElement) ? document.activeElement.id : '';
    const shown = api.activeAlerts((a) => showAcked.checked || a.state === 'ALERT_STATE_RAISED');
    for (const a of shown) if (!api.knownPump(a.pumpId)) api.pump(a.pumpId).catch(() => {});
    clear(list);
    for (const a of shown.slice(0, 200)) list.append(alertItem(a, { onAck: draw }));
    if (focusedId) document.getElementById(focusedId)?.focus();
    empty.textContent = shown.length ? (shown.length > 200 ? `${shown.length} active alerts; the 200 most urgent shown` : '') : 'No active alerts.';
  };
  showAcked.addEventListener('change', draw);
  const off = api.onAlerts(draw);
  draw();
  return off;
}
