// The agents' web view: sign-in, inbox list, thread, reply box, client card, live updates.
// Plain DOM; all server text goes in as text (dom.js), e-mail HTML through email.js.
import { h, $, fmtTime, newKey, channelIcon } from './dom.js';
import { api, qs, setUnauthorizedHandler } from './api.js';
import { t, pickLanguage, setLanguage, saveLanguage, getLanguage } from './i18n.js';
import { renderInteraction } from './thread.js';
import { renderClientCard } from './client.js';
import { Live } from './live.js';
import { renderAdmin } from './admin.js';
import { attachComposerTools, bellButton, onNotificationEvent, refreshNotifications, saveLocale } from './agent_tools.js';
import { QuoteBox } from './quote.js';
import { renderCampaigns, leaveCampaigns, campaignEvent } from './campaigns.js';
import { topMenu } from './topmenu.js';
import { scheduleCounts, refreshCounts, renderCounts, loadTeams, teamFilter, teamSelect } from './inbox_extras.js';
import { renderReports } from './reports.js';
import { composerFiles } from './attach.js';

const app = document.getElementById('app');
const S = {
  user: null,
  channels: new Map(),
  users: [],
  filters: { status: 'open', assignee: 'all', channel: '', team: '', q: '' },
  convs: [],
  cursor: null,
  listGen: 0,
  listLoading: false,
  previews: new Map(),
  openId: null,
  conv: null,
  items: new Map(),
  threadCursor: null,
  mode: 'reply',
  draftKey: null,
  typing: new Map(),
  cardOpen: false,
  live: null,
};
window.__sb = S; // for the e2e tests and for poking around in the console

// ---------- sign-in ----------

function renderLogin(message) {
  S.live?.stop();
  S.live = null;
  S.user = null;
  setLanguage(pickLanguage(null));
  const err = h('p', { class: 'error', role: 'alert', id: 'login-error' }, message || '');
  const form = h('form', { id: 'login', class: 'login' },
    h('h1', {}, 'Switchboard'),
    h('label', {}, t('email'), h('input', { name: 'email', type: 'email', autocomplete: 'username', required: true })),
    h('label', {}, t('password'), h('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true })),
    h('button', { type: 'submit' }, t('signIn')),
    err,
    h('button', { type: 'button', class: 'link small', onclick: toggleLanguage }, t('language')));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const f = new FormData(form);
    try {
      const d = await api('POST', '/api/v1/session', { email: f.get('email'), password: f.get('password') });
      start(d.user);
    } catch (e) {
      err.textContent = e.message;
    }
  });
  app.replaceChildren(h('main', { class: 'login-wrap' }, form));
  form.querySelector('input').focus();
}

function toggleLanguage() {
  saveLanguage(getLanguage() === 'ru' ? 'en' : 'ru');
  saveLocale(S.user, getLanguage()); // a new browser of this user opens in it too
  if (S.user) start(S.user);
  else renderLogin();
}

async function logout() {
  try { await api('DELETE', '/api/v1/session'); } catch { /* signed out anyway */ }
  sessionStorage.removeItem('sb.lastEventId');
  location.hash = '';
  renderLogin();
}

setUnauthorizedHandler(() => { if (S.user) renderLogin(); });

// ---------- the shell ----------

const el = {};

function start(user) {
  S.user = user;
  setLanguage(pickLanguage(user.locale));
  buildShell();
  if (!S.live) {
    S.live = new Live({ onEvent, onTyping, onResync: resync, onState: liveState });
    S.live.start();
  }
  loadChannels();
  if (user.role !== 'marketer') {
    // marketers have no inbox (its APIs answer 403)
    loadTeams(S);
    reloadList();
  }
  route();
}

