// Campaign pages for marketers (and admins), under #/campaigns: the list of campaigns,
// segments and templates; the segment editor with its live count; the template editor with
// merge-field help, a sandboxed preview for a chosen client and a test send; the campaign
// editor; and a campaign's page with its counters, an hourly chart and the CSV export. Opening a
// saved segment, template or a draft (or scheduled) campaign edits it in place (Save = PATCH), with
// Delete behind a question; the server refuses (409) what a live campaign still needs.
// Everything goes through the API of docs/campaigns.md.
import { h, fmtTime, parseTime, channelIcon } from './dom.js';
import { t, addStrings, getLanguage } from './i18n.js';
import { api, qs } from './api.js';
import { drawChart } from './charts.js';

addStrings({
  en: {
    campaigns: 'Campaigns', campaign: 'Campaign', segments: 'Segments', segment: 'Segment', templates: 'Templates',
    template: 'Template', newCampaign: 'New campaign', newSegment: 'New segment', newTemplate: 'New template',
    c_status: 'State', progress: 'Progress', created: 'Created', scheduled: 'Scheduled', noneYet: 'None yet.',
    cs_draft: 'Draft', cs_scheduled: 'Scheduled', cs_running: 'Running', cs_paused: 'Paused', cs_finished: 'Finished',
    cs_cancelled: 'Cancelled',
    tag: 'Tag', customFields: 'Custom fields', customHint: 'one per line: key=value (exact match)',
    originChannel: 'Channel of origin', anyChannel: 'Any channel', identityKind: 'Has a verified identity',
    anyKind: 'Any', createdAfter: 'Created from', createdBefore: 'Created before', activeAfter: 'Active from',
    activeBefore: 'Active before', hasEmail: 'Has a deliverable e-mail (always: suppressed addresses are left out)',
    segCount: '{n} clients', counting: 'Counting…', saveSegment: 'Save segment', cancelEdit: 'Back to campaigns',
    filterHelp: 'All conditions must hold. Dates are UTC.',
    tplSubject: 'Subject', tplHtml: 'HTML part', tplText: 'Text part', saveTemplate: 'Save template',
    saveAsNew: 'Save as a new template', mergeHelp: 'Merge fields',
    mf_name: "the client's name", mf_email: 'the address the campaign goes to', mf_custom: 'a custom field',
    mf_fallback: 'the fallback when the value is missing or empty', mf_raw: 'not HTML-escaped (HTML part only)',
    mf_unsub: 'the unsubscribe page (added at the end when a part lacks it)', mf_view: 'the message in a browser',
    preview: 'Preview', previewFor: 'Preview for a client', findClient: 'Find a client (name, e-mail, phone)',
    noClient: 'No client (fallbacks)', previewBlocked: 'Shown sandboxed: scripts and remote content do not run.',
    testSend: 'Test send', testTo: 'Send a test to', testSent: 'Sent (SMTP {code}).', emailChannel: 'E-mail channel',
    saveFirst: 'Save the template to preview it or send a test.',
    sendAt: 'Send at (your local time; empty = when started)', rate: 'Messages per second (0 = no cap)',
    createCampaign: 'Create campaign', start: 'Start', pause: 'Pause', resume: 'Resume', cancel: 'Cancel',
    confirmCancel: 'Cancel campaign "{name}"? Messages not yet sent will never be sent.',
    recipients: 'Recipients', st_sent: 'Sent', st_delivered: 'Delivered', st_bounced_hard: 'Hard bounces',
    st_bounced_soft: 'Soft bounces', st_opened: 'Opened', st_clicked: 'Clicked', st_unsubscribed: 'Unsubscribed',
    st_failed: 'Failed', st_queued: 'Queued', st_complaints: 'Complaints', exportCsv: 'Recipients (CSV)',
    perHour: 'Per hour (UTC hours, local time shown)', noStatsYet: 'Nothing sent yet.', updated: 'Updated {time}',
    notFound: 'Not found.', chooseSegment: 'Choose a segment', chooseTemplate: 'Choose a template',
    chooseChannel: 'Choose an e-mail channel', noEmailChannel: 'No e-mail channel: an admin adds one.',
    del: 'Delete', saved: 'Saved.', editCampaign: 'Edit before it sends', saveChanges: 'Save changes',
    confirmDeleteSegment: 'Delete segment "{name}"?', confirmDeleteTemplate: 'Delete template "{name}"?',
    confirmDeleteCampaign: 'Delete draft campaign "{name}"?', deleted: 'deleted',
  },
  ru: {
    campaigns: 'Рассылки', campaign: 'Рассылка', segments: 'Сегменты', segment: 'Сегмент', templates: 'Шаблоны',
    template: 'Шаблон', newCampaign: 'Новая рассылка', newSegment: 'Новый сегмент', newTemplate: 'Новый шаблон',
    c_status: 'Состояние', progress: 'Ход', created: 'Создана', scheduled: 'Запланирована', noneYet: 'Пока нет.',
    cs_draft: 'Черновик', cs_scheduled: 'Запланирована', cs_running: 'Идёт', cs_paused: 'Пауза', cs_finished: 'Завершена',
    cs_cancelled: 'Отменена',
    tag: 'Тег', customFields: 'Доп. поля', customHint: 'по одному в строке: ключ=значение (точное совпадение)',
    originChannel: 'Канал первого обращения', anyChannel: 'Любой канал', identityKind: 'Есть подтверждённый идентификатор',
    anyKind: 'Любой', createdAfter: 'Создан с', createdBefore: 'Создан до', activeAfter: 'Активен с',
    activeBefore: 'Активен до', hasEmail: 'Есть рабочий e-mail (всегда: отписавшиеся адреса исключены)',
    segCount: 'Клиентов: {n}', counting: 'Считаем…', saveSegment: 'Сохранить сегмент', cancelEdit: 'К рассылкам',
    filterHelp: 'Должны выполняться все условия. Даты в UTC.',
    tplSubject: 'Тема', tplHtml: 'HTML-часть', tplText: 'Текстовая часть', saveTemplate: 'Сохранить шаблон',
    saveAsNew: 'Сохранить как новый шаблон', mergeHelp: 'Поля подстановки',
    mf_name: 'имя клиента', mf_email: 'адрес, на который уходит письмо', mf_custom: 'доп. поле',
    mf_fallback: 'значение по умолчанию, если поле пустое', mf_raw: 'без HTML-экранирования (только HTML-часть)',
    mf_unsub: 'страница отписки (добавляется в конец, если её нет)', mf_view: 'письмо в браузере',
    preview: 'Просмотр', previewFor: 'Просмотр для клиента', findClient: 'Найти клиента (имя, e-mail, телефон)',
    noClient: 'Без клиента (значения по умолчанию)', previewBlocked: 'Показано в песочнице: скрипты и внешнее содержимое не работают.',
    testSend: 'Тестовая отправка', testTo: 'Отправить тест на', testSent: 'Отправлено (SMTP {code}).', emailChannel: 'Канал e-mail',
    saveFirst: 'Сохраните шаблон, чтобы посмотреть его или отправить тест.',
    sendAt: 'Время отправки (местное; пусто — при запуске)', rate: 'Писем в секунду (0 — без ограничения)',
    createCampaign: 'Создать рассылку', start: 'Запустить', pause: 'Пауза', resume: 'Продолжить', cancel: 'Отменить',
    confirmCancel: 'Отменить рассылку «{name}»? Неотправленные письма не будут отправлены.',
    recipients: 'Получатели', st_sent: 'Отправлено', st_delivered: 'Доставлено', st_bounced_hard: 'Жёсткие отказы',
    st_bounced_soft: 'Мягкие отказы', st_opened: 'Открыто', st_clicked: 'Переходы', st_unsubscribed: 'Отписались',
    st_failed: 'Ошибки', st_queued: 'В очереди', st_complaints: 'Жалобы', exportCsv: 'Получатели (CSV)',
    perHour: 'По часам (часы UTC, показано местное время)', noStatsYet: 'Ещё ничего не отправлено.', updated: 'Обновлено {time}',
    notFound: 'Не найдено.', chooseSegment: 'Выберите сегмент', chooseTemplate: 'Выберите шаблон',
    chooseChannel: 'Выберите канал e-mail', noEmailChannel: 'Нет канала e-mail: его добавляет администратор.',
    del: 'Удалить', saved: 'Сохранено.', editCampaign: 'Изменить до отправки', saveChanges: 'Сохранить изменения',
    confirmDeleteSegment: 'Удалить сегмент «{name}»?', confirmDeleteTemplate: 'Удалить шаблон «{name}»?',
    confirmDeleteCampaign: 'Удалить черновик рассылки «{name}»?', deleted: 'удалён',
  },
});

