// The console shell: sign-in, navigation, the partner the calls act for, and the page router.
import { api, ApiError, session } from './api.js';
import { dismiss, fill, h, notify } from './ui.js';
import * as overview from './overview.js';
import * as webhooks from './webhooks.js';
import * as deliveries from './deliveries.js';
import * as enrollments from './enrollments.js';
import * as prospects from './prospects.js';

const PAGES = { overview, webhooks, deliveries, enrollments, prospects };
const $ = (id) => document.getElementById(id);

/** What the key may act for: `GET /v1/webhooks` lists its partners. */
const context = { partners: [] };

async function loadPartners() {
  const list = await api('GET', '/v1/webhooks');
  context.partners = list.partners || [];
  if (!context.partners.includes(session.partner)) {
    session.choosePartner(context.partners[0] || '');
  }
  const select = $('partner-select');
  fill(select, context.partners.map((p) => h('option', { value: p, selected: p === session.partner }, p)));
  $('session').querySelector('.partner-label').hidden = context.partners.length < 2;
  select.hidden = context.partners.length < 2;
}

function showSignIn(message) {
  $('nav').hidden = true;
  $('session').hidden = true;
  $('view').replaceChildren();
  $('sign-in').hidden = false;
  $('api-key-error').textContent = message || '';
  $('api-key').toggleAttribute('aria-invalid', Boolean(message));
  $('api-key').focus();
}

async function signIn(ev) {
  ev.preventDefault();
  const key = $('api-key').value.trim();
  if (!key) { showSignIn('Enter an API key.'); return; }
  session.signIn(key);
  try {
    await loadPartners();
  } catch (e) {
    session.signOut();
    showSignIn(e instanceof ApiError && e.status === 401 ? 'This API key is not valid.' : e.message);
    return;
  }
  $('api-key').value = '';
  if (!window.location.hash.startsWith('#/')) window.location.hash = '#/overview';
  else route();
}

function signOut() {
  session.signOut();
  context.partners = [];
  window.location.hash = '';
  showSignIn();
  notify('Signed out.');
}

function parseHash() {
  const [path, query] = window.location.hash.slice(2).split('?');
  return { page: path || 'overview', params: new URLSearchParams(query || '') };
}

let routing = 0;
async function route() {
  if (!window.location.hash.startsWith('#/') && window.location.hash !== '') return;
  if (!session.key) { showSignIn(); return; }
  const { page, params } = parseHash();
  const module = PAGES[page] || overview;
  $('sign-in').hidden = true;
  $('nav').hidden = false;
  $('session').hidden = false;
  for (const a of $('nav').querySelectorAll('a')) {
    if (a.getAttribute('href') === `#/${page}`) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  const mine = ++routing;
  const view = $('view');
  view.setAttribute('aria-busy', 'true');
  try {
    if (!context.partners.length) await loadPartners();
    const content = await module.render({ ...context, partner: session.partner, params });
    if (mine !== routing) return;
    fill(view, content);
    document.title = `${view.querySelector('h1')?.textContent || 'Console'} · prospect-events`;
    view.querySelector('h1')?.focus();
  } catch (e) {
    if (mine !== routing) return;
    if (e instanceof ApiError && e.status === 401) return;
    fill(view, h('h1', { tabindex: '-1' }, 'Something went wrong'), h('p.form-error', { role: 'alert' }, e.message));
  } finally {
    if (mine === routing) view.removeAttribute('aria-busy');
  }
}

window.addEventListener('console:unauthorized', () => {
  session.signOut();
  showSignIn('The API key was refused (revoked or mistyped). Sign in again.');
});
window.addEventListener('console:refresh', route);
window.addEventListener('hashchange', () => { dismiss(); route(); });
window.addEventListener('DOMContentLoaded', () => {
  $('sign-in-form').addEventListener('submit', signIn);
  $('sign-out').addEventListener('click', signOut);
  $('partner-select').addEventListener('change', (e) => {
    session.choosePartner(e.target.value);
    route();
  });
  $('skip-link').addEventListener('click', (e) => {
    e.preventDefault();
    $('main').focus();
  });
  route();
});
