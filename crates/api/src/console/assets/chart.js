// A stacked bar chart of counts per day and event type, drawn as SVG (no chart framework).
import { h, s, table } from './ui.js';

const W = 720;
const H = 220;
const PAD = { left: 52, right: 8, top: 14, bottom: 34 };

/** Rounds `max` up to a 1/2/5 × 10^n step so the axis reads well. */
function niceMax(max) {
  if (max <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(max));
  return [1, 2, 2.5, 5, 10].map((m) => m * p).find((v) => v >= max);
}

/**
 * `days`: [{date, total, counts: {event_name: n}}] oldest first. `types`: the event names in
 * stacking order (each gets the CSS class `series-<index>`).
 */
export function dailyChart(title, days, types) {
  const max = niceMax(Math.max(0, ...days.map((d) => d.total)));
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const slot = plotW / Math.max(1, days.length);
  const barW = Math.max(2, slot * 0.7);
  const y = (v) => PAD.top + plotH - (v / max) * plotH;
  const total = days.reduce((a, d) => a + d.total, 0);
  const summary = `${title}: ${total} in ${days.length} days, most on one day ${Math.max(0, ...days.map((d) => d.total))}.`;
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': summary },
    s('title', {}, summary),
    // Grid lines at 0, half and the top; the half line only when it is a whole number.
    [0, max / 2, max].filter((v) => Number.isInteger(v)).map((v) => [
      s('line', { x1: PAD.left, x2: W - PAD.right, y1: y(v), y2: y(v), class: 'grid' }),
      s('text', { x: PAD.left - 6, y: y(v) + 4, class: 'axis', 'text-anchor': 'end' }, String(v)),
    ]),
    days.map((d, i) => {
      let base = 0;
      const x = PAD.left + i * slot + (slot - barW) / 2;
      return types.map((t, ti) => {
        const n = d.counts[t] || 0;
        if (!n) return null;
        const rect = s('rect', { x, y: y(base + n), width: barW, height: Math.max(1, y(base) - y(base + n)), class: `series-${ti}` },
          s('title', {}, `${d.date} ${t}: ${n}`));
        base += n;
        return rect;
      });
    }),
    // Weekly date labels, ending on the last day (anchored at its right so it stays inside).
    days.map((d, i) => {
      const last = i === days.length - 1;
      if (!last && (days.length - 1 - i) % 7 !== 0) return null;
      return s('text', {
        x: last ? W - PAD.right : PAD.left + i * slot + slot / 2, y: H - 10, class: 'axis', 'text-anchor': last ? 'end' : 'middle',
      }, d.date.slice(5));
    }));
  const legend = h('ul.legend', {}, types.map((t, ti) => h('li', {}, h(`span.swatch.series-${ti}`, { 'aria-hidden': 'true' }), t)));
  const data = h('details.chart-data', {}, h('summary', {}, 'Show the numbers'),
    table(title, ['Day', 'Total', ...types], days.filter((d) => d.total).map((d) => [d.date, d.total, ...types.map((t) => d.counts[t] || 0)]),
      'No notifications in this window.'));
  return h('figure.chart-figure', {}, h('figcaption', {}, title), svg, legend, data);
}