const REFRESH_MS = 2000;
const ACTIVE = new Set(['running', 'scheduled']);
const COUNTERS = ['sent', 'delivered', 'bounced_hard', 'bounced_soft', 'opened', 'clicked', 'unsubscribed', 'failed'];
const IDENTITY_KINDS = ['email', 'phone', 'telegram', 'whatsapp', 'viber'];

// One page at a time: a new render (or leaving #/campaigns) stops the old page's timer.
let page = { gen: 0, timer: null, onEvent: null, wrap: null };

function newPage(wrap = null) {
  clearTimeout(page.timer);
  page = { gen: page.gen + 1, timer: null, onEvent: null, wrap };
  return page.gen;
}
// Still the page on screen (not replaced, not signed out, not navigated away)?
const current = (gen) => gen === page.gen && page.wrap?.isConnected && location.hash.startsWith('#/campaigns');

export function leaveCampaigns() { newPage(); }

// campaign.updated events (start, pause, resume, cancel, finished) refresh the page showing
// that campaign at once; the counters in between come from polling.
export function campaignEvent(ev) {
  page.onEvent?.(ev);
}

export function renderCampaigns(root) {
  const wrap = h('div', { class: 'admin campaigns', id: 'campaigns' });
  const gen = newPage(wrap);
  const parts = location.hash.replace(/^#\/campaigns\/?/, '').split('/').filter(Boolean);
  root.replaceChildren(wrap);
  let r;
  if (!parts.length) r = listPage(wrap, gen);
  else if (parts[0] === 'new') r = campaignEditor(wrap);
  else if (parts[0] === 'segments' && parts[1]) r = segmentEditor(wrap, parts[1] === 'new' ? null : Number(parts[1]));
  else if (parts[0] === 'templates' && parts[1]) r = templateEditor(wrap, parts[1] === 'new' ? null : Number(parts[1]));
  else if (/^\d+$/.test(parts[0])) r = campaignPage(wrap, Number(parts[0]), gen);
  else wrap.append(h('p', {}, t('notFound')));
  Promise.resolve(r).catch((e) => wrap.append(h('p', { class: 'error', role: 'alert' }, `${t('errorPrefix')}: ${e.message}`)));
}

// ---------- helpers ----------

const go = (hash) => { location.hash = hash; };
const backLink = () => h('a', { href: '#/campaigns', class: 'small back-link' }, `← ${t('cancelEdit')}`);
const statusBadge = (s) => h('span', { class: `cstatus cs-${s}`, dataset: { status: s } }, t(`cs_${s}`));
const field = (label, input, hint) => h('label', {}, label, input, hint ? h('span', { class: 'muted small' }, hint) : null);
const errorBox = (id) => h('p', { class: 'error small', role: 'alert', id });

const savedNote = (id) => h('span', { class: 'small muted', id, role: 'status' });

// A Delete button that asks first; the server's refusal (409: a live campaign uses it) is shown in err.
const deleteButton = (id, question, path, err) => h('button', {
  type: 'button', id, class: 'secondary danger',
  onclick: async () => {
    if (!window.confirm(question())) return;
    err.textContent = '';
    try {
      await api('DELETE', path);
      go('#/campaigns');
    } catch (e) {
      err.textContent = e.message;
    }
  },
}, t('del'));

let channelCache = null;
async function channelNames() {
  if (!channelCache) channelCache = api('GET', '/api/v1/channel-names').then((d) => d.items).catch((e) => { channelCache = null; throw e; });
  return channelCache;
}

// Every page of a list (the campaign editor's pickers): newest first.
async function listAll(path, max = 500) {
  const out = [];
  let cursor = null;
  do {
    const d = await api('GET', `${path}${qs({ limit: 100, cursor })}`);
    out.push(...d.items);
    cursor = d.next_cursor;
  } while (cursor && out.length < max);
  return out;
}

// ---------- the list ----------

async function listPage(wrap, gen) {
  const [camps, segs, tpls] = await Promise.all([
    api('GET', '/api/v1/campaigns?limit=50'), api('GET', '/api/v1/segments?limit=50'), api('GET', '/api/v1/templates?limit=50'),
  ]);
  const lang = getLanguage();
  const tbody = h('tbody', {});
  const progressCell = (c, stats) => {
    const total = c.recipients || 0;
    const sent = stats?.sent ?? 0;
    return h('td', { class: 'progress-cell' },
      c.status === 'draft' ? '—' : [h('progress', { max: total || 1, value: sent }), ' ', h('span', { class: 'small' }, `${sent} / ${total}`)]);
  };
  const rows = camps.items.map((c) => {
    const tr = h('tr', { dataset: { id: c.id, status: c.status } },
      h('td', {}, h('a', { href: `#/campaigns/${c.id}` }, c.name)),
      h('td', {}, statusBadge(c.status)),
      progressCell(c, null),
      h('td', { class: 'small col-time' }, fmtTime(c.created_at, lang, true)),
      h('td', { class: 'small col-time' }, c.send_at ? fmtTime(c.send_at, lang, true) : ''));
    tbody.append(tr);
    return { c, tr };
  });
  // The list has recipients but not progress: each started campaign's counters once, then
  // only the running and scheduled ones while they move (an event refreshes its own row).
  const fillRow = async (row) => {
    const d = await api('GET', `/api/v1/campaigns/${row.c.id}`).catch(() => null);
    if (!d || !current(gen)) return;
    row.c = d;
    row.tr.dataset.status = d.status;
    row.tr.children[1].replaceChildren(statusBadge(d.status));
    row.tr.children[2].replaceWith(progressCell(d, d.stats));
  };
  let first = true;
  const tick = async () => {
    await Promise.all(rows.filter(({ c }) => c.status !== 'draft' && (first || ACTIVE.has(c.status))).map(fillRow));
    first = false;
    if (current(gen) && rows.some(({ c }) => ACTIVE.has(c.status))) page.timer = setTimeout(tick, REFRESH_MS);
  };
  tick();
  page.onEvent = (ev) => {
    if (ev.event !== 'campaign.updated') return;
    const row = rows.find(({ c }) => c.id === Number(ev.data?.campaign_id));
    if (!row) return;
    if (ev.data.status === 'deleted') row.tr.remove();
    else fillRow(row).then(() => { if (ACTIVE.has(row.c.status) && !page.timer && current(gen)) tick(); });
  };

  wrap.append(
    h('section', { class: 'admin-section', id: 'campaign-list' },
      h('div', { class: 'section-head' }, h('h2', {}, t('campaigns')),
        h('a', { href: '#/campaigns/new', class: 'button', id: 'new-campaign' }, t('newCampaign'))),
      camps.items.length
        ? h('table', { class: 'grid' },
          h('thead', {}, h('tr', {}, h('th', {}, t('name')), h('th', {}, t('c_status')), h('th', {}, t('progress')),
            h('th', { class: 'col-time' }, t('created')), h('th', { class: 'col-time' }, t('scheduled')))), tbody)
        : h('p', { class: 'muted' }, t('noneYet'))),
    h('section', { class: 'admin-section', id: 'segment-list' },
      h('div', { class: 'section-head' }, h('h2', {}, t('segments')),
        h('a', { href: '#/campaigns/segments/new', class: 'button secondary', id: 'new-segment' }, t('newSegment'))),
      segs.items.length
        ? h('ul', { class: 'plain-list' }, segs.items.map((s) => h('li', {},
          h('a', { href: `#/campaigns/segments/${s.id}` }, s.name), ' ', h('code', { class: 'small muted' }, JSON.stringify(s.filter)))))
        : h('p', { class: 'muted' }, t('noneYet'))),
    h('section', { class: 'admin-section', id: 'template-list' },
      h('div', { class: 'section-head' }, h('h2', {}, t('templates')),
        h('a', { href: '#/campaigns/templates/new', class: 'button secondary', id: 'new-template' }, t('newTemplate'))),
      tpls.items.length
        ? h('ul', { class: 'plain-list' }, tpls.items.map((x) => h('li', {},
          h('a', { href: `#/campaigns/templates/${x.id}` }, x.name), ' ', h('span', { class: 'small muted' }, x.subject))))
        : h('p', { class: 'muted' }, t('noneYet'))));
}

// ---------- segment editor ----------

// The form's values as the API's filter; empty fields are left out.
export function filterFromForm(fd) {
  const f = {};
  const tag = String(fd.get('tag') || '').trim();
  if (tag) f.tag = tag;
  const custom = {};
  for (const line of String(fd.get('custom') || '').split('\n')) {
    const m = /^\s*([^=]+?)\s*=\s*(.*?)\s*$/.exec(line);
    if (m) custom[m[1]] = m[2];
  }
  if (Object.keys(custom).length) f.custom = custom;
  if (fd.get('channel_id')) f.channel_id = Number(fd.get('channel_id'));
  if (fd.get('identity_kind')) f.identity_kind = fd.get('identity_kind');
  for (const k of ['created_after', 'created_before', 'active_after', 'active_before']) if (fd.get(k)) f[k] = fd.get(k);
  return f;
}

async function segmentEditor(wrap, id) {
  const [channels, seg] = await Promise.all([channelNames(), id ? api('GET', `/api/v1/segments/${id}`) : null]);
  const f = seg?.filter || {};
  const count = h('output', { id: 'seg-count', class: 'count', 'aria-live': 'polite' }, '');
  const err = errorBox('seg-error');
  const custom = Object.entries(f.custom || {}).map(([k, v]) => `${k}=${v}`).join('\n');
  const form = h('form', { class: 'admin-form wide', id: 'segment-form' },
    h('h2', {}, seg ? seg.name : t('newSegment')),
    h('p', { class: 'muted small' }, t('filterHelp')),
    field(t('name'), h('input', { name: 'name', required: true, maxlength: 255, value: seg ? `${seg.name}` : '' })),
    field(t('tag'), h('input', { name: 'tag', value: f.tag || '' })),
    field(t('customFields'), h('textarea', { name: 'custom', rows: 2, placeholder: 'plan=gold' }, custom), t('customHint')),
    field(t('originChannel'), h('select', { name: 'channel_id' }, h('option', { value: '' }, t('anyChannel')),
      channels.map((c) => h('option', { value: c.id, selected: f.channel_id === c.id }, `${channelIcon(c.kind)} ${c.name}`)))),
    field(t('identityKind'), h('select', { name: 'identity_kind' }, h('option', { value: '' }, t('anyKind')),
      IDENTITY_KINDS.map((k) => h('option', { value: k, selected: f.identity_kind === k }, k)))),
    h('div', { class: 'two' },
      field(t('createdAfter'), h('input', { name: 'created_after', type: 'date', value: (f.created_after || '').slice(0, 10) })),
      field(t('createdBefore'), h('input', { name: 'created_before', type: 'date', value: (f.created_before || '').slice(0, 10) }))),
    h('div', { class: 'two' },
      field(t('activeAfter'), h('input', { name: 'active_after', type: 'date', value: (f.active_after || '').slice(0, 10) })),
      field(t('activeBefore'), h('input', { name: 'active_before', type: 'date', value: (f.active_before || '').slice(0, 10) }))),
    h('label', { class: 'check' }, h('input', { type: 'checkbox', checked: true, disabled: true }), ' ', t('hasEmail')),
    h('div', { class: 'count-row' }, count),
    h('div', { class: 'row' }, h('button', { type: 'submit', id: 'save-segment' }, seg ? t('save') : t('saveSegment')),
      seg ? deleteButton('delete-segment', () => t('confirmDeleteSegment', { name: seg.name }), `/api/v1/segments/${id}`, err) : null,
      backLink()),
    err);
  // The live count: each change asks the server (debounced); an older answer never
  // overwrites a newer one.
  let timer = null, asked = 0;
  const recount = () => {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      const n = ++asked;
      count.textContent = t('counting');
      count.dataset.count = '';
      try {
        const d = await api('POST', '/api/v1/segments/count', { filter: filterFromForm(new FormData(form)) });
        if (n !== asked) return;
        count.textContent = t('segCount', { n: d.count });
        count.dataset.count = String(d.count);
        err.textContent = '';
      } catch (e) {
        if (n !== asked) return;
        count.textContent = '';
        err.textContent = e.message;
      }
    }, 250);
  };
  form.addEventListener('input', recount);
  form.addEventListener('change', recount);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const fd = new FormData(form);
    try {
      const body = { name: fd.get('name'), filter: filterFromForm(fd) };
      // Editing saves in place; scheduled campaigns using the segment take the new filter.
      await (seg ? api('PATCH', `/api/v1/segments/${id}`, body) : api('POST', '/api/v1/segments', body));
      go('#/campaigns');
    } catch (ex) {
      err.textContent = ex.message;
    }
  });
  wrap.append(h('section', { class: 'admin-section' }, form));
  recount();
}

