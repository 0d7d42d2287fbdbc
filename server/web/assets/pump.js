// A pump's page: the twin at a glance, its active alerts, charts (reservoir with the
// forecast to the low alarm and empty, delivered dose per day against prescribed, stroke
// pressure, battery with the ERI forecast), a timeline of refills, MRI, boluses and
// prescription changes, a what-if of a proposed dose (ReplayTwin) over the current forecast,
// and the refill workflow (RecordRefill) in the clinician's units and the patient's zone.
import * as api from './api.js';
import { h, clear, num, label, fmtTime, fmtIn, fmtAgo, fmtDose, fmtConc, fmtMl, doseUnit,
  doseFromUg, doseToUg, zonedToEpoch } from './util.js';
import { drawChart, merge, COLORS } from './charts.js';
import { alertItem } from './inbox.js';

const DAY = 86400e3;
const HISTORY_DAYS = 30;
const HORIZON_DAYS = 90;

async function telemetry(id, startMs, endMs, intervalMs) {
  return api.listAll(`/v1/pumps/${encodeURIComponent(id)}/telemetry`,
    { startDeviceTimeMs: Math.floor(startMs), endDeviceTimeMs: Math.floor(endMs), downsampleIntervalMs: Math.floor(intervalMs), pageSize: 10000 },
    'samples', 5);
}

async function replay(id, proposed) {
  const body = { horizonMs: HORIZON_DAYS * DAY, stepMs: 6 * 3600e3 };
  if (proposed) body.proposedPrescription = proposed;
  return api.call('POST', `/v1/pumps/${encodeURIComponent(id)}:replay`, body);
}

function card(title, value, sub, cls) {
  return h('div', { class: 'stat ' + (cls || '') }, h('div', { class: 'stat-title' }, title),
    h('div', { class: 'stat-value' }, value), sub ? h('div', { class: 'muted small' }, sub) : null);
}

// The local calendar day of `ms` in `zone` ("2026-03-01").
function dayOf(ms, zone) {
  return new Intl.DateTimeFormat('en-CA', { timeZone: zone, year: 'numeric', month: '2-digit', day: '2-digit' }).format(new Date(ms));
}

