// The worklist: the pumps to review first (ListPumps by urgency), each with its active
// alerts by severity and reason, refill due, battery ERI, silent since and the detectors
// that cannot see this pump; updated live from the alert stream and the twins' stream.
import * as api from './api.js';
import { h, clear, num, label, severityBadge, fmtTime, fmtIn, fmtAgo } from './util.js';

const SILENT_AFTER_MS = 6 * 3600 * 1000;

export async function renderWorklist(main) {
  const clinicInput = h('input', { id: 'clinic-filter', list: 'clinics', placeholder: 'all clinics', value: api.me.clinic || '', disabled: !!api.me.clinic });
  const onlyAlerting = h('input', { type: 'checkbox', id: 'only-alerting' });
  const tbody = h('tbody');
  const status = h('p', { class: 'muted', role: 'status' });
  const form = h('form', { class: 'filters' },
    h('label', { for: 'clinic-filter' }, 'Clinic'), clinicInput, h('datalist', { id: 'clinics' }),
    h('label', { class: 'check' }, onlyAlerting, ' only pumps with an active alert'),
    h('button', { type: 'submit' }, 'Show'));
  main.append(h('h1', {}, 'Worklist'), form,
    h('table', { class: 'grid', id: 'worklist' },
      h('caption', { class: 'sr' }, 'Pumps to review, most urgent first'),
      h('thead', {}, h('tr', {},
        h('th', { scope: 'col' }, 'Pump'), h('th', { scope: 'col' }, 'Clinic'),
        h('th', { scope: 'col' }, 'Active alerts'), h('th', { scope: 'col' }, 'Refill due'),
        h('th', { scope: 'col' }, 'Battery ERI'), h('th', { scope: 'col' }, 'Last data'),
        h('th', { scope: 'col' }, 'Not observable'))),
      tbody), status);

  let pumps = [];
  const twins = new Map();
  let stopTwins = () => {};

  function row(p) {
    const t = twins.get(p.pumpId) || {};
    const f = t.forecast || {};
    const zone = p.timeZone || t.timeZone || 'UTC';
    const active = api.activeAlerts((a) => a.pumpId === p.pumpId);
    const last = num(t.lastSampleServerTimeMs);
    const silent = !!t.reportsTelemetry && (!last || Date.now() - last > SILENT_AFTER_MS);
    const blind = (t.detectors || []).filter((d) => d.state === 'DETECTOR_STATE_NOT_OBSERVABLE' || d.state === 'DETECTOR_STATE_UNKNOWN');
    const due = num(f.nextRefillDueMs);
    const eri = num(f.batteryEriTimeMs);
    return h('tr', { dataset: { pumpId: p.pumpId, alerts: String(active.length) }, class: active.length ? 'has-alert' : '' },
      h('th', { scope: 'row' }, h('a', { href: '#/pumps/' + encodeURIComponent(p.pumpId) }, p.pumpId),
        h('div', { class: 'muted small' }, t.drug ? `${t.drug} · ${zone}` : zone)),
      h('td', {}, p.clinic || '—'),
      h('td', {}, active.length ? h('ul', { class: 'plain' }, active.slice(0, 3).map((a) =>
        h('li', { dataset: { alertId: a.alertId } }, severityBadge(a.severity), ' ', label(a.type, 'ALERT_TYPE_'),
          h('div', { class: 'muted small' }, a.summary || '')))) : h('span', { class: 'muted' }, 'none'),
        active.length > 3 ? h('div', { class: 'small' }, `and ${active.length - 3} more`) : null),
      h('td', { class: due && due - Date.now() < 7 * 86400e3 ? 'warn' : '' }, due ? fmtIn(due) : '—',
        due ? h('div', { class: 'muted small' }, fmtTime(due, zone)) : null),
      h('td', { class: eri && eri - Date.now() < 90 * 86400e3 ? 'warn' : '' }, eri ? fmtIn(eri) : '—',
        eri ? h('div', { class: 'muted small' }, fmtTime(eri, zone)) : null),
      h('td', { class: silent ? 'warn' : '' }, silent ? 'silent since ' + fmtAgo(last).replace(' ago', '') : fmtAgo(last),
        last ? h('div', { class: 'muted small' }, fmtTime(last, zone)) : null),
      h('td', {}, blind.length ? blind.map((d) => h('span', { class: 'tag', title: d.detail || '' },
        label(d.type, 'ALERT_TYPE_') + (d.state === 'DETECTOR_STATE_UNKNOWN' ? ' (no data)' : ''))) : h('span', { class: 'muted' }, '—')));
  }

  function draw() {
    // Urgency: the most severe active alert first, then the soonest refill.
    const rank = (p) => {
      const a = api.activeAlerts((x) => x.pumpId === p.pumpId)[0];
      return a ? ({ SEVERITY_CRITICAL: 3, SEVERITY_WARNING: 2, SEVERITY_INFO: 1 }[a.severity] || 0) : 0;
    };
    const order = new Map(pumps.map((p, i) => [p.pumpId, i]));
    const sorted = [...pumps].sort((x, y) => rank(y) - rank(x) || order.get(x.pumpId) - order.get(y.pumpId));
    const shown = onlyAlerting.checked ? sorted.filter((p) => rank(p) > 0) : sorted;
    clear(tbody);
    for (const p of shown) tbody.append(row(p));
    status.textContent = `${shown.length} pumps shown` + (api.me.clinic ? ` (clinic ${api.me.clinic})` : '');
  }

  async function load() {
    stopTwins();
    const clinic = clinicInput.value.trim();
    const r = await api.call('GET', '/v1/pumps' + api.query({ order: 'PUMP_ORDER_URGENCY', pageSize: 50, clinic }));
    pumps = r.pumps || [];
    pumps.forEach(api.rememberPump);
    const dl = form.querySelector('#clinics');
    clear(dl);
    for (const c of new Set(pumps.map((p) => p.clinic).filter(Boolean))) dl.append(h('option', { value: c }));
    await Promise.all(pumps.map(async (p) => {
      try { twins.set(p.pumpId, await api.call('GET', `/v1/pumps/${encodeURIComponent(p.pumpId)}/twin`)); } catch (e) { /* shown without */ }
    }));
    draw();
    stopTwins = api.watchTwins(pumps.map((p) => p.pumpId), (t) => { twins.set(t.pumpId, t); scheduleDraw(); }, 5000);
  }
  let timer = null;
  function scheduleDraw() { if (!timer) timer = setTimeout(() => { timer = null; draw(); }, 250); }

  form.addEventListener('submit', (e) => { e.preventDefault(); load().catch((ex) => { status.textContent = ex.message; }); });
  onlyAlerting.addEventListener('change', draw);
  const off = api.onAlerts(() => draw());
  await load();
  return () => { off(); stopTwins(); if (timer) clearTimeout(timer); };
}
