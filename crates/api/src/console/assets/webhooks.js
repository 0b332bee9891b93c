// Webhooks: list (v1 registrations per partner, and v2 webhooks when the server has them),
// create, edit, rotate the secret (shown once), test connectivity, delete.
import { api, optional } from './api.js';
import { badge, clearErrors, field, fill, formError, h, heading, notify, showErrors, table, when } from './ui.js';

/**
 * Every webhook the key can see, as one list: the v1 registration of each partner
 * (`GET /v1/webhooks`) and, when the server answers `GET /v2/webhooks`, the v2 webhooks.
 */
export async function listWebhooks() {
  const [v1, v2] = await Promise.all([api('GET', '/v1/webhooks'), optional('/v2/webhooks')]);
  const items = (v1.webhooks || []).map((w) => ({
    source: 'v1',
    id: w.partner_id,
    name: `Partner ${w.partner_id}`,
    partner: w.partner_id,
    url: w.webhook_url,
    status: w.status,
    disabledReason: w.disabled_reason,
    disabledAt: w.disabled_at,
    modified: w.last_modified_time,
    statsPath: `/v1/webhooks/${encodeURIComponent(w.partner_id)}/stats`,
    dailyPath: `/v1/webhooks/${encodeURIComponent(w.partner_id)}/daily`,
    deliveriesPath: `/v1/webhooks/${encodeURIComponent(w.partner_id)}/deliveries`,
    replayPath: `/v1/webhooks/${encodeURIComponent(w.partner_id)}/replay`,
  }));
  for (const w of v2?.webhooks || []) {
    if (w.legacy) continue; // the v1 registration seen through v2: listed above already
    const id = encodeURIComponent(w.webhook_id);
    items.push({
      source: 'v2',
      id: w.webhook_id,
      name: w.name,
      url: w.webhook_url,
      status: w.status,
      disabledReason: w.disabled_reason,
      modified: w.last_modified_time,
      headers: w.headers || [],
      payloadFormat: w.payload_format || 'json',
      statsPath: `/v2/webhooks/${id}/stats`,
      dailyPath: `/v2/webhooks/${id}/daily`,
      deliveriesPath: `/v2/webhooks/${id}/deliveries`,
      replayPath: `/v2/webhooks/${id}/replay`,
    });
  }
  return { items, partners: v1.partners || [], v2: v2 !== null };
}

export function statusBadge(w) {
  return [badge(w.status, w.status === 'active' ? 'ok' : 'bad'),
    w.status !== 'active' && w.disabledReason ? h('span.reason', {}, ` ${w.disabledReason}`) : null];
}

export async function render(ctx) {
  const { items, partners, v2 } = await listWebhooks();
  const panel = h('section.card.panel#webhook-panel', { 'aria-live': 'polite', hidden: true });
  const rows = items.map((w) => [
    w.source,
    w.name,
    h('span.url', {}, w.url),
    statusBadge(w),
    when(w.modified),
    h('div.actions', {},
      h('button.secondary', { type: 'button', on: { click: () => openEdit(panel, w) } }, 'Edit', h('span.sr-only', {}, ` ${w.name}`)),
      h('button.secondary', { type: 'button', on: { click: () => openRotate(panel, w) } }, 'Rotate secret', h('span.sr-only', {}, ` of ${w.name}`)),
      h('button.secondary', { type: 'button', on: { click: () => checkConnectivity(panel, w) } }, 'Check connectivity', h('span.sr-only', {}, ` of ${w.name}`)),
      h('button.danger', { type: 'button', on: { click: () => openDelete(panel, w) } }, 'Delete', h('span.sr-only', {}, ` ${w.name}`))),
  ]);
  const free = partners.filter((p) => !items.some((w) => w.source === 'v1' && w.partner === p));
  return [
    heading('Webhooks', 'Where notifications are sent. A secret is shown once, when it is issued; keep it to verify signatures.'),
    table('Webhooks', ['API', 'Webhook', 'URL', 'Status', 'Last modified', 'Actions'], rows, 'No webhook registered yet.'),
    panel,
    createForm(panel, free, v2, ctx),
  ];
}