export async function renderPump(main, id) {
  const pump = await api.pump(id);
  const [twin, history] = await Promise.all([
    api.call('GET', `/v1/pumps/${encodeURIComponent(id)}/twin`),
    api.call('GET', `/v1/pumps/${encodeURIComponent(id)}/prescriptions?pageSize=100`),
  ]);
  const zone = pump.timeZone || twin.timeZone || 'UTC';
  const rxs = history.prescriptions || [];
  const rx = rxs[0] || {};
  const drug = twin.drug || rx.drug || '';
  const conc = num(twin.concentrationUgPerMl || rx.concentrationUgPerMl);
  const unit = doseUnit(drug);

  const glance = h('section', { class: 'glance', 'aria-label': 'The twin at a glance' });
  const alertsList = h('ul', { class: 'alerts', id: 'pump-alerts' });
  const charts = {
    reservoir: h('div', { class: 'chart', id: 'chart-reservoir' }),
    dose: h('div', { class: 'chart', id: 'chart-dose' }),
    pressure: h('div', { class: 'chart', id: 'chart-pressure' }),
    battery: h('div', { class: 'chart', id: 'chart-battery' }),
  };
  const timeline = h('ol', { class: 'timeline', id: 'timeline' });
  main.append(
    h('h1', {}, `Pump ${pump.pumpId}`),
    h('p', { class: 'muted' }, [pump.modelName || label(pump.profile, 'PUMP_PROFILE_'), pump.clinic && `clinic ${pump.clinic}`,
      pump.patientRef && `patient ${pump.patientRef}`, `times in ${zone}`, label(pump.lifecycle, 'PUMP_LIFECYCLE_')].filter(Boolean).join(' · ')),
    glance,
    h('h2', {}, 'Active alerts'), alertsList,
    h('h2', {}, 'Reservoir'), charts.reservoir,
    h('div', { class: 'whatif' }),
    h('h2', {}, `Delivered dose per day against prescribed (${unit})`), charts.dose,
    h('h2', {}, 'Stroke pressure'), charts.pressure,
    h('h2', {}, 'Battery'), charts.battery,
    h('h2', {}, 'Timeline'), timeline,
    h('div', { class: 'refill' }));

  // The twin at a glance.
  function drawGlance(t) {
    const f = t.forecast || {};
    clear(glance);
    const last = num(t.lastSampleServerTimeMs);
    const blind = (t.detectors || []).filter((d) => d.state !== 'DETECTOR_STATE_OK' && d.state !== 'DETECTOR_STATE_ALERTING');
    glance.append(
      card('Reservoir (twin)', fmtMl(t.estimatedReservoirUl), `pump calculates ${fmtMl(t.calculatedReservoirUl)}` +
        (t.lastMeasuredReservoirUl !== undefined ? ` · measured ${fmtMl(t.lastMeasuredReservoirUl)}` : '')),
      card('Delivery ratio', num(t.deliveryRatio).toFixed(3), `± ${num(t.deliveryRatioStddev).toFixed(3)} (true ÷ programmed)`),
      card('Dose today', fmtDose(f.doseTodayDeliveredUg, drug), `prescribed ${fmtDose(f.doseTodayPrescribedUg, drug)} · ${drug} ${fmtConc(conc, drug)}`),
      card('Refill due', fmtIn(f.nextRefillDueMs), fmtTime(f.nextRefillDueMs, zone), num(f.nextRefillDueMs) && num(f.nextRefillDueMs) - Date.now() < 7 * DAY ? 'warn' : ''),
      card('Low alarm / empty', fmtIn(f.estimatedLowReservoirTimeMs),
        `empty ${fmtTime(f.estimatedEmptyTimeMs, zone)} (between ${fmtTime(f.estimatedEmptyEarliestMs, zone)} and ${fmtTime(f.estimatedEmptyLatestMs, zone)})`),
      card('Battery', `${Math.round(num(t.batteryChargeFraction) * 100)} %`, `ERI ${fmtTime(f.batteryEriTimeMs, zone)}` +
        (t.lastBatteryVoltageV !== undefined ? ` · ${num(t.lastBatteryVoltageV).toFixed(2)} V` : '')),
      card('Last data', fmtAgo(last), fmtTime(last, zone), last && Date.now() - last > 6 * 3600e3 ? 'warn' : ''),
      h('div', { class: 'stat wide' }, h('div', { class: 'stat-title' }, 'Detectors'),
        h('ul', { class: 'plain detectors' }, (t.detectors || []).map((d) => h('li', { title: d.detail || '' },
          h('span', { class: 'tag state-' + label(d.state, 'DETECTOR_STATE_').replace(/ /g, '-') }, label(d.state, 'DETECTOR_STATE_')), ' ',
          label(d.type, 'ALERT_TYPE_'), d.detail ? h('span', { class: 'muted small' }, ` — ${d.detail}`) : null))),
        blind.length ? null : h('span', { class: 'muted small' }, 'every detector sees this pump')));
  }
  drawGlance(twin);

  function drawAlerts() {
    clear(alertsList);
    const active = api.activeAlerts((a) => a.pumpId === id);
    for (const a of active) alertsList.append(alertItem(a, { onAck: drawAlerts }));
    if (!active.length) alertsList.append(h('li', { class: 'muted' }, 'No active alert.'));
  }
  drawAlerts();

  // History and forecast.
  const now = num(twin.deviceTimeMs) || Date.now();
  const start = Math.max(num(pump.implantTimeMs), now - HISTORY_DAYS * DAY);
  const interval = Math.max(60e3, Math.round((now - start) / 720));
  const [samples, forecast] = await Promise.all([telemetry(id, start, now + 1, interval), replay(id).catch(() => ({ trajectory: [] }))]);
  const traj = forecast.trajectory || [];
  const f = twin.forecast || {};
  const reservoirMarks = [
    num(f.estimatedLowReservoirTimeMs) && { t: num(f.estimatedLowReservoirTimeMs), label: 'low alarm' },
    num(f.estimatedEmptyTimeMs) && { t: num(f.estimatedEmptyTimeMs), label: 'empty' },
    { t: now, label: 'now', color: '#57606a' },
  ].filter(Boolean);
  const emptyBand = num(f.estimatedEmptyEarliestMs) && num(f.estimatedEmptyLatestMs)
    ? [{ from: num(f.estimatedEmptyEarliestMs), to: num(f.estimatedEmptyLatestMs), color: 'rgba(207,34,46,0.12)' }] : [];
  const ml = (v) => (v === undefined || v === null ? null : num(v) / 1000);

  let whatIf = null;
  function drawReservoir() {
    const parts = [
      { x: samples.map((s) => num(s.deviceTimeMs)), y: samples.map((s) => ml(s.measuredReservoirUl)) },
      { x: samples.map((s) => num(s.deviceTimeMs)), y: samples.map((s) => ml(s.calculatedReservoirUl)) },
      { x: traj.map((p) => num(p.deviceTimeMs)), y: traj.map((p) => ml(p.estimatedReservoirUl)) },
      { x: traj.map((p) => num(p.deviceTimeMs)), y: traj.map((p) => ml(p.calculatedReservoirUl)) },
    ];
    const series = [
      { label: 'measured (mL)', color: COLORS.measured, unit: 'mL' },
      { label: 'pump-calculated (mL)', color: COLORS.calculated },
      { label: 'model forecast (mL)', color: COLORS.model, dash: [6, 4] },
      { label: 'pump-calculated forecast (mL)', color: COLORS.calculated, dash: [2, 4] },
    ];
    if (whatIf) {
      parts.push({ x: whatIf.map((p) => num(p.deviceTimeMs)), y: whatIf.map((p) => ml(p.estimatedReservoirUl)) });
      series.push({ label: 'what-if (mL)', color: COLORS.whatif, width: 2 });
    }
    const m = merge(parts);
    drawChart(charts.reservoir, { x: m.x, zone, series: series.map((s, i) => ({ ...s, values: m.values[i] })),
      marks: reservoirMarks, bands: emptyBand, axes: [{ label: 'mL' }] });
  }
  drawReservoir();

  // Delivered per local day (from the pump's calculated reservoir: its decreases, refills
  // excluded) against the prescription in force that day.
  const perDay = new Map();
  for (let i = 1; i < samples.length; i++) {
    const a = samples[i - 1].calculatedReservoirUl, b = samples[i].calculatedReservoirUl;
    if (a === undefined || b === undefined) continue;
    const d = num(a) - num(b);
    if (d <= 0) continue;
    const day = dayOf(num(samples[i].deviceTimeMs), zone);
    perDay.set(day, (perDay.get(day) || 0) + d);
  }
  const days = [...perDay.keys()].sort();
  const rxAt = (ms) => rxs.find((r) => num(r.effectiveTimeMs) <= ms) || rx;
  const dayMs = days.map((d) => zonedToEpoch(d + 'T12:00', zone));
  drawChart(charts.dose, { x: dayMs, zone, axes: [{ label: unit + '/day' }], series: [
    { label: `delivered (${unit}/day)`, color: COLORS.delivered, bars: true, values: days.map((d) => doseFromUg(perDay.get(d) * conc / 1000, drug)) },
    { label: `prescribed (${unit}/day)`, color: COLORS.prescribed, width: 2, values: dayMs.map((t) => {
      const r = rxAt(t);
      return r.mode === 'THERAPY_MODE_SIMPLE_CONTINUOUS' || r.rateUlPerDay ? doseFromUg(num(r.rateUlPerDay) * num(r.concentrationUgPerMl || conc) / 1000, drug) : null;
    }) },
  ] });

  const sx = samples.map((s) => num(s.deviceTimeMs));
  const opt = (v) => (v === undefined ? null : num(v));
  drawChart(charts.pressure, { x: sx, zone, axes: [{ label: 'mmHg' }], series: [
    { label: 'stroke peak (mmHg)', color: COLORS.pressure, values: samples.map((s) => opt(s.strokePressurePeakMmhg)) },
    { label: 'outlet mean (mmHg)', color: COLORS.outlet, values: samples.map((s) => opt(s.outletPressureMmhg)) },
  ] });

  const bm = merge([
    { x: sx, y: samples.map((s) => opt(s.batteryVoltageV)) },
    { x: traj.map((p) => num(p.deviceTimeMs)), y: traj.map((p) => num(p.batteryChargeFraction) * 100) },
  ]);
  drawChart(charts.battery, { x: bm.x, zone,
    scales: { v: {}, pct: { range: [0, 100] } },
    axes: [{ scale: 'v', label: 'V' }, { scale: 'pct', side: 1, label: '% charge', grid: { show: false } }],
    series: [
      { label: 'voltage (V)', color: COLORS.battery, scale: 'v', values: bm.values[0] },
      { label: 'charge forecast (%)', color: COLORS.forecast, scale: 'pct', dash: [6, 4], values: bm.values[1] },
    ],
    marks: [num(f.batteryEriTimeMs) && { t: num(f.batteryEriTimeMs), label: 'ERI' }, num(f.batteryEosTimeMs) && { t: num(f.batteryEosTimeMs), label: 'end of service' }].filter(Boolean) });

  // Timeline: the pump's log (refills, MRI, boluses, stalls...) and the prescriptions.
  const items = [];
  for (const s of samples) for (const e of s.events || []) {
    if (e.type === 'DEVICE_EVENT_TELEMETRY_SESSION') continue;
    items.push({ t: num(e.deviceTimeMs), what: label(e.type, 'DEVICE_EVENT_'), detail: e.valueUl !== undefined ? fmtMl(e.valueUl, 3) : '' });
  }
  for (const r of rxs) {
    // The first prescription applies from the implant (its effective time is 0: "now" then).
    items.push({ t: num(r.effectiveTimeMs) || num(pump.implantTimeMs), what: `prescription v${r.version}`,
      detail: `${r.drug} ${fmtConc(r.concentrationUgPerMl, r.drug)}, ${label(r.mode, 'THERAPY_MODE_')}` +
        (num(r.rateUlPerDay) ? `, ${fmtDose(num(r.rateUlPerDay) * num(r.concentrationUgPerMl) / 1000, r.drug)}/day` : '') +
        ` (by ${r.setBy || '—'}${r.reason ? ': ' + r.reason : ''})` });
  }
  items.sort((a, b) => b.t - a.t);
  for (const it of items.slice(0, 100)) {
    timeline.append(h('li', {}, h('time', {}, fmtTime(it.t, zone)), ' ', h('strong', {}, it.what), it.detail ? ' · ' + it.detail : ''));
  }
  if (!items.length) timeline.append(h('li', { class: 'muted' }, 'Nothing in this period.'));
  timeline.append(h('li', { class: 'muted small' }, `The pump's event log of the last ${HISTORY_DAYS} days (every entry: the server keeps the samples that carry one when it downsamples) and every prescription.`));

  // What-if of a proposed daily dose.
  const wi = main.querySelector('.whatif');
  const currentDose = doseFromUg(num(rx.rateUlPerDay) * conc / 1000, drug);
  const doseInput = h('input', { id: 'whatif-dose', type: 'number', step: 'any', min: '0', value: currentDose ? +currentDose.toFixed(3) : '' });
  const wiOut = h('div', { role: 'status', id: 'whatif-result' });
  const wiForm = h('form', { class: 'inline', id: 'whatif' },
    h('label', { for: 'whatif-dose' }, `What if the daily dose were (${unit}/day)`), doseInput,
    h('button', { type: 'submit' }, 'Replay'), wiOut);
  wiForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    clear(wiOut);
    const ug = doseToUg(Number(doseInput.value), drug);
    if (!(ug >= 0) || !conc) { wiOut.textContent = 'Give a dose of 0 or more.'; return; }
    const proposed = { drug, concentrationUgPerMl: conc, mode: 'THERAPY_MODE_SIMPLE_CONTINUOUS', rateUlPerDay: ug / (conc / 1000) };
    try {
      const r = await replay(id, proposed);
      whatIf = r.trajectory || [];
      drawReservoir();
      const empty = whatIf.find((p) => num(p.estimatedReservoirUl) <= 0);
      wiOut.append(`Drawn over the forecast (rate ${(ug / (conc / 1000)).toFixed(0)} µL/day). `,
        empty ? `Empty ${fmtTime(empty.deviceTimeMs, zone)}. ` : `Not empty within ${HORIZON_DAYS} days. `,
        ...(r.violations || []).map((v) => h('span', { class: v.hard ? 'error' : 'warn' }, `${v.hard ? 'Refused' : 'Warning'}: ${v.message} `)));
    } catch (ex) { wiOut.textContent = ex.message; }
  });
  wi.append(wiForm);

  // Refill workflow (clinicians).
  if (api.can('clinician')) main.querySelector('.refill').append(await refillForm(id, drug, conc, zone));

  const off = api.onAlerts((batch) => { if (batch.some((a) => a.pumpId === id)) drawAlerts(); });
  const stop = api.watchTwins([id], (t) => drawGlance(t), 2000);
  return () => { off(); stop(); };
}

