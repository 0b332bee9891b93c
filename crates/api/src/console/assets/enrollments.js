// Enrollments: search by enrollment key or prospect id, create, edit (PATCH), delete; a 422
// is shown next to the field its `loc` names.
import { api } from './api.js';
import {
  checkboxes, clearErrors, EVENT_TYPES, field, fill, formError, h, heading, notify, showErrors, table,
} from './ui.js';

const PAGE = 50;

export async function render(ctx) {
  const p = ctx.params;
  const query = { enrollment_key: p.get('enrollment_key') || '', prospect_id: p.get('prospect_id') || '' };
  const search = searchForm(query);
  const list = h('section.card#enrollment-list', {});
  const editor = h('section.card#enrollment-editor', {});
  editForm(editor, null);
  try {
    await loadList(list, editor, query);
  } catch (e) {
    showErrors(search, e);
  }
  return [heading('Enrollments', `Which prospects and event types partner ${ctx.partner} is notified of.`), search, list, editor];
}

function searchForm(query) {
  const form = h('form.card.inline#enrollment-search', { novalidate: true },
    field('Enrollment key', h('input', { name: 'enrollment_key', type: 'search', value: query.enrollment_key })),
    field('Prospect id', h('input', { name: 'prospect_id', type: 'search', value: query.prospect_id, spellcheck: 'false' })),
    h('button', { type: 'submit' }, 'Search'),
    formError());
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const q = new URLSearchParams();
    for (const [k, v] of new FormData(form)) if (String(v).trim()) q.set(k, String(v).trim());
    window.location.hash = `#/enrollments?${q}`;
  });
  return form;
}

async function loadList(list, editor, query, cursor, rows = []) {
  const page = await api('GET', '/v1/prospects/events/enrollments', { query: { ...query, limit: PAGE, cursor } });
  rows.push(...page.enrollments);
  fill(list, h('h2', {}, 'Enrollments'),
    table('Enrollments', ['Enrollment key', 'Enrollment id', 'Event types', 'Prospects', 'Actions'], rows.map((e) => [
      e.enrollment_key,
      h('code', {}, e.enrollment_id),
      e.event_types.join(', '),
      e.prospect_ids.length === 1 ? h('code', {}, e.prospect_ids[0]) : `${e.prospect_ids.length} prospects`,
      h('div.actions', {},
        h('button.secondary', { type: 'button', on: { click: () => editForm(editor, e) } }, 'Edit', h('span.sr-only', {}, ` ${e.enrollment_key}`)),
        h('button.danger', { type: 'button', on: { click: (ev) => remove(e, ev.currentTarget) } }, 'Delete', h('span.sr-only', {}, ` ${e.enrollment_key}`))),
    ]), query.enrollment_key || query.prospect_id ? 'No enrollment matches.' : 'No enrollment yet: create one below.'),
    page.next_cursor
      ? h('button.secondary', { type: 'button', on: { click: () => loadList(list, editor, query, page.next_cursor, rows) } }, 'Load more')
      : null);
}

/** The create form (`e` null) or the edit form of enrollment `e`. */
function editForm(editor, e) {
  const alert = formError();
  const form = h('form#enrollment-form', { novalidate: true },
    field('Enrollment key', h('input', { name: 'enrollment_key', type: 'text', required: true, value: e?.enrollment_key || '' }),
      'Your label for this enrollment; it is sent with every notification.'),
    checkboxes('Event types', 'event_types', EVENT_TYPES, e?.event_types || EVENT_TYPES),
    field('Prospect ids', h('textarea', { name: 'prospect_ids', rows: 4, spellcheck: 'false', required: true }, (e?.prospect_ids || []).join('\n')),
      'One per line (40 hex digits each).'),
    alert,
    h('div.actions', {},
      h('button', { type: 'submit' }, e ? 'Save changes' : 'Create enrollment'),
      e ? h('button.secondary', { type: 'button', on: { click: () => editForm(editor, null) } }, 'Cancel') : null));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    const data = new FormData(form);
    const body = {
      enrollment_key: data.get('enrollment_key'),
      event_types: data.getAll('event_types'),
      prospect_ids: String(data.get('prospect_ids')).split(/[\s,]+/).filter(Boolean),
    };
    try {
      if (e) {
        await api('PATCH', '/v1/prospects/events/enrollments', { body: { ...body, enrollment_id: e.enrollment_id } });
        notify(`Enrollment ${body.enrollment_key} saved.`);
      } else {
        const r = await api('POST', '/v1/prospects/events/enrollments', { body });
        notify(`Enrollment ${r.enrollment_key} created (${r.enrollment_id}).`);
      }
      window.dispatchEvent(new Event('console:refresh'));
    } catch (err) {
      showErrors(form, err);
    }
  });
  fill(editor, h('h2', { tabindex: '-1' }, e ? `Edit enrollment ${e.enrollment_key}` : 'Create an enrollment'), form);
  if (e) editor.querySelector('h2').focus();
}

async function remove(e, button) {
  // A second click confirms: the button turns into a confirmation for 5 s.
  if (button.dataset.confirm !== 'yes') {
    button.dataset.confirm = 'yes';
    button.firstChild.textContent = 'Confirm delete';
    setTimeout(() => { if (button.isConnected) { button.dataset.confirm = ''; button.firstChild.textContent = 'Delete'; } }, 5000);
    return;
  }
  try {
    await api('DELETE', '/v1/prospects/events/enrollments', { body: { enrollment_id: e.enrollment_id } });
    notify(`Enrollment ${e.enrollment_key} deleted.`);
    window.dispatchEvent(new Event('console:refresh'));
  } catch (err) {
    notify(err.message, 'bad');
  }
}
