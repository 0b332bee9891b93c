// Deliveries: a webhook's delivery log with filters, each delivery's attempts, a Retry button
// per delivery, and a replay form for a time window.
import { api, ApiError } from './api.js';
import {
  badge, checkboxes, clearErrors, EVENT_TYPES, field, fill, formError, h, heading, localValue,
  notify, showErrors, utc, when,
} from './ui.js';
import { listWebhooks } from './webhooks.js';

const PAGE = 50;

export async function render(ctx) {
  const { items } = await listWebhooks();
  const intro = heading('Deliveries', 'Every notification sent to a webhook, with each attempt. Retry one, or replay a time window.');
  if (!items.length) return [intro, h('p.empty', {}, 'No webhook registered yet: register one on the Webhooks page.')];
  const p = ctx.params;
  const selected = items.find((w) => `${w.source}:${w.id}` === p.get('webhook')) || items.find((w) => w.partner === ctx.partner) || items[0];
  const filters = filterForm(items, selected, p);
  const log = h('section.card#delivery-log', {});
  await loadLog(log, selected, {
    status: p.get('status') || '',
    event_name: p.get('event_name') || '',
    from: p.get('from') || '',
    to: p.get('to') || '',
  });
  return [intro, filters, log, replayForm(selected)];
}

function filterForm(items, selected, p) {
  const form = h('form.card.inline#delivery-filters', {},
    field('Webhook', h('select', { name: 'webhook' },
      items.map((w) => h('option', { value: `${w.source}:${w.id}`, selected: w === selected }, `${w.name} (${w.source})`)))),
    field('Status', h('select', { name: 'status' },
      ['', 'pending', 'delivered', 'failed'].map((v) => h('option', { value: v, selected: v === (p.get('status') || '') }, v || 'any')))),
    field('Event type', h('select', { name: 'event_name' },
      ['', ...EVENT_TYPES].map((v) => h('option', { value: v, selected: v === (p.get('event_name') || '') }, v || 'any')))),
    field('Last attempt from (UTC)', h('input', { name: 'from', type: 'datetime-local', value: p.get('from') || '' }),
      'The time window narrows the deliveries loaded so far; Load more fetches further.'),
    field('Last attempt to (UTC)', h('input', { name: 'to', type: 'datetime-local', value: p.get('to') || '' })),
    h('button', { type: 'submit' }, 'Apply filters'));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const q = new URLSearchParams();
    for (const [k, v] of new FormData(form)) if (v) q.set(k, v);
    window.location.hash = `#/deliveries?${q}`;
  });
  return form;
}

/** Within the time window (by last attempt; a never-attempted delivery only without one). */
function inWindow(d, f) {
  if (!f.from && !f.to) return true;
  if (!d.last_attempt_at) return false;
  const t = Date.parse(d.last_attempt_at);
  return (!f.from || t >= Date.parse(utc(f.from))) && (!f.to || t <= Date.parse(utc(f.to)));
}

async function loadLog(log, w, f, cursor, tbody) {
  const page = await api('GET', w.deliveriesPath, {
    partner: w.partner, query: { status: f.status, event_name: f.event_name, limit: PAGE, cursor },
  });
  const shown = (page.deliveries || []).filter((d) => inWindow(d, f));
  if (!tbody) {
    tbody = h('tbody', {});
    fill(log, h('h2', {}, `Delivery log of ${w.name}`),
      h('div.table-wrap', { tabindex: '0', role: 'region', 'aria-label': 'Delivery log' },
        h('table.deliveries.stack', {},
          h('caption', {}, 'Deliveries, in the order they were queued'),
          h('thead', {}, h('tr', {}, ['Delivery', 'Event', 'Status', 'Attempts', 'Last attempt', 'Last result', 'Actions'].map((x) => h('th', { scope: 'col' }, x)))),
          tbody)),
      h('p.empty#delivery-empty', { hidden: true }, 'No delivery matches these filters.'),
      h('div.more'));
  }
  for (const d of shown) tbody.append(...deliveryRows(w, d));
  log.querySelector('#delivery-empty').hidden = tbody.children.length > 0;
  const more = log.querySelector('.more');
  fill(more, page.next_cursor
    ? h('button.secondary', { type: 'button', on: { click: () => loadLog(log, w, f, page.next_cursor, tbody) } }, 'Load more')
    : null);
}

function result(d) {
  if (d.last_status_code) return `HTTP ${d.last_status_code}`;
  return d.last_error || '—';
}

function statusKind(status) {
  return { delivered: 'ok', failed: 'bad', pending: 'wait' }[status] || status;
}

