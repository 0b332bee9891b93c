// Prospects: one prospect's timeline (its events, newest first, with their data) and the
// enrollments of this partner that cover it.
import { api } from './api.js';
import { clearErrors, field, formError, h, heading, localValue, showErrors, table, utc, when, EVENT_TYPES } from './ui.js';

export async function render(ctx) {
  const id = ctx.params.get('prospect_id') || '';
  const since = ctx.params.get('since') || localValue(new Date(Date.now() - 365 * 86400000));
  const alert = formError();
  const form = h('form.card.inline#prospect-search', { novalidate: true },
    field('Prospect id', h('input', { name: 'prospect_ids', type: 'search', value: id, required: true, spellcheck: 'false', placeholder: '40 hex digits' })),
    field('Events since (UTC)', h('input', { name: 'timestamp_from', type: 'datetime-local', value: since })),
    h('button', { type: 'submit' }, 'Show timeline'),
    alert);
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const data = new FormData(form);
    const q = new URLSearchParams({ prospect_id: String(data.get('prospect_ids')).trim(), since: String(data.get('timestamp_from')) });
    window.location.hash = `#/prospects?${q}`;
  });
  const content = [heading('Prospects', 'A prospect\'s events, newest first, and the enrollments that cover it.'), form];
  if (!id) return content;
  try {
    const [events, covering] = await Promise.all([
      api('POST', '/v1/prospects/events', { body: { prospect_ids: [id], event_types: EVENT_TYPES, timestamp_from: utc(since) } }),
      api('GET', '/v1/prospects/events/enrollments', { query: { prospect_id: id } }),
    ]);
    content.push(timeline(events.output_events || []), coverage(covering.enrollments || []));
  } catch (e) {
    clearErrors(form);
    showErrors(form, e);
  }
  return content;
}

function timeline(events) {
  if (!events.length) return h('section.card', {}, h('h2', {}, 'Timeline'), h('p.empty', {}, 'No events in this window.'));
  return h('section.card', {}, h('h2', {}, `Timeline (${events.length})`),
    h('ol.timeline', {}, events.map((e) => h('li', {},
      h('p', {}, h('strong', {}, e.event_name), ' · ', h('time', { datetime: e.event_time }, when(e.event_time))),
      h('p.muted', {}, `Event ${e.event_id}`),
      h('details', {}, h('summary', {}, 'Data'), h('pre', {}, JSON.stringify(e.data, null, 2)))))));
}

function coverage(enrollments) {
  return h('section.card', {}, h('h2', {}, 'Covering enrollments'),
    table('Enrollments covering this prospect', ['Enrollment key', 'Enrollment id', 'Event types'],
      enrollments.map((e) => [e.enrollment_key, h('code', {}, e.enrollment_id), e.event_types.join(', ')]),
      'No enrollment of this partner covers this prospect.'));
}