function showPanel(panel, title, ...content) {
  fill(panel, h('h2', { tabindex: '-1' }, title), content,
    h('button.secondary.close', { type: 'button', on: { click: () => { panel.hidden = true; } } }, 'Close'));
  panel.hidden = false;
  panel.querySelector('h2').focus();
}

/** The secret of a fresh registration or rotation: shown this once, never listed again. */
function showSecret(panel, w, secret) {
  showPanel(panel, `New secret for ${w.name}`,
    h('p', {}, 'Copy it now: it is not shown again in the console.'),
    h('p', {}, h('code.secret#new-secret', {}, secret)));
}

function createForm(panel, freePartners, v2) {
  if (!freePartners.length && !v2) {
    return h('section.card', {}, h('h2', {}, 'Register a webhook'),
      h('p.muted', {}, 'Every partner of this key has a webhook: edit, rotate or delete it above.'));
  }
  const alert = formError();
  const source = v2
    ? field('API', h('select', { name: 'source' }, h('option', { value: 'v1' }, 'v1 (one per partner)'), h('option', { value: 'v2' }, 'v2')))
    : null;
  const form = h('form.card#create-webhook', { novalidate: true },
    h('h2', {}, 'Register a webhook'),
    source,
    field('Partner', h('select', { name: 'partner_id' }, freePartners.map((p) => h('option', { value: p }, p))),
      freePartners.length ? 'v1: partners of this key without a webhook.' : 'Every partner of this key has a v1 webhook (v2 webhooks take no partner).'),
    v2 ? field('Name (v2)', h('input', { name: 'name', type: 'text' })) : null,
    field('Webhook URL', h('input', { name: 'webhook_url', type: 'url', required: true, placeholder: 'https://example.com/hooks/prospects' })),
    alert,
    h('button', { type: 'submit' }, 'Register'));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    const data = new FormData(form);
    try {
      if (data.get('source') === 'v2') {
        const w = await api('POST', '/v2/webhooks', { body: { name: data.get('name'), webhook_url: data.get('webhook_url') } });
        showSecret(panel, { name: w.name }, w.webhook_secret);
      } else {
        const partner = data.get('partner_id');
        const w = await api('POST', '/v1/webhooks', { body: { partner_id: partner, webhook_url: data.get('webhook_url') }, partner });
        await refreshThen(() => showSecret(document.getElementById('webhook-panel'), { name: `Partner ${partner}` }, w.webhook_secret));
        return;
      }
      notify('Webhook registered.');
    } catch (e) {
      showErrors(form, e);
    }
  });
  return form;
}

/** Re-renders the page, then runs `after` on the new page (e.g. to show a secret once). */
async function refreshThen(after) {
  const done = new Promise((resolve) => {
    const observer = new MutationObserver(() => {
      if (document.getElementById('webhook-panel')) { observer.disconnect(); resolve(); }
    });
    observer.observe(document.getElementById('view'), { childList: true });
  });
  window.dispatchEvent(new Event('console:refresh'));
  await done;
  after();
}

function openEdit(panel, w) {
  const alert = formError();
  const v2 = w.source === 'v2';
  const form = h('form#edit-webhook', { novalidate: true },
    field('Webhook URL', h('input', { name: 'webhook_url', type: 'url', value: w.url, required: true })),
    v2 ? field('Headers', h('textarea', { name: 'headers', rows: 3 }, (w.headers || []).join('\n')), 'One "Name: value" per line, sent with every notification.') : null,
    v2 ? field('Payload format', h('select', { name: 'payload_format' },
      ['json', 'stringified_json'].map((f) => h('option', { value: f, selected: f === w.payloadFormat }, f)))) : null,
    v2 ? field('Status', h('select', { name: 'status' },
      ['active', 'disabled'].map((f) => h('option', { value: f, selected: f === w.status }, f)))) : null,
    v2 ? null : h('p.hint', {}, 'v1: a new URL keeps the secret and enables the webhook again.'),
    alert,
    h('button', { type: 'submit' }, 'Save'));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const data = new FormData(form);
    try {
      if (v2) {
        const headers = String(data.get('headers') || '').split('\n').map((x) => x.trim()).filter(Boolean);
        await api('PATCH', `/v2/webhooks/${encodeURIComponent(w.id)}`, {
          body: { webhook_url: data.get('webhook_url'), headers, payload_format: data.get('payload_format'), status: data.get('status') },
        });
      } else {
        await api('PUT', `/v1/webhooks/${encodeURIComponent(w.id)}`, { body: { webhook_url: data.get('webhook_url') }, partner: w.partner });
      }
      notify('Webhook saved.');
      window.dispatchEvent(new Event('console:refresh'));
    } catch (e) {
      showErrors(form, e);
    }
  });
  showPanel(panel, `Edit ${w.name}`, form);
}