function buildShell() {
  const statusTabs = h('div', { class: 'tabs', role: 'tablist', id: 'status-tabs' },
    ['open', 'pending', 'resolved', 'snoozed', ''].map((s) => h('button', {
      type: 'button', role: 'tab', dataset: { status: s },
      'aria-selected': String(S.filters.status === s),
      onclick: () => { S.filters.status = s; syncFilters(); reloadList(); },
    }, s ? t(s) : t('allStatuses'))));
  el.assignee = h('select', { id: 'f-assignee', 'aria-label': t('assignTo'), onchange: (e) => { S.filters.assignee = e.target.value; reloadList(); } },
    h('option', { value: 'all' }, t('everyone')), h('option', { value: 'me' }, t('mine')), h('option', { value: 'unassigned' }, t('unassigned')));
  el.assignee.value = S.filters.assignee;
  el.channel = h('select', { id: 'f-channel', 'aria-label': t('allChannels'), onchange: (e) => { S.filters.channel = e.target.value; reloadList(); } },
    h('option', { value: '' }, t('allChannels')));
  el.q = h('input', { type: 'search', id: 'q', placeholder: t('search'), value: S.filters.q, 'aria-label': t('search'), autocomplete: 'off' });
  let qTimer;
  el.q.addEventListener('input', () => {
    clearTimeout(qTimer);
    qTimer = setTimeout(() => { S.filters.q = el.q.value.trim(); reloadList(); }, 250);
  });
  el.list = h('ul', { id: 'convs', class: 'convs' });
  el.sentinel = h('div', { class: 'sentinel muted small' });
  el.liveDot = h('span', { class: 'live-dot', id: 'live-state', title: t('offline') });
  el.thread = h('section', { class: 'thread-pane', id: 'thread' });
  el.card = h('aside', { class: 'card-pane', id: 'client-card' });
  el.help = buildHelp();
  el.shell = h('div', { class: 'shell', dataset: { pane: 'list' } },
    h('header', { class: 'top' },
      h('span', { class: 'brand' }, 'Switchboard'), el.liveDot,
      h('span', { class: 'spacer' }),
      S.user.role !== 'marketer' ? bellButton(S.user, openConversation) : null, // marketers are never mentioned
      h('span', { class: 'who', id: 'who' }, h('b', {}, S.user.name), ' ', h('span', { class: 'role', id: 'role' }, S.user.role)),
      topMenu( // behind a menu button on a phone (topmenu.js)
        S.user.role === 'admin' ? h('a', { href: '#/admin', class: 'top-link', id: 'admin-link' }, t('admin')) : null,
        ['admin', 'marketer'].includes(S.user.role) ? h('a', { href: '#/campaigns', class: 'top-link', id: 'campaigns-link' }, t('campaigns')) : null,
        S.user.role !== 'marketer' ? h('a', { href: '#/reports', class: 'top-link', id: 'reports-link' }, t('reports')) : null,
        h('button', { type: 'button', class: 'link', id: 'lang', onclick: toggleLanguage }, getLanguage() === 'ru' ? 'EN' : 'RU'),
        h('button', { type: 'button', class: 'link', title: t('shortcuts'), onclick: showHelp }, '?'),
        h('button', { type: 'button', class: 'link', id: 'logout', onclick: logout }, t('signOut')))),
    h('section', { class: 'list-pane' },
      h('form', { class: 'search', onsubmit: (e) => { e.preventDefault(); S.filters.q = el.q.value.trim(); reloadList(); } }, el.q),
      statusTabs,
      h('div', { class: 'filters' }, el.assignee, el.channel, teamFilter(S, () => reloadList())),
      h('div', { class: 'muted small unread-count', id: 'unread-count' }),
      h('div', { class: 'list-scroll', id: 'list-scroll' }, el.list, el.sentinel)),
    el.thread, el.card, el.help, el.admin = h('section', { class: 'admin-pane', id: 'admin' }));
  app.replaceChildren(el.shell);
  liveState(S.live?.ws?.readyState === WebSocket.OPEN);
  fillChannelFilter();
  new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting)) loadMore();
  }, { root: $('#list-scroll') }).observe(el.sentinel);
  renderThread();
  renderCounts(S);
}

function syncFilters() {
  for (const b of document.querySelectorAll('#status-tabs button')) b.setAttribute('aria-selected', String(b.dataset.status === S.filters.status));
}

function buildHelp() {
  el.helpKeys = h('tbody', {});
  const d = h('dialog', { id: 'help', class: 'help' },
    h('h2', {}, t('shortcuts')),
    h('table', {}, el.helpKeys),
    h('form', { method: 'dialog' }, h('button', {}, t('close'))));
  return d;
}

