// DOM building without innerHTML (no markup from data), formatting, units and time zones.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function clear(el) { while (el.firstChild) el.removeChild(el.firstChild); return el; }

// protobuf's JSON mapping: 64-bit integers are strings, defaults are omitted.
export const num = (v) => (v === undefined || v === null || v === '' ? 0 : Number(v));

// "ALERT_TYPE_FLOW_DRIFT_OVER" -> "flow drift over".
export function label(enumName, prefix) {
  if (!enumName) return '';
  let s = String(enumName);
  if (prefix && s.startsWith(prefix)) s = s.slice(prefix.length);
  return s.toLowerCase().replace(/_/g, ' ');
}

export const SEVERITY_RANK = { SEVERITY_CRITICAL: 3, SEVERITY_WARNING: 2, SEVERITY_INFO: 1 };
export function severityBadge(sev) {
  const name = label(sev, 'SEVERITY_') || 'unknown';
  return h('span', { class: `sev sev-${name}` }, name);
}

// Times in the patient's (the pump's) zone, with the zone's name on every one.
const formatters = new Map();
function formatter(zone) {
  const key = zone || 'UTC';
  if (!formatters.has(key)) {
    let f;
    try {
      f = new Intl.DateTimeFormat('en-GB', {
        timeZone: key, year: 'numeric', month: 'short', day: '2-digit', hour: '2-digit',
        minute: '2-digit', timeZoneName: 'short' });
    } catch (e) {
      f = new Intl.DateTimeFormat('en-GB', {
        timeZone: 'UTC', year: 'numeric', month: 'short', day: '2-digit', hour: '2-digit',
        minute: '2-digit', timeZoneName: 'short' });
    }
    formatters.set(key, f);
  }
  return formatters.get(key);
}
export function fmtTime(ms, zone) {
  const t = num(ms);
  if (!t) return '—';
  return formatter(zone).format(new Date(t));
}
export function fmtAgo(ms, now = Date.now()) {
  const t = num(ms);
  if (!t) return 'never';
  const s = Math.round((now - t) / 1000);
  if (s < 0) return 'in ' + fmtDuration(-s);
  return fmtDuration(s) + ' ago';
}
export function fmtIn(ms, now = Date.now()) {
  const t = num(ms);
  if (!t) return '—';
  const s = Math.round((t - now) / 1000);
  return s >= 0 ? 'in ' + fmtDuration(s) : fmtDuration(-s) + ' ago';
}
export function fmtDuration(s) {
  if (s < 90) return `${s} s`;
  if (s < 5400) return `${Math.round(s / 60)} min`;
  if (s < 172800) return `${Math.round(s / 3600)} h`;
  if (s < 2 * 365 * 86400) return `${Math.round(s / 86400)} d`;
  return `${(s / (365.25 * 86400)).toFixed(1)} years`;
}

// A wall-clock time typed in the patient's zone ("2026-03-01T14:30") -> epoch ms.
export function zonedToEpoch(local, zone) {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})/.exec(local);
  if (!m) return NaN;
  const asUtc = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5]);
  let t = asUtc;
  for (let i = 0; i < 2; i++) t = asUtc - zoneOffsetMs(t, zone);
  return t;
}
function zoneOffsetMs(t, zone) {
  const parts = new Intl.DateTimeFormat('en-US', {
    timeZone: zone || 'UTC', hourCycle: 'h23', year: 'numeric', month: '2-digit',
    day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit' }).formatToParts(new Date(t));
  const g = (type) => +parts.find((p) => p.type === type).value;
  return Date.UTC(g('year'), g('month') - 1, g('day'), g('hour'), g('minute'), g('second')) -
      Math.floor(t / 1000) * 1000;
}

// Clinicians' units: mg for morphine and hydromorphone, µg for the others (baclofen,
// ziconotide, clonidine, fentanyl, sufentanil). The API carries µg and µL throughout.
const MG_DRUGS = new Set(['morphine', 'hydromorphone']);
export function doseUnit(drug) { return MG_DRUGS.has(String(drug || '').toLowerCase()) ? 'mg' : 'µg'; }
export function doseFromUg(ug, drug) { return doseUnit(drug) === 'mg' ? num(ug) / 1000 : num(ug); }
export function doseToUg(v, drug) { return doseUnit(drug) === 'mg' ? v * 1000 : v; }
export function fmtDose(ug, drug) {
  const v = doseFromUg(ug, drug);
  const digits = Math.abs(v) >= 100 ? 0 : Math.abs(v) >= 10 ? 1 : 2;
  return `${v.toFixed(digits)} ${doseUnit(drug)}`;
}
export function fmtConc(ugPerMl, drug) {
  return `${doseFromUg(ugPerMl, drug).toLocaleString('en-GB', { maximumFractionDigits: 2 })} ${doseUnit(drug)}/mL`;
}
export function fmtMl(ul, digits = 2) { return `${(num(ul) / 1000).toFixed(digits)} mL`; }