// ---------- template editor ----------

const FRAME_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'";

// The marketer's HTML never enters this page: it goes into an iframe with sandbox=""
// (no script, an opaque origin, no forms, no navigation of the page) through srcdoc, with a
// CSP of its own that loads nothing; the frame inherits this page's CSP as well.
export function previewFrame(html, title) {
  const doc = `<!doctype html><html><head><meta charset="utf-8">`
    + `<meta http-equiv="Content-Security-Policy" content="${FRAME_CSP}">`
    + '<style>body{font:14px/1.45 system-ui,sans-serif;margin:8px;color:#1d2330;word-wrap:break-word}img{max-width:100%}</style>'
    + `</head><body>${html}</body></html>`;
  const frame = h('iframe', { class: 'email-frame preview-frame', id: 'preview-frame', sandbox: '', referrerpolicy: 'no-referrer', title });
  frame.srcdoc = doc;
  return frame;
}

function mergeHelp() {
  const rows = [['{{client.name}}', 'mf_name'], ['{{client.email}}', 'mf_email'], ['{{custom.plan}}', 'mf_custom'],
    ['{{client.name|there}}', 'mf_fallback'], ['{{{custom.html}}}', 'mf_raw'], ['{{unsubscribe_url}}', 'mf_unsub'],
    ['{{view_url}}', 'mf_view']];
  return h('details', { class: 'merge-help', id: 'merge-help' }, h('summary', {}, t('mergeHelp')),
    h('table', { class: 'grid' }, h('tbody', {}, rows.map(([k, s]) => h('tr', {}, h('td', {}, h('code', {}, k)), h('td', {}, t(s)))))));
}