// The inbox keys act on the list and the thread; the campaign and admin pages have neither, so
// there the help lists (and the keyboard handler knows) only ? and Esc.
const inboxView = () => el.shell?.dataset.view !== 'admin';
function showHelp() {
  const keys = inboxView()
    ? [['j', 'kNext'], ['k', 'kPrev'], ['r', 'kReply'], ['n', 'kNote'], ['e', 'kResolve'], ['/', 'kSearch'], ['?', 'kHelp'], ['Esc', 'kEsc']]
    : [['?', 'kHelp'], ['Esc', 'kEsc']];
  el.helpKeys.replaceChildren(...keys.map(([k, s]) => h('tr', {}, h('td', {}, h('kbd', {}, k)), h('td', {}, t(s)))));
  el.help.showModal();
}

function liveState(up) {
  el.liveDot?.classList.toggle('up', up);
  if (el.liveDot) el.liveDot.title = up ? t('live') : t('offline');
  document.body.dataset.live = up ? 'up' : 'down';
}

async function loadChannels() {
  try {
    const d = await api('GET', '/api/v1/channels');
    for (const c of d.items) S.channels.set(c.id, c);
  } catch { /* agents cannot list channels; the conversations name theirs */ }
  if (S.user.role === 'admin') {
    try { S.users = (await api('GET', '/api/v1/users')).users.filter((u) => !u.disabled); } catch { S.users = []; }
  }
  fillChannelFilter();
}

function fillChannelFilter() {
  if (!el.channel) return;
  const cur = S.filters.channel;
  el.channel.replaceChildren(h('option', { value: '' }, t('allChannels')),
    ...[...S.channels.values()].map((c) => h('option', { value: c.id }, `${channelIcon(c.kind)} ${c.name}`)));
  el.channel.value = cur;
}

// ---------- conversation list ----------

function listParams(cursor) {
  const f = S.filters;
  return qs({ status: f.status, assignee: f.assignee === 'all' ? '' : f.assignee, channel: f.channel, team_id: f.team, q: f.q, cursor, limit: 40 });
}

async function reloadList() {
  const gen = ++S.listGen;
  refreshCounts(S);
  S.convs = [];
  S.cursor = null;
  S.listLoading = true;
  el.sentinel.textContent = t('loading');
  try {
    const d = await api('GET', `/api/v1/conversations${listParams()}`);
    if (gen !== S.listGen) return;
    S.convs = d.items;
    S.cursor = d.next_cursor;
    noteChannels(d.items);
  } catch (e) {
    if (gen === S.listGen) el.sentinel.textContent = `${t('errorPrefix')}: ${e.message}`;
    return;
  } finally {
    if (gen === S.listGen) S.listLoading = false;
  }
  renderList();
}

async function loadMore() {
  if (S.listLoading || !S.cursor) return;
  const gen = S.listGen;
  S.listLoading = true;
  try {
    const d = await api('GET', `/api/v1/conversations${listParams(S.cursor)}`);
    if (gen !== S.listGen) return;
    const have = new Set(S.convs.map((c) => c.id));
    S.convs.push(...d.items.filter((c) => !have.has(c.id)));
    S.cursor = d.next_cursor;
    noteChannels(d.items);
    renderList();
  } catch (e) {
    el.sentinel.textContent = `${t('errorPrefix')}: ${e.message}`;
  } finally {
    if (gen === S.listGen) S.listLoading = false;
  }
}

function noteChannels(items) {
  let added = false;
  for (const c of items) if (c.channel && !S.channels.has(c.channel.id)) { S.channels.set(c.channel.id, c.channel); added = true; }
  if (added) fillChannelFilter();
}

function convRow(c) {
  const lang = getLanguage();
  // The live preview of this session, else the list API's last message (after a reload).
  const lm = c.last_message;
  const lastText = lm?.preview ? `${lm.direction === 'out' ? '→ ' : lm.direction === 'note' ? '✎ ' : ''}${lm.preview}` : '';
  const preview = S.previews.get(c.id) || lastText || c.subject || c.channel?.name || '';
  return h('li', {
    class: `conv${c.id === S.openId ? ' active' : ''}${c.unread > 0 ? ' has-unread' : ''}`,
    dataset: { id: c.id, status: c.status },
    onclick: () => openConversation(c.id),
  },
  h('span', { class: 'ch-icon', title: c.channel?.kind }, channelIcon(c.channel?.kind)),
  h('div', { class: 'conv-main' },
    h('div', { class: 'row' },
      h('b', { class: 'name' }, c.client?.name || `${t('client')} #${c.client?.id}`),
      h('time', { datetime: c.last_activity_at }, fmtTime(c.last_activity_at, lang))),
    h('div', { class: 'row' },
      h('span', { class: 'preview' }, preview),
      c.unread > 0 ? h('span', { class: 'unread', title: t('unread') }, String(c.unread)) : null,
      c.status !== 'open' ? h('span', { class: `status st-${c.status}` }, t(`st_${c.status}`)) : null)));
}

