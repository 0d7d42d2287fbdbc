// Charts with uPlot (installed from npm, embedded in pumptwind): time axes in the patient's
// zone, dashed markers for forecast instants, a shaded band for an uncertainty interval.
// Each chart's container says how many points it drew (data-points), for the browser test.

export const COLORS = {
  measured: '#1f6feb', calculated: '#8250df', model: '#1a7f37', forecast: '#1a7f37',
  whatif: '#bf3989', prescribed: '#9a6700', delivered: '#0969da', pressure: '#cf222e',
  outlet: '#57606a', battery: '#1a7f37', marker: '#cf222e',
};

function markersPlugin(marks, bands) {
  return {
    hooks: {
      draw: [(u) => {
        const ctx = u.ctx;
        const { left, top, width, height } = u.bbox;
        ctx.save();
        for (const b of bands || []) {
          let x0 = u.valToPos(b.from / 1000, 'x', true);
          let x1 = u.valToPos(b.to / 1000, 'x', true);
          x0 = Math.max(left, x0); x1 = Math.min(left + width, x1);
          if (x1 <= x0) continue;
          ctx.fillStyle = b.color;
          ctx.fillRect(x0, top, x1 - x0, height);
        }
        const px = window.devicePixelRatio || 1;
        ctx.font = `${11 * px}px system-ui, sans-serif`;
        let row = 0;
        for (const m of marks || []) {
          const x = u.valToPos(m.t / 1000, 'x', true);
          if (!(x >= left && x <= left + width)) continue;
          ctx.strokeStyle = m.color || COLORS.marker;
          ctx.fillStyle = m.color || COLORS.marker;
          ctx.setLineDash([4 * px, 4 * px]);
          ctx.beginPath(); ctx.moveTo(x, top); ctx.lineTo(x, top + height); ctx.stroke();
          ctx.fillText(m.label, x + 3 * px, top + (12 + 12 * (row++ % 3)) * px);
        }
        ctx.restore();
      }],
    },
  };
}

// series: [{label, color, scale?, width?, dash?, bars?, values: [..]}]; x: epoch ms.
export function drawChart(container, { title, x, series, zone, scales = {}, axes = [], marks = [], bands = [] }) {
  container.textContent = '';
  const width = Math.max(320, Math.min(1100, container.clientWidth || 900));
  const bars = window.uPlot.paths && window.uPlot.paths.bars ? window.uPlot.paths.bars({ size: [0.6, 40] }) : undefined;
  const opts = {
    title, width, height: 260,
    tzDate: (ts) => window.uPlot.tzDate(new Date(ts * 1000), zone || 'UTC'),
    scales: { x: { time: true }, ...scales },
    series: [{}, ...series.map((s) => ({
      label: s.label, stroke: s.color, width: s.width || 1.5, scale: s.scale || 'y',
      dash: s.dash, spanGaps: true, points: { show: false },
      fill: s.bars ? s.color + '55' : undefined, paths: s.bars ? bars : undefined,
    }))],
    axes: axes.length ? [{}, ...axes] : [{}, { label: series[0] && series[0].unit }],
    plugins: [markersPlugin(marks, bands)],
  };
  const data = [x.map((t) => t / 1000), ...series.map((s) => s.values)];
  const points = series.reduce((n, s) => n + s.values.filter((v) => v !== null && v !== undefined && !Number.isNaN(v)).length, 0);
  container.dataset.points = String(points);
  if (!window.uPlot) { container.textContent = 'Charts are unavailable (the charting library did not load).'; return null; }
  return new window.uPlot(opts, data, container);
}

// Merges series sampled at different times onto one sorted x axis (null where absent).
export function merge(parts) {
  const xs = [...new Set(parts.flatMap((p) => p.x))].sort((a, b) => a - b);
  const index = new Map(xs.map((t, i) => [t, i]));
  const values = parts.map((p) => {
    const v = new Array(xs.length).fill(null);
    p.x.forEach((t, i) => { v[index.get(t)] = p.y[i]; });
    return v;
  });
  return { x: xs, values };
}