async function refillForm(id, drug, conc, zone) {
  const list = await api.drugs();
  const drugSel = h('select', { id: 'refill-drug' }, list.map((d) => h('option', { value: d.key, selected: d.key === drug }, d.displayName || d.key)));
  const concUnit = h('span', {});
  const concIn = h('input', { id: 'refill-conc', type: 'number', step: 'any', min: '0', required: true });
  const setConc = (ug) => { concIn.value = ug ? +doseFromUg(ug, drugSel.value).toFixed(4) : ''; concUnit.textContent = `${doseUnit(drugSel.value)}/mL`; };
  setConc(conc);
  drugSel.addEventListener('change', () => setConc(drugSel.value === drug ? conc : 0));
  const withdrawn = h('input', { id: 'refill-withdrawn', type: 'number', step: 'any', min: '0', required: true });
  const added = h('input', { id: 'refill-added', type: 'number', step: 'any', min: '0', required: true });
  const when = h('input', { id: 'refill-time', type: 'datetime-local' });
  const approx = h('input', { id: 'refill-approx', type: 'checkbox' });
  const reason = h('input', { id: 'refill-reason', value: 'scheduled refill' });
  const out = h('div', { id: 'refill-result', role: 'status' });
  const form = h('form', { class: 'card', id: 'refill' },
    h('h2', {}, 'Record a refill'),
    h('p', { class: 'muted small' }, `Volumes in mL; time in the patient's zone (${zone}); empty time: now.`),
    h('div', { class: 'fields' },
      h('label', { for: 'refill-withdrawn' }, 'Withdrawn (mL)'), withdrawn,
      h('label', { for: 'refill-added' }, 'Added (mL)'), added,
      h('label', { for: 'refill-drug' }, 'Drug'), drugSel,
      h('label', { for: 'refill-conc' }, 'Concentration'), h('span', {}, concIn, ' ', concUnit),
      h('label', { for: 'refill-time' }, `When (${zone})`), h('span', {}, when, ' ', h('label', { class: 'check' }, approx, ' approximate')),
      h('label', { for: 'refill-reason' }, 'Reason'), reason),
    h('button', { type: 'submit' }, 'Record refill'), out);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clear(out);
    const body = {
      withdrawnVolumeUl: Number(withdrawn.value) * 1000, addedVolumeUl: Number(added.value) * 1000,
      drug: drugSel.value, concentrationUgPerMl: doseToUg(Number(concIn.value), drugSel.value), reason: reason.value,
      timeApproximate: approx.checked,
    };
    if (when.value) {
      const t = zonedToEpoch(when.value, zone);
      if (Number.isNaN(t)) { out.textContent = 'The time is not a date and time.'; return; }
      body.deviceTimeMs = String(t);
    }
    try {
      const r = await api.call('POST', `/v1/pumps/${encodeURIComponent(id)}/refills`, body);
      const ok = r.verdict === 'REFILL_VERDICT_OK';
      out.append(h('p', { class: ok ? 'ok' : 'error', id: 'refill-verdict' }, ok ? 'Verdict: as expected.' : 'Verdict: DISCREPANCY (an alert was raised).'),
        h('p', {}, `Expected in the reservoir: ${fmtMl(r.expectedRemainingUl)}; withdrawn ${fmtMl(body.withdrawnVolumeUl)}; ` +
          `difference ${fmtMl(r.discrepancyUl)} (threshold ${fmtMl(r.thresholdUl)}).`));
    } catch (ex) { out.append(h('p', { class: 'error' }, ex.message)); }
  });
  return form;
}
