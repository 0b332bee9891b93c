// Overview: per webhook, its state and delivery health over the last 24 h (from its stats
// endpoint), and notifications per day and event type over the last 30 days as a chart.
import { optional } from './api.js';
import { dailyChart } from './chart.js';
import { age, EVENT_TYPES, h, heading, ms, percent, table } from './ui.js';
import { listWebhooks, statusBadge } from './webhooks.js';

export async function render() {
  const { items, partners } = await listWebhooks();
  const withStats = await Promise.all(items.map(async (w) => ({
    w,
    stats: await optional(w.statsPath, { partner: w.partner }),
    daily: await optional(w.dailyPath, { partner: w.partner, query: { days: 30 } }),
  })));
  const rows = withStats.concat(await waitingWithoutWebhook(items, partners)).map(({ w, stats }) => [
    h('a', { href: `#/deliveries?webhook=${encodeURIComponent(w.source)}:${encodeURIComponent(w.id)}` }, w.name),
    statusBadge(w),
    stats ? percent(stats.success_rate) : '—',
    stats ? String(stats.attempts) : '—',
    stats ? ms(stats.latency_p50_ms) : '—',
    stats ? ms(stats.latency_p99_ms) : '—',
    stats ? String(stats.pending) : '—',
    stats ? age(stats.oldest_pending_age_seconds) : '—',
  ]);
  return [
    heading('Overview', 'Delivery health of each webhook over the last 24 hours.'),
    table('Webhooks, last 24 hours',
      ['Webhook', 'Status', 'Success rate', 'Attempts', 'Latency p50', 'Latency p99', 'Pending', 'Oldest pending'],
      rows, 'No webhook registered yet: register one on the Webhooks page.'),
    chart(withStats),
  ];
}

/**
 * Partners of the key without a v1 webhook whose notifications wait (parked): shown so an
 * operator sees why nothing arrives. Their stats endpoint answers without a webhook.
 */
async function waitingWithoutWebhook(items, partners) {
  const free = partners.filter((p) => !items.some((w) => w.source === 'v1' && w.partner === p));
  const found = await Promise.all(free.map(async (p) => ({
    w: { source: 'v1', id: p, name: `Partner ${p}`, partner: p, status: 'no webhook', disabledReason: 'notifications wait until one is registered' },
    stats: await optional(`/v1/webhooks/${encodeURIComponent(p)}/stats`, { partner: p }),
  })));
  return found.filter((x) => x.stats && x.stats.pending > 0);
}

/** The daily series of every webhook summed per day and event type. */
function chart(withStats) {
  const series = withStats.map((x) => x.daily?.days).filter(Boolean);
  if (!series.length) return null;
  const days = series[0].map((d) => ({ date: d.date, total: 0, counts: {} }));
  for (const s of series) {
    s.forEach((d, i) => {
      if (!days[i]) return;
      days[i].total += d.total;
      for (const [k, n] of Object.entries(d.counts)) days[i].counts[k] = (days[i].counts[k] || 0) + n;
    });
  }
  const seen = new Set(days.flatMap((d) => Object.keys(d.counts)));
  const types = [...EVENT_TYPES.filter((t) => seen.has(t)), ...[...seen].filter((t) => !EVENT_TYPES.includes(t)).sort()];
  return h('section.card', {}, dailyChart('Notifications per day by event type, last 30 days (UTC)', days, types.length ? types : EVENT_TYPES));
}