function renderList() {
  el.list.replaceChildren(...S.convs.map(convRow));
  const unread = S.convs.reduce((n, c) => n + (c.unread > 0 ? 1 : 0), 0);
  document.title = unread ? `(${unread}) Switchboard` : 'Switchboard';
  el.sentinel.textContent = S.convs.length ? (S.cursor ? t('loading') : '') : t('noConversations');
}

function sortConvs() {
  S.convs.sort((a, b) => (a.last_activity_at < b.last_activity_at ? 1 : a.last_activity_at > b.last_activity_at ? -1 : b.id - a.id));
}

function matchesFilters(c) {
  const f = S.filters;
  if (f.status && c.status !== f.status) return false;
  if (f.assignee === 'me' && c.assignee_id !== S.user.id) return false;
  if (f.assignee === 'unassigned' && c.assignee_id !== null) return false;
  if (/^\d+$/.test(f.assignee) && c.assignee_id !== Number(f.assignee)) return false;
  if (f.channel && c.channel?.id !== Number(f.channel)) return false;
  if (f.team && c.team_id !== Number(f.team)) return false;
  return true;
}

function applyConv(c) {
  const i = S.convs.findIndex((x) => x.id === c.id);
  if (matchesFilters(c) && (i >= 0 || !S.filters.q)) {
    if (i >= 0) S.convs[i] = c;
    else S.convs.push(c);
    sortConvs();
  } else if (i >= 0) {
    S.convs.splice(i, 1);
  }
  noteChannels([c]);
  renderList();
  if (c.id === S.openId) {
    S.conv = c;
    renderThreadHead();
  }
}

// Live events name conversations; refetch each one (coalesced) rather than patching
// from partial event data, so the list shows exactly what the API would.
const pendingConvs = new Set();
let convTimer = null;
function queueConvRefresh(id) {
  pendingConvs.add(id);
  if (!convTimer) convTimer = setTimeout(flushConvs, 30);
}

async function flushConvs() {
  convTimer = null;
  const ids = [...pendingConvs];
  pendingConvs.clear();
  if (ids.length > 40) { reloadList(); return; }
  await Promise.all(ids.map(async (id) => {
    try {
      applyConv(await api('GET', `/api/v1/conversations/${id}`));
    } catch (e) {
      if (e.status === 404) {
        S.convs = S.convs.filter((x) => x.id !== id);
        renderList();
      }
    }
  }));
}

// ---------- live ----------

let threadTimer = null;
function onEvent(ev) {
  if (ev.event.startsWith('notification.')) { onNotificationEvent(ev); return; }
  const cid = ev.conversation_id;
  if (cid && /^(interaction|conversation)\./.test(ev.event)) {
    if (ev.event === 'interaction.created' && ev.data?.preview) S.previews.set(cid, ev.data.preview);
    queueConvRefresh(cid);
    scheduleCounts(S);
    if (cid === S.openId) {
      if (ev.event === 'interaction.updated' && ev.data?.id && S.items.has(ev.data.id) && ev.data.delivery_status && !ev.data.text) {
        const it = { ...S.items.get(ev.data.id), delivery_status: ev.data.delivery_status };
        if (ev.data.error) it.meta = { ...(it.meta || {}), delivery_error: ev.data.error };
        S.items.set(it.id, it);
        renderItems(false);
      } else if (ev.event.startsWith('interaction.')) {
        clearTimeout(threadTimer);
        threadTimer = setTimeout(refreshThread, 30);
      }
      if (ev.event === 'interaction.created' && ev.data?.direction === 'in') S.typing.delete(cid);
    }
  }
  if (ev.event.startsWith('campaign.')) campaignEvent(ev);
  if (ev.event.startsWith('client.')) clientEvent(ev);
}