function openRotate(panel, w) {
  const v2 = w.source === 'v2';
  const go = h('button.danger', { type: 'button' }, 'Rotate now');
  const result = formError();
  go.addEventListener('click', async () => {
    try {
      const secret = v2
        ? (await api('POST', `/v2/webhooks/${encodeURIComponent(w.id)}/rotate_secret`)).webhook_secret
        : (await api('POST', '/v1/webhooks', { body: { partner_id: w.partner, webhook_url: w.url }, partner: w.partner })).webhook_secret;
      showSecret(panel, w, secret);
      notify('Secret rotated.');
    } catch (e) {
      result.textContent = e.message;
    }
  });
  showPanel(panel, `Rotate the secret of ${w.name}`,
    h('p', {}, v2
      ? 'A new secret replaces the current one at once; receivers must verify with the new one.'
      : 'v1 rotates by registering the same URL again: a new secret replaces the current one at once, and a disabled webhook is enabled again.'),
    go, result);
}

async function checkConnectivity(panel, w) {
  showPanel(panel, `Connectivity of ${w.name}`, h('p', {}, 'Sending a signed test notification…'));
  try {
    const r = w.source === 'v2'
      ? await api('POST', `/v2/webhooks/${encodeURIComponent(w.id)}/check_connectivity`, { body: {} })
      : await api('POST', '/v1/webhooks/check_connectivity', { body: { partner_id: w.partner }, partner: w.partner });
    const ok = r.response_context?.request_status === 'success';
    const answer = r.webhook_response;
    showPanel(panel, `Connectivity of ${w.name}`,
      h('p#connectivity-result', {}, badge(ok ? 'reachable' : 'failed', ok ? 'ok' : 'bad'), ' ', w.url),
      answer ? h('dl.facts', {},
        h('dt', {}, 'Status code'), h('dd', {}, String(answer.status_code ?? '—')),
        h('dt', {}, 'Latency'), h('dd', {}, answer.latency_ms !== undefined ? `${answer.latency_ms} ms` : '—'),
        h('dt', {}, 'Receiver answered'), h('dd', {}, h('pre', {}, typeof answer.body === 'string' ? answer.body : JSON.stringify(answer.body ?? answer, null, 2))))
        : null,
      r.error ? h('p.form-error', {}, `Error: ${r.error}`) : null);
  } catch (e) {
    showPanel(panel, `Connectivity of ${w.name}`, h('p.form-error', { role: 'alert' }, e.message));
  }
}

function openDelete(panel, w) {
  const go = h('button.danger', { type: 'button' }, 'Delete webhook');
  const result = formError();
  go.addEventListener('click', async () => {
    try {
      if (w.source === 'v2') await api('DELETE', `/v2/webhooks/${encodeURIComponent(w.id)}`);
      else await api('DELETE', `/v1/webhooks/${encodeURIComponent(w.id)}`, { partner: w.partner });
      notify('Webhook deleted.');
      window.dispatchEvent(new Event('console:refresh'));
    } catch (e) {
      result.textContent = e.message;
    }
  });
  showPanel(panel, `Delete ${w.name}?`,
    h('p', {}, 'Notifications stop; pending ones wait until a webhook is registered again.'), go, result);
}