async function templateEditor(wrap, id) {
  const tpl = id ? await api('GET', `/api/v1/templates/${id}`) : null;
  const err = errorBox('tpl-error');
  const title = h('h2', {}, tpl ? tpl.name : t('newTemplate'));
  const note = savedNote('tpl-saved');
  const bodyOf = (fd) => ({ name: fd.get('name'), subject: fd.get('subject'), html: fd.get('html') || null, text: fd.get('text') || null });
  const saveAsNew = async () => {
    if (!form.reportValidity()) return;
    try {
      const d = await api('POST', '/api/v1/templates', bodyOf(new FormData(form)));
      go(`#/campaigns/templates/${d.id}`);
    } catch (ex) {
      err.textContent = ex.message;
    }
  };
  const form = h('form', { class: 'admin-form wide', id: 'template-form' },
    title,
    field(t('name'), h('input', { name: 'name', required: true, maxlength: 255, value: tpl?.name || '' })),
    field(t('tplSubject'), h('input', { name: 'subject', required: true, maxlength: 998, value: tpl?.subject || '' })),
    field(t('tplHtml'), h('textarea', { name: 'html', rows: 8, class: 'code', spellcheck: 'false' }, tpl?.html || '')),
    field(t('tplText'), h('textarea', { name: 'text', rows: 5 }, tpl?.text || '')),
    mergeHelp(),
    h('div', { class: 'row wrap' }, h('button', { type: 'submit', id: 'save-template' }, tpl ? t('save') : t('saveTemplate')),
      tpl ? h('button', { type: 'button', class: 'secondary', id: 'save-template-new', onclick: saveAsNew }, t('saveAsNew')) : null,
      tpl ? deleteButton('delete-template', () => t('confirmDeleteTemplate', { name: tpl.name }), `/api/v1/templates/${id}`, err) : null,
      backLink(), note),
    err);
  const preview = tpl ? await previewTools(tpl) : null;
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    err.textContent = '';
    note.textContent = '';
    if (!tpl) return saveAsNew();
    // Save in place: campaigns already sending keep the copy they started with (docs/campaigns.md);
    // the preview shows the saved version at once.
    try {
      const d = await api('PATCH', `/api/v1/templates/${id}`, bodyOf(new FormData(form)));
      Object.assign(tpl, d);
      title.textContent = d.name;
      note.textContent = t('saved');
      await preview.refresh();
    } catch (ex) {
      err.textContent = ex.message;
    }
  });
  wrap.append(h('section', { class: 'admin-section' }, form),
    h('section', { class: 'admin-section', id: 'template-tools' }, tpl ? [preview, await testTools(tpl)] : h('p', { class: 'muted' }, t('saveFirst'))));
}