function onTyping(m) {
  if (m.user_id === S.user.id) return;
  S.typing.set(m.conversation_id, { name: m.name, until: Date.now() + 5000 });
  renderTyping();
  setTimeout(renderTyping, 5100);
}

function resync() {
  reloadList();
  refreshNotifications();
  if (S.openId) refreshThread(true);
}

// ---------- thread ----------

function route() {
  // Campaign pages share the admin pane; a marketer has nothing else, so lands there.
  if (S.user.role === 'marketer' && !location.hash.startsWith('#/campaigns')) history.replaceState(null, '', '#/campaigns');
  const camp = location.hash.startsWith('#/campaigns') && ['admin', 'marketer'].includes(S.user.role);
  if (!camp) leaveCampaigns();
  const admin = camp || (location.hash.startsWith('#/admin') && S.user.role === 'admin');
  const reports = location.hash.startsWith('#/reports') && S.user.role !== 'marketer';
  el.shell.dataset.view = admin ? 'admin' : reports ? 'reports' : 'inbox';
  if (camp) {
    renderCampaigns(el.admin);
    return;
  }
  if (admin) {
    renderAdmin(el.admin);
    return;
  }
  if (reports) {
    renderReports(el.admin);
    return;
  }
  el.admin.replaceChildren();
  const m = /^#\/c\/(\d+)/.exec(location.hash);
  const id = m ? Number(m[1]) : null;
  if (id !== S.openId) showConversation(id);
}
window.addEventListener('hashchange', () => { if (S.user) route(); });

function openConversation(id) {
  if (location.hash !== `#/c/${id}`) location.hash = `#/c/${id}`;
  else showConversation(id);
}

async function showConversation(id) {
  S.openId = id;
  S.conv = S.convs.find((c) => c.id === id) || null;
  S.items = new Map();
  S.threadCursor = null;
  S.draftKey = null;
  el.shell.dataset.pane = id ? 'thread' : 'list';
  S.live?.setView(id);
  renderList();
  renderThread();
  if (!id) return;
  try {
    const c = await api('GET', `/api/v1/conversations/${id}`);
    if (S.openId !== id) return;
    S.conv = c;
    S.mode = ['webform', 'pbx'].includes(c.channel?.kind) ? 'note' : 'reply';
    renderThread();
    await refreshThread(true);
    markRead();
    if (S.cardOpen || window.matchMedia('(min-width: 1200px)').matches) loadCard();
  } catch (e) {
    if (S.openId === id) el.threadBody.replaceChildren(h('div', { class: 'error pad' }, `${t('errorPrefix')}: ${e.message}`));
  }
}

function markRead() {
  const c = S.conv;
  if (!c || !(c.unread > 0) || document.hidden) return;
  api('PATCH', `/api/v1/conversations/${c.id}`, { unread: 0 }).then(applyConv).catch(() => {});
}
document.addEventListener('visibilitychange', markRead);

// A reply's status only moves forward (queued → sent → delivered → read): an answer read
// before the sender's commit (the 202 of the reply, a refresh already in flight) must not
// undo the "sent" a live event has just shown. A retry (failed → queued) is not a step back.
const STATUS_RANK = { queued: 1, sent: 2, delivered: 3, read: 4 };
function mergeItem(it) {
  const prev = S.items.get(it.id);
  const keep = prev && (STATUS_RANK[prev.delivery_status] || 0) > (STATUS_RANK[it.delivery_status] || 0) && it.delivery_status !== 'failed';
  S.items.set(it.id, keep ? { ...prev, ...it, delivery_status: prev.delivery_status } : { ...(prev || {}), ...it });
}

async function refreshThread(scrollDown) {
  const id = S.openId;
  if (!id) return;
  let d;
  try {
    d = await api('GET', `/api/v1/conversations/${id}/interactions?limit=50`);
  } catch (e) {
    // A drop while the server restarts: the resume after reconnecting brings it back.
    if (S.openId === id && !S.items.size) el.threadBody?.replaceChildren(h('div', { class: 'error pad' }, `${t('errorPrefix')}: ${e.message}`));
    return;
  }
  if (S.openId !== id) return;
  const fresh = d.items.some((it) => !S.items.has(it.id));
  for (const it of d.items) mergeItem(it);
  if (S.threadCursor === null && scrollDown) S.threadCursor = d.next_cursor;
  renderItems(scrollDown || fresh);
  if (fresh) markRead();
}

