// Admin pages: channels (with the webhook URL or form embed snippet to copy), users, canned
// responses (admin_canned.js), and the quarantine of provider input that could not be read.
// Admins only; the API refuses everyone else anyway.
import { h, fmtTime, channelIcon } from './dom.js';
import { t, getLanguage, addStrings } from './i18n.js';
import { api } from './api.js';
import { cannedSection } from './admin_canned.js';
import { teamsSection } from './inbox_extras.js';

addStrings({
  en: {
    chEdit: 'Edit', chSave: 'Save', chTest: 'Test connection', chTesting: 'Testing…', chEnabled: 'Enabled',
    chDisabled: 'Disabled', chEnable: 'Enable', chDisable: 'Disable', chUnchanged: 'unchanged',
    chSaved: 'Saved', chStatus: 'Status', uEdit: 'Edit', uSave: 'Save', uNewPassword: 'New password',
    uDisable: 'Disable', uEnable: 'Enable', uDisabled: 'disabled', uSaved: 'Saved',
  },
  ru: {
    chEdit: 'Изменить', chSave: 'Сохранить', chTest: 'Проверить связь', chTesting: 'Проверяем…', chEnabled: 'Включён',
    chDisabled: 'Выключен', chEnable: 'Включить', chDisable: 'Выключить', chUnchanged: 'без изменений',
    chSaved: 'Сохранено', chStatus: 'Состояние', uEdit: 'Изменить', uSave: 'Сохранить', uNewPassword: 'Новый пароль',
    uDisable: 'Отключить', uEnable: 'Включить', uDisabled: 'отключён', uSaved: 'Сохранено',
  },
});

// Settings that are secrets per kind: write-only, shown as "unchanged" when editing.
const SECRET_FIELDS = {
  telegram: ['token', 'secret_token'],
  whatsapp: ['app_secret', 'verify_token', 'access_token'],
  viber: ['auth_token'],
  pbx: ['secret'],
  email: ['password', 'smtp_password'],
  webform: [],
};

// The settings each kind needs when it is created (docs/channels.md, docs/forms.md).
const KIND_FIELDS = {
  telegram: ['token', 'secret_token'],
  whatsapp: ['app_secret', 'verify_token', 'access_token', 'phone_number_id'],
  viber: ['auth_token'],
  pbx: ['secret'],
  webform: [],
};

function endpoint(c) {
  if (c.kind === 'webform') return `${location.origin}/forms/${c.public_key}`;
  return `${location.origin}/hooks/${c.kind}/${c.id}`;
}

function copyButton(text) {
  return h('button', {
    type: 'button', class: 'link small',
    onclick: (e) => { navigator.clipboard?.writeText(text); e.target.textContent = '✓'; },
  }, t('copy'));
}

// One channel's Edit form: name, its settings (secrets write-only: empty keeps the stored
// one), enable/disable, and Test connection with the provider's answer shown.
function channelEditor(c, reload) {
  const secrets = SECRET_FIELDS[c.kind] || [];
  const cfg = c.config || {};
  const keys = [...new Set([...(KIND_FIELDS[c.kind] || []), ...Object.keys(cfg)])];
  const result = h('p', { class: 'small ch-result' });
  const err = h('p', { class: 'error small' });
  const fields = keys.map((k) => {
    const v = cfg[k];
    const secret = secrets.includes(k) || v === '********'; // the API masks every secret
    const value = secret || v == null ? '' : (typeof v === 'string' ? v : JSON.stringify(v));
    return h('label', {}, k, h('input', {
      name: `cfg.${k}`, value, type: secret ? 'password' : 'text', autocomplete: 'off',
      placeholder: secret ? t('chUnchanged') : '', 'data-secret': secret ? '1' : '', 'data-json': typeof v === 'string' || v == null ? '' : '1',
    }));
  });
  // A div, not a form: the page's add forms stay the only <form>s of the section.
  const save = h('button', { type: 'button', class: 'ch-save' }, t('chSave'));
  const form = h('div', { class: 'admin-form ch-edit' },
    h('label', {}, t('name'), h('input', { name: 'name', value: c.name, required: true })),
    ...fields, save, err);
  save.addEventListener('click', async () => {
    const config = {};
    for (const input of form.querySelectorAll('input[name^="cfg."]')) {
      const k = input.name.slice(4);
      if (input.dataset.secret) { if (input.value) config[k] = input.value; continue; }
      let v = input.value;
      if (input.dataset.json) { try { v = JSON.parse(v); } catch { /* sent as typed: the server says what is wrong */ } }
      config[k] = v;
    }
    try {
      await api('PATCH', `/api/v1/channels/${c.id}`, { name: form.querySelector('input[name="name"]').value, config });
      await reload();
    } catch (ex) { err.textContent = ex.message; }
  });
  const test = h('button', {
    type: 'button', class: 'small ch-test',
    onclick: async () => {
      result.textContent = t('chTesting');
      result.className = 'small ch-result';
      try {
        const r = await api('POST', `/api/v1/channels/${c.id}/test`, {});
        result.textContent = r.message;
        result.classList.add(r.ok ? 'ok' : 'error');
      } catch (ex) { result.textContent = ex.message; result.classList.add('error'); }
    },
  }, t('chTest'));
  const toggle = h('button', {
    type: 'button', class: 'small ch-toggle',
    onclick: async () => {
      try { await api('PATCH', `/api/v1/channels/${c.id}`, { enabled: !c.enabled }); await reload(); } catch (ex) { result.textContent = ex.message; }
    },
  }, c.enabled ? t('chDisable') : t('chEnable'));
  return h('div', { class: 'ch-actions' }, test, ' ', toggle, result,
    h('details', {}, h('summary', { class: 'small' }, t('chEdit')), form));
}