async function previewTools(tpl) {
  const q = h('input', { type: 'search', id: 'preview-q', placeholder: t('findClient'), 'aria-label': t('findClient'), autocomplete: 'off' });
  const pick = h('select', { id: 'preview-client', 'aria-label': t('client') }, h('option', { value: '' }, t('noClient')));
  const out = h('div', { class: 'preview-out', id: 'preview-out' });
  const err = errorBox('preview-error');
  let timer = null;
  q.addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      try {
        const d = await api('GET', `/api/v1/clients${qs({ q: q.value.trim(), limit: 20 })}`);
        pick.replaceChildren(h('option', { value: '' }, t('noClient')), ...d.items.map((c) => {
          const mail = c.identities?.find((i) => i.kind === 'email')?.value;
          return h('option', { value: c.id }, `${c.name || `#${c.id}`}${mail ? ` <${mail}>` : ''}`);
        }));
        if (d.items.length) pick.value = String(d.items[0].id);
      } catch (e) { err.textContent = e.message; }
    }, 250);
  });
  const show = async () => {
    err.textContent = '';
    try {
      const body = pick.value ? { client_id: Number(pick.value) } : {};
      const d = await api('POST', `/api/v1/templates/${tpl.id}/preview`, body);
      // replaceChildren takes nodes only: h() flattens the optional parts.
      out.replaceChildren(h('div', {},
        h('div', { class: 'preview-subject' }, h('b', {}, `${t('subject')}: `), h('span', { id: 'preview-subject' }, d.subject)),
        d.html ? [previewFrame(d.html, d.subject), h('div', { class: 'muted small' }, t('previewBlocked'))] : null,
        d.text ? h('pre', { class: 'preview-text', id: 'preview-text' }, d.text) : null));
    } catch (e) { err.textContent = e.message; }
  };
  const tool = h('div', { class: 'tool' }, h('h3', {}, t('previewFor')),
    h('div', { class: 'row wrap' }, q, pick, h('button', { type: 'button', id: 'preview-btn', onclick: show }, t('preview'))), err, out);
  tool.refresh = show;
  return tool;
}