async function loadEarlier() {
  const id = S.openId;
  if (!S.threadCursor) return;
  const d = await api('GET', `/api/v1/conversations/${id}/interactions?limit=50&cursor=${encodeURIComponent(S.threadCursor)}`).catch(() => null);
  if (!d) return;
  if (S.openId !== id) return;
  for (const it of d.items) S.items.set(it.id, it);
  S.threadCursor = d.next_cursor;
  renderItems(false);
}

function renderThread() {
  if (!S.openId) {
    el.thread.replaceChildren(h('div', { class: 'empty muted' }, t('pickConversation')));
    el.card.replaceChildren();
    return;
  }
  el.threadHead = h('div', { class: 'thread-head' });
  el.threadBody = h('div', { class: 'thread-body', id: 'thread-body' }, h('div', { class: 'muted pad' }, t('loading')));
  el.threadBody.addEventListener('sb-resized', () => { if (S.stickBottom) el.threadBody.scrollTop = el.threadBody.scrollHeight; });
  el.threadBody.addEventListener('scroll', () => {
    const b = el.threadBody;
    S.stickBottom = b.scrollHeight - b.scrollTop - b.clientHeight < 80;
  }, { passive: true });
  el.typing = h('div', { class: 'typing muted small', id: 'typing' });
  el.thread.replaceChildren(el.threadHead, el.threadBody, el.typing, buildComposer());
  renderThreadHead();
}

function renderThreadHead() {
  const c = S.conv;
  if (!el.threadHead || !c) return;
  const resolved = c.status === 'resolved';
  const assign = h('select', { id: 'assign', 'aria-label': t('assignTo'), onchange: (e) => patchConv({ assignee_id: e.target.value ? Number(e.target.value) : null }) },
    h('option', { value: '' }, `— ${t('unassigned')}`),
    h('option', { value: S.user.id }, `${S.user.name} (${t('me')})`),
    S.users.filter((u) => u.id !== S.user.id).map((u) => h('option', { value: u.id }, u.name)));
  if (c.assignee_id && ![...assign.options].some((o) => o.value === String(c.assignee_id))) assign.append(h('option', { value: c.assignee_id }, `#${c.assignee_id}`));
  assign.value = c.assignee_id ? String(c.assignee_id) : '';
  el.threadHead.replaceChildren(
    h('button', { type: 'button', class: 'link back', onclick: () => { location.hash = ''; } }, `← ${t('back')}`),
    h('div', { class: 'title' },
      h('button', { type: 'button', class: 'link client-name', onclick: toggleCard }, c.client?.name || `${t('client')} #${c.client?.id}`),
      h('div', { class: 'muted small' }, channelIcon(c.channel?.kind), ' ', c.channel?.name || '', c.subject ? ` · ${c.subject}` : '',
        ' · ', h('span', { class: `status st-${c.status}`, id: 'conv-status' }, t(`st_${c.status}`)),
        c.status === 'snoozed' && c.snoozed_until ? ` ${t('snoozedUntil', { time: fmtTime(c.snoozed_until, getLanguage(), true) })}` : null)),
    h('div', { class: 'actions' },
      assign,
      teamSelect(S, c, patchConv),
      c.status === 'open' ? h('button', { type: 'button', class: 'secondary', onclick: () => patchConv({ status: 'pending' }) }, t('markPending')) : null,
      snoozeMenu(),
      c.status !== 'open' ? h('button', { type: 'button', id: 'reopen', class: resolved ? '' : 'secondary', onclick: () => patchConv({ status: 'open' }) }, t('reopen')) : null,
      !resolved ? h('button', { type: 'button', id: 'resolve', onclick: () => patchConv({ status: 'resolved' }) }, t('resolve')) : null,
      h('button', { type: 'button', class: 'secondary card-toggle', onclick: toggleCard }, t('clientCard'))));
}

