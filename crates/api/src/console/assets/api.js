// The console's only way to the server: the public API, with the key of this tab.

const KEY = 'prospect-events.api_key';
const PARTNER = 'prospect-events.partner';

export const session = {
  get key() { return sessionStorage.getItem(KEY); },
  get partner() { return sessionStorage.getItem(PARTNER); },
  signIn(key) { sessionStorage.setItem(KEY, key); },
  choosePartner(p) { sessionStorage.setItem(PARTNER, p); },
  signOut() { sessionStorage.removeItem(KEY); sessionStorage.removeItem(PARTNER); },
};

/** An answer other than 2xx: its status and decoded body (`detail` is a list on 422). */
export class ApiError extends Error {
  constructor(status, body) {
    super(describe(status, body));
    this.status = status;
    this.body = body;
  }
  /** The 422 field errors: [{loc, msg, type}] (empty for other errors). */
  get fieldErrors() {
    return this.status === 422 && Array.isArray(this.body?.detail) ? this.body.detail : [];
  }
}

function describe(status, body) {
  if (body && typeof body.detail === 'string') return `${status}: ${body.detail}`;
  if (body && Array.isArray(body.detail)) {
    return `${status}: ` + body.detail.map((e) => `${(e.loc || []).join('.')}: ${e.msg}`).join('; ');
  }
  if (body && body.message) return `${status}: ${body.message}`;
  return `HTTP ${status}`;
}

/**
 * Calls the API. `query` values that are empty are left out; `partner` names the partner the
 * call acts for (the `X-Context-Partner-ID` header), defaulting to the one chosen in the header.
 */
export async function api(method, path, { body, query, partner } = {}) {
  const url = new URL(path, window.location.origin);
  for (const [k, v] of Object.entries(query || {})) {
    if (Array.isArray(v)) v.forEach((x) => url.searchParams.append(k, x));
    else if (v !== undefined && v !== null && v !== '') url.searchParams.set(k, v);
  }
  const headers = { accept: 'application/json', api_key: session.key || '' };
  const acting = partner || session.partner;
  if (acting) headers['x-context-partner-id'] = acting;
  const init = { method, headers, cache: 'no-store' };
  if (body !== undefined) {
    headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const resp = await fetch(url, init);
  let data = null;
  try { data = await resp.json(); } catch { data = null; }
  if (resp.status === 401) {
    window.dispatchEvent(new CustomEvent('console:unauthorized', { detail: data }));
  }
  if (!resp.ok) throw new ApiError(resp.status, data);
  return data;
}

/** GET that answers null instead of throwing when the endpoint does not exist (404/405). */
export async function optional(path, options) {
  try {
    return await api('GET', path, options);
  } catch (e) {
    if (e instanceof ApiError && (e.status === 404 || e.status === 405)) return null;
    throw e;
  }
}