async function channelsSection() {
  const sec = h('section', { class: 'admin-section', id: 'admin-channels' }, h('h2', {}, t('channels')));
  let items = [];
  try { items = (await api('GET', '/api/v1/channels')).items; } catch (e) { sec.append(h('p', { class: 'error' }, e.message)); return sec; }
  sec.append(h('table', { class: 'grid' },
    h('thead', {}, h('tr', {}, h('th', {}, '#'), h('th', {}, t('kind')), h('th', {}, t('name')), h('th', {}, t('endpoint')), h('th', {}, ''))),
    h('tbody', {}, items.map((c) => h('tr', { class: c.enabled ? '' : 'muted', 'data-channel': c.id },
      h('td', {}, c.id), h('td', {}, channelIcon(c.kind), ' ', c.kind), h('td', { class: 'ch-name' }, c.name,
        c.enabled ? null : h('span', { class: 'small muted' }, ` (${t('chDisabled')})`)),
      h('td', {}, h('code', {}, endpoint(c)), ' ', copyButton(endpoint(c)),
        c.kind === 'webform' ? h('details', {}, h('summary', { class: 'small' }, t('embed')),
          h('pre', { class: 'snippet' }, `<form action="${endpoint(c)}" method="post">\n  <input name="name">\n  <input name="phone" type="tel">\n  <input name="email" type="email">\n  <textarea name="message"></textarea>\n  <button>Send</button>\n</form>`)) : null),
      h('td', {}, channelEditor(c, async () => sec.replaceWith(await channelsSection()))))))));
  // Adding a channel: the kind's required settings as fields, anything else as key=value lines.
  const kind = h('select', { name: 'kind' }, Object.keys(KIND_FIELDS).map((k) => h('option', { value: k }, k)));
  const fields = h('div', { class: 'kind-fields' });
  const extra = h('textarea', { name: 'extra', rows: 2, placeholder: 'key=value' });
  const err = h('p', { class: 'error small' });
  const drawFields = () => fields.replaceChildren(...KIND_FIELDS[kind.value].map((f) => h('label', {}, f, h('input', { name: `cfg.${f}`, required: true }))));
  kind.addEventListener('change', drawFields);
  drawFields();
  const form = h('form', { class: 'admin-form' },
    h('h3', {}, t('addChannel')),
    h('label', {}, t('kind'), kind), h('label', {}, t('name'), h('input', { name: 'name', required: true })),
    fields, h('label', {}, t('otherSettings'), extra), h('button', { type: 'submit' }, t('add')), err);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const fd = new FormData(form);
    const config = {};
    for (const [k, v] of fd) if (k.startsWith('cfg.')) config[k.slice(4)] = v;
    for (const line of String(fd.get('extra') || '').split('\n')) {
      const m = /^\s*([\w.]+)\s*=\s*(.*?)\s*$/.exec(line);
      if (m) config[m[1]] = m[2];
    }
    try {
      await api('POST', '/api/v1/channels', { kind: fd.get('kind'), name: fd.get('name'), config });
      sec.replaceWith(await channelsSection());
    } catch (ex) {
      err.textContent = ex.message;
    }
  });
  sec.append(form);
  return sec;
}