// Snooze until a local time, sent as UTC "YYYY-MM-DD HH:MM:SS".
function snoozeMenu() {
  const at = (d) => d.toISOString().slice(0, 19).replace('T', ' ');
  const choices = {
    h1: () => new Date(Date.now() + 3600e3),
    h3: () => new Date(Date.now() + 3 * 3600e3),
    tomorrow: () => { const d = new Date(); d.setDate(d.getDate() + 1); d.setHours(9, 0, 0, 0); return d; },
    monday: () => { const d = new Date(); d.setDate(d.getDate() + ((8 - d.getDay()) % 7 || 7)); d.setHours(9, 0, 0, 0); return d; },
  };
  return h('select', {
    id: 'snooze', 'aria-label': t('snooze'),
    onchange: (e) => { const f = choices[e.target.value]; if (f) patchConv({ status: 'snoozed', snoozed_until: at(f()) }); },
  }, h('option', { value: '' }, `${t('snooze')}…`),
  Object.keys(choices).map((k) => h('option', { value: k }, t(`snooze_${k}`))));
}

async function patchConv(body) {
  if (!S.conv) return;
  try {
    applyConv(await api('PATCH', `/api/v1/conversations/${S.conv.id}`, body));
  } catch (e) {
    alert(e.message);
  }
}

function toggleResolved() {
  if (S.conv) patchConv({ status: S.conv.status === 'resolved' ? 'open' : 'resolved' });
}

function renderItems(scrollDown) {
  const body = el.threadBody;
  if (!body) return;
  const nearBottom = body.scrollHeight - body.scrollTop - body.clientHeight < 80;
  const items = [...S.items.values()].sort((a, b) => (a.occurred_at < b.occurred_at ? -1 : a.occurred_at > b.occurred_at ? 1 : a.id - b.id));
  body.replaceChildren(
    // replaceChildren() would show a null as the text "null"
    ...(S.threadCursor ? [h('button', { type: 'button', class: 'link load-earlier', onclick: loadEarlier }, t('loadEarlier'))] : []),
    ...items.map((it) => renderInteraction(it, { onRetry: retry })));
  el.quote?.update(S.conv, S.items, S.mode);
  if (scrollDown || nearBottom) {
    body.scrollTop = body.scrollHeight;
    S.stickBottom = true;
  }
}

async function retry(it) {
  try {
    const r = await api('POST', `/api/v1/conversations/${S.openId}/interactions/${it.id}/retry`);
    S.items.set(r.id, { ...S.items.get(r.id), ...r });
    renderItems(false);
  } catch (e) {
    alert(e.message);
  }
}

function renderTyping() {
  if (!el.typing) return;
  const x = S.typing.get(S.openId);
  el.typing.textContent = x && x.until > Date.now() ? t('typing', { name: x.name || '…' }) : '';
}

function buildComposer() {
  const ta = h('textarea', { id: 'composer-text', rows: 3 });
  const err = h('div', { class: 'error small', id: 'composer-error', role: 'alert' });
  const send = h('button', { type: 'submit', id: 'send' });
  const tabs = h('div', { class: 'tabs small' },
    ['reply', 'note'].map((m) => h('button', { type: 'button', dataset: { mode: m }, onclick: () => setMode(m) }, t(m))));
  const quote = el.quote = new QuoteBox(S.user?.locale);
  const form = h('form', { class: 'composer', id: 'composer' }, tabs, ta, quote.el);
  const files = composerFiles(form, ta, err);
  form.append(files.list, h('div', { class: 'row' }, files.button, files.input, err, send));
  const tools = attachComposerTools(ta, form, { mode: () => S.mode, convId: () => S.openId }); // "/" and "@" pickers
  function setMode(m) {
    S.mode = m;
    quote.update(S.conv, S.items, m);
    form.dataset.mode = m;
    for (const b of tabs.children) b.setAttribute('aria-selected', String(b.dataset.mode === m));
    ta.placeholder = m === 'note' ? t('notePlaceholder') : t('replyPlaceholder');
    send.textContent = m === 'note' ? t('addNote') : t('send');
  }
  el.setMode = (m) => { setMode(m); ta.focus(); };
  setMode(S.mode);
  let lastTyping = 0;
  ta.addEventListener('input', () => {
    if (S.mode === 'reply' && Date.now() - lastTyping > 3000 && ta.value) {
      lastTyping = Date.now();
      S.live?.typing(S.openId);
    }
  });
  ta.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) { e.preventDefault(); form.requestSubmit(); }
  });
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const text = ta.value.trim();
    if ((!text && !files.count()) || !S.openId) return;
    if (S.mode === 'note' && files.count()) { err.textContent = t('filesWithRepliesOnly'); return; }
    send.disabled = true;
    err.textContent = '';
    const id = S.openId;
    try {
      let it;
      if (S.mode === 'note') {
        const r = await api('POST', `/api/v1/conversations/${id}/notes`, { text, mentions: tools.mentions(text) });
        it = { delivery_status: 'none', flags: [], sender: S.user.name, occurred_at: new Date().toISOString().replace('T', ' ').replace('Z', ''), ...r };
      } else {
        // One key per composed message: a retry after a lost answer cannot send twice.
        S.draftKey ||= newKey();
        await files.ready();
        const ids = files.ids();
        if (!text && !ids.length) return;
        it = await api('POST', `/api/v1/conversations/${id}/replies`, { text, ...quote.body(), ...(ids.length ? { attachment_ids: ids } : {}) }, { 'Idempotency-Key': S.draftKey });
        files.clear();
      }
      S.draftKey = null;
      ta.value = '';
      tools.reset();
      quote.reset();
      if (S.openId === id) {
        mergeItem(it);
        renderItems(true);
        refreshThread(false).catch(() => {});
      }
    } catch (ex) {
      err.textContent = t('sendFailed', { msg: ex.message });
    } finally {
      send.disabled = false;
    }
  });
  return form;
}