/** The row of a delivery and its (initially hidden) detail row with the attempts. */
function deliveryRows(w, d) {
  const detail = h('tr.detail', { hidden: true, dataset: { delivery: d.delivery_id } }, h('td', { colspan: 7 }));
  const cells = (x) => [
    h('td', { 'data-label': 'Delivery' }, h('code', {}, x.delivery_id)),
    h('td', { 'data-label': 'Event' }, x.event_name),
    h('td.status', { 'data-label': 'Status' }, badge(x.status, statusKind(x.status))),
    h('td.attempts', { 'data-label': 'Attempts' }, String(x.attempts)),
    h('td', { 'data-label': 'Last attempt' }, when(x.last_attempt_at)),
    h('td', { 'data-label': 'Last result' }, result(x)),
  ];
  const toggle = h('button.secondary', { type: 'button', 'aria-expanded': 'false' }, 'Attempts', h('span.sr-only', {}, ` of ${d.delivery_id}`));
  const retry = h('button', { type: 'button' }, 'Retry', h('span.sr-only', {}, ` ${d.delivery_id}`));
  const row = h('tr', { dataset: { delivery: d.delivery_id } }, cells(d), h('td', { 'data-label': 'Actions' }, h('div.actions', {}, toggle, retry)));
  const update = (x) => { row.replaceChildren(...cells(x), row.lastChild); };
  toggle.addEventListener('click', async () => {
    const open = detail.hidden;
    detail.hidden = !open;
    toggle.setAttribute('aria-expanded', String(open));
    if (open) update(await showAttempts(w, d.delivery_id, detail));
  });
  retry.addEventListener('click', async () => {
    retry.disabled = true;
    try {
      const before = (await getDelivery(w, d.delivery_id)).delivery.attempts;
      await api('POST', `${w.deliveriesPath}/${encodeURIComponent(d.delivery_id)}/retry`, { partner: w.partner });
      notify(`Retry of ${d.delivery_id} queued.`);
      update({ ...d, status: 'pending' });
      detail.hidden = false;
      toggle.setAttribute('aria-expanded', 'true');
      update(await waitForAttempt(w, d.delivery_id, detail, before));
    } catch (e) {
      notify(e.message, 'bad');
    } finally {
      retry.disabled = false;
    }
  });
  return [row, detail];
}

function getDelivery(w, id) {
  return api('GET', `${w.deliveriesPath}/${encodeURIComponent(id)}`, { partner: w.partner });
}

/** Polls the delivery until it has more than `before` attempts (up to 20 s), showing each. */
async function waitForAttempt(w, id, detail, before) {
  let latest = null;
  for (let i = 0; i < 40; i += 1) {
    latest = await showAttempts(w, id, detail);
    if (latest.attempts > before && latest.status !== 'pending') return latest;
    await new Promise((r) => { setTimeout(r, 500); });
  }
  return latest;
}

async function showAttempts(w, id, detail) {
  const cell = detail.firstChild;
  try {
    const d = await getDelivery(w, id);
    const attempts = d.attempt_list || [];
    fill(cell, attempts.length
      ? h('table.attempts', {},
        h('caption', {}, `Attempts of ${id}`),
        h('thead', {}, h('tr', {}, ['#', 'Time', 'Result', 'Latency', 'Receiver answered'].map((x) => h('th', { scope: 'col' }, x)))),
        h('tbody', {}, attempts.map((a, i) => h('tr', {},
          h('td', {}, String(i + 1)),
          h('td', {}, when(a.attempted_at)),
          h('td', {}, a.status_code ? `HTTP ${a.status_code}` : (a.error || '—')),
          h('td', {}, `${a.latency_ms} ms`),
          h('td', {}, a.response_body ? h('code.excerpt', {}, a.response_body.slice(0, 200)) : '—')))))
      : h('p.empty', {}, 'No attempt yet.'));
    return d.delivery;
  } catch (e) {
    fill(cell, h('p.form-error', {}, e instanceof ApiError ? e.message : String(e)));
    throw e;
  }
}

function replayForm(w) {
  const alert = formError();
  const form = h('form.card#replay-form', { novalidate: true },
    h('h2', {}, `Replay notifications of ${w.name}`),
    h('p.hint', {}, 'Sends again every notification of this webhook whose event happened in the window.'),
    h('div.inline', {},
      field('From (UTC)', h('input', { name: 'timestamp_from', type: 'datetime-local', required: true, value: localValue(new Date(Date.now() - 86400000)) })),
      field('To (UTC)', h('input', { name: 'timestamp_to', type: 'datetime-local' }))),
    checkboxes('Event types (none: all)', 'event_types', EVENT_TYPES),
    alert,
    h('button', { type: 'submit' }, 'Replay'));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    const data = new FormData(form);
    const types = data.getAll('event_types');
    try {
      const r = await api('POST', w.replayPath, {
        partner: w.partner,
        body: {
          timestamp_from: utc(data.get('timestamp_from')),
          timestamp_to: utc(data.get('timestamp_to')),
          event_types: types.length ? types : undefined,
        },
      });
      alert.textContent = '';
      notify(`Replay queued ${r.requeued} notification(s).`);
      fill(alert, `Requeued ${r.requeued} notification(s).`);
    } catch (e) {
      showErrors(form, e);
    }
  });
  return form;
}