async function testTools(tpl) {
  const email = (await channelNames()).filter((c) => c.kind === 'email');
  const ch = h('select', { id: 'test-channel', 'aria-label': t('emailChannel') }, email.map((c) => h('option', { value: c.id }, c.name)));
  const to = h('input', { type: 'email', id: 'test-to', placeholder: 'you@example.com', 'aria-label': t('testTo') });
  const res = h('p', { class: 'small', id: 'test-result', role: 'status' });
  const send = async (e) => {
    e.preventDefault();
    res.className = 'small';
    res.textContent = t('loading');
    try {
      const d = await api('POST', `/api/v1/templates/${tpl.id}/test`, { channel_id: Number(ch.value), to: to.value.trim() });
      res.textContent = t('testSent', { code: d.smtp_status });
    } catch (ex) {
      res.className = 'small error';
      res.textContent = ex.message;
    }
  };
  return h('form', { class: 'tool', id: 'test-form', onsubmit: send }, h('h3', {}, t('testSend')),
    email.length ? h('div', { class: 'row wrap' }, ch, to, h('button', { type: 'submit', id: 'test-btn' }, t('testSend')))
      : h('p', { class: 'muted' }, t('noEmailChannel')), res);
}

// ---------- campaign editor ----------

// A server time (UTC) as the value of a datetime-local input (the browser's local time).
function localInput(s) {
  const d = parseTime(s);
  if (!d) return '';
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

// The campaign form: a new campaign (c = null, Create = POST) or an existing draft or scheduled
// one (Save = PATCH; onSaved runs after).
async function campaignForm(c, onSaved) {
  const [segs, tpls, channels] = await Promise.all([listAll('/api/v1/segments'), listAll('/api/v1/templates'), channelNames()]);
  const email = channels.filter((x) => x.kind === 'email');
  const err = errorBox('campaign-form-error');
  const note = savedNote('campaign-saved');
  const select = (name, label, items, text) => field(label, h('select', { name, required: true },
    h('option', { value: '' }, label), items.map((x) => h('option', { value: x.id }, text(x)))));
  const form = h('form', { class: 'admin-form wide', id: c ? 'campaign-edit-form' : 'campaign-form' },
    h(c ? 'h3' : 'h2', {}, c ? t('editCampaign') : t('newCampaign')),
    field(t('name'), h('input', { name: 'name', required: true, maxlength: 255, value: c?.name || '' })),
    select('segment_id', t('chooseSegment'), segs, (x) => x.name),
    select('template_id', t('chooseTemplate'), tpls, (x) => `${x.name} — ${x.subject}`),
    email.length ? select('channel_id', t('chooseChannel'), email, (x) => x.name) : h('p', { class: 'error' }, t('noEmailChannel')),
    field(t('sendAt'), h('input', { name: 'send_at', type: 'datetime-local', value: localInput(c?.send_at) })),
    field(t('rate'), h('input', { name: 'rate_per_second', type: 'number', min: 0, max: 100000, value: c?.rate_per_second ?? 0 })),
    h('div', { class: 'row' }, h('button', { type: 'submit', id: c ? 'save-campaign' : 'create-campaign' }, c ? t('saveChanges') : t('createCampaign')),
      c ? note : backLink()),
    err);
  const els = form.elements;
  if (c) {
    els.segment_id.value = String(c.segment_id ?? '');
    els.template_id.value = String(c.template_id ?? '');
    if (els.channel_id) els.channel_id.value = String(c.channel_id ?? '');
  } else if (email.length === 1) els.channel_id.value = String(email[0].id);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    err.textContent = '';
    note.textContent = '';
    const fd = new FormData(form);
    const body = {
      name: fd.get('name'), segment_id: Number(fd.get('segment_id')), template_id: Number(fd.get('template_id')),
      channel_id: Number(fd.get('channel_id')), rate_per_second: Number(fd.get('rate_per_second') || 0),
    };
    // datetime-local is the browser's local time; the API takes UTC.
    if (fd.get('send_at')) body.send_at = new Date(fd.get('send_at')).toISOString().replace(/\.\d{3}Z$/, 'Z');
    else if (c) body.send_at = null;
    try {
      if (!c) {
        const d = await api('POST', '/api/v1/campaigns', body);
        go(`#/campaigns/${d.id}`);
        return;
      }
      // Unchanged segment and template are left out: on a scheduled campaign either one makes
      // its recipients again (docs/campaigns.md, "Editing and deleting").
      for (const k of ['segment_id', 'template_id']) if (body[k] === c[k]) delete body[k];
      Object.assign(c, await api('PATCH', `/api/v1/campaigns/${c.id}`, body));
      note.textContent = t('saved');
      onSaved?.();
    } catch (ex) {
      err.textContent = ex.message;
    }
  });
  return form;
}