// ---------- client card ----------

function toggleCard() {
  S.cardOpen = !el.shell.classList.contains('card-open');
  el.shell.classList.toggle('card-open', S.cardOpen);
  if (S.cardOpen) loadCard();
}

// The card is shown beside the thread on a desktop-wide screen, else as the drawer. It
// follows the shown client live: another agent's edit shows within a second.
let cardTimer = null;
function clientEvent(ev) {
  const id = S.conv?.client?.id;
  if (!id) return;
  // Merged into another client: the conversation is the kept client's now.
  if (ev.event === 'client.merged' && ev.data?.merged_id === id) S.conv.client.id = ev.client_id;
  else if (ev.client_id !== id) return;
  if (!S.cardOpen && !window.matchMedia('(min-width: 1200px)').matches) return;
  clearTimeout(cardTimer); // a burst (an import, a merge) is one reload
  cardTimer = setTimeout(() => loadCard(true), 150);
}

function loadCard(quiet = false) {
  if (!S.conv?.client?.id) return;
  renderClientCard(el.card, S.conv.client.id, {
    quiet,
    onOpenConversation: openConversation,
    onChanged: () => { reloadList(); },
    onClose: () => { if (el.shell.classList.contains('card-open')) toggleCard(); },
  });
}

// ---------- keyboard ----------

document.addEventListener('keydown', (e) => {
  if (!S.user || e.ctrlKey || e.metaKey || e.altKey) return;
  const tag = e.target.tagName;
  if (tag === 'INPUT' || tag === 'TEXTAREA' || tag === 'SELECT') {
    if (e.key === 'Escape') e.target.blur();
    return;
  }
  if (el.help?.open) return;
  if (!inboxView() && e.key !== '?') return;
  const move = (d) => {
    if (!S.convs.length) return;
    const i = S.convs.findIndex((c) => c.id === S.openId);
    const j = i < 0 ? 0 : Math.max(0, Math.min(S.convs.length - 1, i + d));
    openConversation(S.convs[j].id);
    document.querySelector(`#convs li[data-id="${S.convs[j].id}"]`)?.scrollIntoView({ block: 'nearest' });
  };
  switch (e.key) {
    case 'j': move(1); break;
    case 'k': move(-1); break;
    case 'r': if (S.openId) { e.preventDefault(); el.setMode('reply'); } break;
    case 'n': if (S.openId) { e.preventDefault(); el.setMode('note'); } break;
    case 'e': toggleResolved(); break;
    case '/': e.preventDefault(); el.q.focus(); el.q.select(); break;
    case '?': showHelp(); break;
    case 'Escape':
      if (el.shell.classList.contains('card-open')) toggleCard();
      else if (S.openId && el.shell.dataset.pane === 'thread' && !window.matchMedia('(min-width: 760px)').matches) location.hash = '';
      break;
    default: return;
  }
});

// ---------- boot ----------

try {
  const me = await api('GET', '/api/v1/me');
  start(me.user);
} catch {
  renderLogin();
}