// One user's controls: disable/enable at once; name, role and a new password in a form.
// The server refuses to demote or disable the last admin and says so.
function userEditor(u, reload) {
  const err = h('p', { class: 'error small' });
  const send = async (body) => {
    try { await api('PATCH', `/api/v1/users/${u.id}`, body); await reload(); } catch (ex) { err.textContent = ex.message; }
  };
  const save = h('button', { type: 'button', class: 'u-save' }, t('uSave'));
  const form = h('div', { class: 'admin-form u-edit' },
    h('label', {}, t('name'), h('input', { name: 'name', value: u.name, required: true })),
    h('label', {}, t('role'), h('select', { name: 'role' }, ['agent', 'admin', 'marketer'].map((r) => h('option', { value: r, selected: r === u.role }, r)))),
    h('label', {}, t('uNewPassword'), h('input', { name: 'password', type: 'password', minlength: 8, autocomplete: 'new-password' })),
    save);
  const field = (n) => form.querySelector(`[name="${n}"]`);
  save.addEventListener('click', () => {
    const body = { name: field('name').value, role: field('role').value };
    if (field('password').value) body.password = field('password').value;
    send(body);
  });
  return h('div', { class: 'u-actions' },
    h('button', { type: 'button', class: 'small u-toggle', onclick: () => send({ disabled: !u.disabled }) }, u.disabled ? t('uEnable') : t('uDisable')),
    err, h('details', {}, h('summary', { class: 'small' }, t('uEdit')), form));
}

async function usersSection() {
  const sec = h('section', { class: 'admin-section', id: 'admin-users' }, h('h2', {}, t('users')));
  let users = [];
  try { users = (await api('GET', '/api/v1/users')).users; } catch (e) { sec.append(h('p', { class: 'error' }, e.message)); return sec; }
  sec.append(h('table', { class: 'grid' },
    h('thead', {}, h('tr', {}, h('th', {}, t('name')), h('th', {}, t('email')), h('th', {}, t('role')), h('th', {}, ''))),
    h('tbody', {}, users.map((u) => h('tr', { class: u.disabled ? 'muted' : '', 'data-user': u.id },
      h('td', {}, u.name, u.disabled ? h('span', { class: 'small' }, ` (${t('uDisabled')})`) : null), h('td', {}, u.email), h('td', {}, u.role),
      h('td', {}, userEditor(u, async () => sec.replaceWith(await usersSection()))))))));
  const err = h('p', { class: 'error small' });
  const form = h('form', { class: 'admin-form' },
    h('h3', {}, t('addUser')),
    h('label', {}, t('name'), h('input', { name: 'name', required: true })),
    h('label', {}, t('email'), h('input', { name: 'email', type: 'email', required: true })),
    h('label', {}, t('role'), h('select', { name: 'role' }, ['agent', 'admin', 'marketer'].map((r) => h('option', { value: r }, r)))),
    h('label', {}, t('password'), h('input', { name: 'password', type: 'password', minlength: 8, required: true, autocomplete: 'new-password' })),
    h('button', { type: 'submit' }, t('add')), err);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const fd = Object.fromEntries(new FormData(form));
    try {
      await api('POST', '/api/v1/users', fd);
      sec.replaceWith(await usersSection());
    } catch (ex) {
      err.textContent = ex.message;
    }
  });
  sec.append(form);
  return sec;
}

async function quarantineSection() {
  const sec = h('section', { class: 'admin-section', id: 'admin-quarantine' }, h('h2', {}, t('quarantine')));
  let items = [];
  try { items = (await api('GET', '/api/v1/quarantine?limit=100')).items; } catch (e) { sec.append(h('p', { class: 'error' }, e.message)); return sec; }
  if (!items.length) sec.append(h('p', { class: 'muted' }, t('quarantineEmpty')));
  else {
    sec.append(h('table', { class: 'grid' },
      h('thead', {}, h('tr', {}, h('th', {}, '#'), h('th', {}, t('time')), h('th', {}, t('source')), h('th', {}, t('errorPrefix')), h('th', {}, ''))),
      h('tbody', {}, items.map((q) => h('tr', {},
        h('td', {}, q.id), h('td', {}, fmtTime(q.created_at, getLanguage(), true)),
        h('td', {}, `${q.source || ''} #${q.channel_id ?? ''}`), h('td', {}, q.error || ''),
        h('td', {},
          h('a', { href: `/api/v1/quarantine/${q.id}/body`, download: `quarantine-${q.id}` }, t('download')), ' ',
          h('button', {
            type: 'button', class: 'small',
            onclick: async () => {
              try { await api('POST', `/api/v1/quarantine/${q.id}/resolve`); } catch (e) { alert(e.message); }
              sec.replaceWith(await quarantineSection());
            },
          }, t('markResolved'))))))));
  }
  return sec;
}

export async function renderAdmin(root) {
  root.replaceChildren(h('div', { class: 'muted pad' }, t('loading')));
  const parts = await Promise.all([channelsSection(), usersSection(), teamsSection(), cannedSection(), quarantineSection()]);
  root.replaceChildren(h('div', { class: 'admin' }, h('a', { href: '#', class: 'small' }, `← ${t('inbox')}`), ...parts));
}