async function campaignEditor(wrap) {
  wrap.append(h('section', { class: 'admin-section' }, await campaignForm(null)));
}

// ---------- a campaign ----------

const ACTIONS = {
  draft: ['start', 'delete', 'cancel'], scheduled: ['pause', 'cancel'], running: ['pause', 'cancel'], paused: ['resume', 'cancel'],
};

async function campaignPage(wrap, id, gen) {
  const lang = getLanguage();
  const head = h('div', { class: 'section-head' });
  const meta = h('p', { class: 'muted small', id: 'campaign-meta' });
  const actions = h('div', { class: 'row wrap', id: 'campaign-actions' });
  const err = errorBox('campaign-error');
  const counters = h('div', { class: 'counters', id: 'campaign-counters' });
  const canvas = h('canvas', { id: 'campaign-chart', 'aria-label': t('perHour') });
  const chartBox = h('div', { class: 'chart-box' }, canvas);
  const chartNote = h('p', { class: 'muted small', id: 'chart-note' });
  const updated = h('p', { class: 'muted small', id: 'campaign-updated' });
  const progress = h('progress', { id: 'campaign-progress', max: 1, value: 0 });
  const progressText = h('span', { class: 'small', id: 'campaign-progress-text' });
  const editBox = h('section', { class: 'admin-section', id: 'campaign-edit', hidden: true });
  const csv = h('a', { href: `/api/v1/campaigns/${id}/recipients.csv`, id: 'campaign-csv', class: 'button secondary', download: `campaign-${id}-recipients.csv` }, t('exportCsv'));
  wrap.append(h('section', { class: 'admin-section', id: 'campaign' },
    h('a', { href: '#/campaigns', class: 'small back-link' }, `← ${t('campaigns')}`),
    head, meta, actions, err, h('div', { class: 'progress-row' }, progress, ' ', progressText), counters,
    h('h3', {}, t('perHour')), chartBox, chartNote, h('div', { class: 'row' }, csv, updated)), editBox);

  // A draft or scheduled campaign is edited here, in a form built once (a poll never rebuilds
  // what is being typed) and taken away once the campaign sends.
  let editFor = null;
  const syncEditor = async (c) => {
    const editable = c.status === 'draft' || c.status === 'scheduled';
    if (!editable) {
      editFor = null;
      editBox.hidden = true;
      editBox.replaceChildren();
      return;
    }
    if (editFor) return;
    editFor = c.status;
    const form = await campaignForm(c, () => { names = null; refresh(); });
    if (!current(gen) || !editFor) return;
    editBox.replaceChildren(form);
    editBox.hidden = false;
  };

  let names = null;
  // A finished or cancelled campaign may have outlived its segment and template (null ids).
  const loadNames = async (c) => {
    const [seg, tpl, channels] = await Promise.all([
      c.segment_id ? api('GET', `/api/v1/segments/${c.segment_id}`).catch(() => null) : null,
      c.template_id ? api('GET', `/api/v1/templates/${c.template_id}`).catch(() => null) : null,
      channelNames().catch(() => []),
    ]);
    const gone = `(${t('deleted')})`;
    return {
      seg: seg?.name ?? (c.segment_id ? `#${c.segment_id}` : gone), tpl: tpl?.name ?? (c.template_id ? `#${c.template_id}` : gone),
      ch: channels.find((x) => x.id === c.channel_id)?.name ?? `#${c.channel_id}`,
    };
  };

  const act = async (action, c) => {
    if (action === 'cancel' && !window.confirm(t('confirmCancel', { name: c.name }))) return;
    if (action === 'delete' && !window.confirm(t('confirmDeleteCampaign', { name: c.name }))) return;
    err.textContent = '';
    try {
      if (action === 'delete') {
        await api('DELETE', `/api/v1/campaigns/${id}`);
        go('#/campaigns');
        return;
      }
      await api('POST', `/api/v1/campaigns/${id}/${action}`);
    } catch (e) {
      err.textContent = e.message;
    }
    refresh();
  };

  // One fetch at a time; a refresh asked for meanwhile (an action, an event) runs after it,
  // so the page never ends on an answer older than the action.
  let busy = false, again = false;
  const refresh = async () => {
    if (!current(gen)) return;
    if (busy) { again = true; return; }
    busy = true;
    clearTimeout(page.timer);
    try {
      // One request per poll: the campaign with its counters and the chart's series.
      const c = await api('GET', `/api/v1/campaigns/${id}?hourly=1`);
      const stats = c.stats || {};
      if (!current(gen)) return;
      names ||= await loadNames(c);
      head.replaceChildren(h('h2', { id: 'campaign-name' }, c.name), statusBadge(c.status));
      wrap.querySelector('#campaign').dataset.status = c.status;
      meta.replaceChildren(`${t('segment')}: ${names.seg} · ${t('template')}: ${names.tpl} · ✉ ${names.ch}`,
        c.rate_per_second ? ` · ${c.rate_per_second}/s` : '',
        c.send_at ? ` · ${t('scheduled')}: ${fmtTime(c.send_at, lang, true)}` : '',
        ` · ${t('created')}: ${fmtTime(c.created_at, lang, true)}`);
      actions.replaceChildren(...(ACTIONS[c.status] || []).map((a) => h('button', {
        type: 'button', id: `campaign-${a}`, class: a === 'start' ? '' : a === 'cancel' ? 'secondary danger' : 'secondary', onclick: () => act(a, c),
      }, t(a === 'delete' ? 'del' : a))));
      syncEditor(c);
      const total = stats.recipients || 0;
      progress.max = total || 1;
      progress.value = stats.sent ?? 0;
      progressText.textContent = `${stats.sent ?? 0} / ${total}`;
      counters.replaceChildren(...COUNTERS.map((k) => h('div', { class: 'counter', id: `stat-${k}`, dataset: { value: stats[k] ?? 0 } },
        h('b', {}, String(stats[k] ?? 0)), h('span', { class: 'small muted' }, t(`st_${k}`)))));
      await drawHourly(canvas, stats.hourly || [], chartNote);
      updated.textContent = t('updated', { time: new Date().toLocaleTimeString(lang) });
      if (current(gen) && (ACTIVE.has(c.status) || stats.sending > 0)) page.timer = setTimeout(refresh, REFRESH_MS);
    } catch (e) {
      if (current(gen)) {
        err.textContent = e.status === 404 ? t('notFound') : `${t('errorPrefix')}: ${e.message}`;
        if (e.status !== 404) page.timer = setTimeout(refresh, REFRESH_MS * 2);
      }
    } finally {
      busy = false;
      if (again) { again = false; refresh(); }
    }
  };
  page.onEvent = (ev) => { if (ev.event === 'campaign.updated' && Number(ev.data?.campaign_id) === id) refresh(); };
  await refresh();
}

async function drawHourly(canvas, hourly, note) {
  const lang = getLanguage();
  note.textContent = hourly.length ? '' : t('noStatsYet');
  const labels = hourly.map((x) => {
    const d = parseTime(x.hour.replace('T', ' ').replace('Z', ''));
    return d ? d.toLocaleString(lang, { day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit' }) : x.hour;
  });
  const series = (key, color, type = 'line') => ({
    type, label: t(`st_${key}`), data: hourly.map((x) => x[key] || 0), borderColor: color, backgroundColor: type === 'bar' ? `${color}99` : color, tension: 0.2, maxBarThickness: 56,
  });
  await drawChart(canvas, {
    type: 'bar',
    data: { labels, datasets: [series('sent', '#4f46e5', 'bar'), series('opened', '#059669'), series('clicked', '#d97706'), series('unsubscribed', '#dc2626')] },
    options: { animation: false, responsive: true, maintainAspectRatio: false, scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } },
  });
  canvas.dataset.points = String(hourly.length);
  canvas.dataset.sent = String(hourly.reduce((n, x) => n + (x.sent || 0), 0));
}
