// DOM helpers. Text always goes through textContent (API data is never parsed as markup).

/** h('tag.class#id', {attr: value, on: {event: fn}}, ...children) */
export function h(spec, attrs = {}, ...children) {
  const [tagAndClasses, id] = spec.split('#');
  const [tag, ...classes] = tagAndClasses.split('.');
  const el = document.createElement(tag || 'div');
  if (id) el.id = id;
  if (classes.length) el.className = classes.join(' ');
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'on') for (const [ev, fn] of Object.entries(v)) el.addEventListener(ev, fn);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (v === true) el.setAttribute(k, '');
    else if (v !== false && v !== undefined && v !== null) el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replaces the children of `el`. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** SVG elements (the chart). */
export function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  append(el, children);
  return el;
}

let uid = 0;
/** A labelled form field; `control` is an input/select/textarea element with a `name`. */
export function field(label, control, hint) {
  const id = control.id || `f${++uid}`;
  control.id = id;
  const errorId = `${id}-error`;
  const hintId = hint ? `${id}-hint` : null;
  control.setAttribute('aria-describedby', [hintId, errorId].filter(Boolean).join(' '));
  return h('div.field', {},
    h('label', { for: id }, label),
    hint ? h('p.hint', { id: hintId }, hint) : null,
    control,
    h('p.field-error', { id: errorId, dataset: { for: control.name } }));
}

/** A group of checkboxes in a fieldset (name = `name`, one per value). */
export function checkboxes(legend, name, values, checked = []) {
  return h('fieldset.field', { dataset: { name } },
    h('legend', {}, legend),
    values.map((v) => h('label.check', {},
      h('input', { type: 'checkbox', name, value: v, checked: checked.includes(v) }), ` ${v}`)),
    h('p.field-error', { dataset: { for: name } }));
}

/** Clears the field and form errors of `form`. */
export function clearErrors(form) {
  for (const p of form.querySelectorAll('.field-error, .form-error')) p.textContent = '';
  for (const c of form.querySelectorAll('[aria-invalid]')) c.removeAttribute('aria-invalid');
}

/**
 * Shows an API error on `form`: each 422 entry next to the field its `loc` names (the first
 * `loc` element after `body`/`query`), the rest (and any other error) in the form's alert.
 * Focuses the first invalid field.
 */
export function showErrors(form, err) {
  clearErrors(form);
  const unplaced = [];
  let first = null;
  for (const e of err.fieldErrors || []) {
    const loc = (e.loc || []).filter((x) => x !== 'body' && x !== 'query');
    const name = loc[0];
    const slot = name !== undefined && form.querySelector(`.field-error[data-for="${CSS.escape(String(name))}"]`);
    if (!slot) { unplaced.push(`${loc.join('.')}: ${e.msg}`); continue; }
    const where = loc.length > 1 ? ` (item ${loc.slice(1).map((x) => (typeof x === 'number' ? x + 1 : x)).join('.')})` : '';
    slot.textContent = [slot.textContent, `${e.msg}${where}`].filter(Boolean).join('; ');
    const control = form.querySelector(`[name="${CSS.escape(String(name))}"]`);
    if (control) { control.setAttribute('aria-invalid', 'true'); first = first || control; }
  }
  const alert = form.querySelector('.form-error');
  if (!err.fieldErrors?.length || unplaced.length) {
    alert.textContent = unplaced.length ? unplaced.join('; ') : err.message;
  }
  (first || alert).focus?.();
}

/** The alert line of a form (where errors not tied to a field go). */
export function formError() {
  return h('p.form-error', { role: 'alert', tabindex: '-1' });
}

/** A table with a caption, header row and body rows (arrays of cells). */
export function table(caption, headers, rows, empty = 'Nothing here yet.') {
  if (!rows.length) return h('p.empty', {}, empty);
  return h('div.table-wrap', { tabindex: '0', role: 'region', 'aria-label': caption },
    h('table.stack', {},
      h('caption', {}, caption),
      h('thead', {}, h('tr', {}, headers.map((x) => h('th', { scope: 'col' }, x)))),
      h('tbody', {}, rows.map((r) => (r instanceof Node ? r : h('tr', {}, r.map((c, i) => h('td', { 'data-label': headers[i] }, c))))))));
}

/** A status badge. */
export function badge(text, kind = text) {
  return h(`span.badge.badge-${kind}`, {}, text);
}

const status = () => document.getElementById('status');
let toastTimer = null;
/** A short message in the live region (read out by screen readers). */
export function notify(message, kind = 'ok') {
  const el = status();
  el.textContent = message;
  el.dataset.kind = kind;
  el.classList.add('shown');
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => el.classList.remove('shown'), 6000);
}

/** Hides the message at once (a new page was opened). */
export function dismiss() {
  clearTimeout(toastTimer);
  status().classList.remove('shown');
}

export function when(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toISOString().replace('T', ' ').replace(/\.\d+Z$|Z$/, ' UTC');
}

export function age(seconds) {
  if (seconds === null || seconds === undefined) return '—';
  if (seconds < 60) return `${seconds} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min`;
  if (seconds < 86400) return `${(seconds / 3600).toFixed(1)} h`;
  return `${(seconds / 86400).toFixed(1)} d`;
}

export function ms(v) {
  return v === null || v === undefined ? '—' : `${v} ms`;
}

export function percent(rate) {
  return rate === null || rate === undefined ? '—' : `${(rate * 100).toFixed(1)} %`;
}

/** A page heading plus intro; focus moves to the heading when a page opens. */
export function heading(title, intro) {
  return [h('h1', { tabindex: '-1' }, title), intro ? h('p.muted.intro', {}, intro) : null];
}

/** A datetime-local value (UTC) as RFC 3339, or undefined when empty. */
export function utc(value) {
  return value ? `${value.length === 16 ? `${value}:00` : value}Z` : undefined;
}

/** An instant as a datetime-local value (UTC, minutes). */
export function localValue(date) {
  return date.toISOString().slice(0, 16);
}

export const EVENT_TYPES = ['prospect_changed_role', 'prospect_changed_company', 'prospect_job_start_anniversary'];
