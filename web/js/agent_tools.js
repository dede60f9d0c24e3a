// Agents' tools in the inbox: the composer's pickers (canned responses after "/", colleagues
// after "@" in a note), the notification bell in the top bar, and the language saved on the
// server. main.js calls attachComposerTools(), bellButton(), onNotificationEvent() and
// saveLocale(); everything else stays in here.
import { h, fmtTime } from './dom.js';
import { api } from './api.js';
import { t, addStrings, getLanguage } from './i18n.js';

addStrings({
  en: {
    cannedNone: 'No saved reply matches “{q}”.', mentionNone: 'Nobody matches “{q}”.',
    cannotSee: 'cannot see this conversation', notifications: 'Notifications',
    notifEmpty: 'Nothing new.', markAllRead: 'Mark all read', mentionedYou: '{name} mentioned you',
    assignedYou: '{name} assigned you a conversation', newMessage: 'New message',
    notifyAbout: 'Notify me about', notifyAssigned: 'assignments', notifyMessage: 'new messages in mine',
    pickerHint: '↑↓ to choose, Enter to insert, Esc to close',
  },
  ru: {
    cannedNone: 'Нет шаблона по запросу «{q}».', mentionNone: 'Никого по запросу «{q}».',
    cannotSee: 'не видит этот диалог', notifications: 'Уведомления',
    notifEmpty: 'Ничего нового.', markAllRead: 'Прочитать все', mentionedYou: '{name} упомянул(а) вас',
    assignedYou: '{name} назначил(а) вам диалог', newMessage: 'Новое сообщение',
    notifyAbout: 'Уведомлять о', notifyAssigned: 'назначениях', notifyMessage: 'новых сообщениях в моих',
    pickerHint: '↑↓ — выбрать, Enter — вставить, Esc — закрыть',
  },
});

// ---------- composer pickers ----------

// The word being typed at the caret that opens a picker: "/code" anywhere a word starts,
// or "@name" (which may hold one space: "@Vera Ad") in a note. null when there is none.
function trigger(ta, noteMode) {
  const caret = ta.selectionStart;
  if (caret !== ta.selectionEnd) return null;
  const before = ta.value.slice(0, caret);
  const slash = /(^|\s)\/([^\s/]{0,64})$/.exec(before);
  if (slash) return { kind: 'canned', start: caret - slash[2].length - 1, q: slash[2] };
  if (!noteMode) return null;
  const at = /(^|\s)@([^\s@]{0,40}(?: [^\s@]{0,40})?)$/.exec(before);
  if (at) return { kind: 'mention', start: caret - at[2].length - 1, q: at[2] };
  return null;
}

// The composer's "/" and "@" pickers. Returns { mentions(text), reset() }: the ids of the
// colleagues picked whose "@Name" is still in the text, for the note's "mentions" field.
export function attachComposerTools(ta, form, { mode, convId }) {
  const list = h('ul', { class: 'picker', id: 'picker', role: 'listbox', hidden: true });
  const box = h('div', { class: 'picker-box' }, list);
  form.insertBefore(box, ta);
  let picked = new Map(); // id -> name
  let agents = { conv: null, items: [] };
  let state = null; // { kind, start, q, items, sel }
  let gen = 0;

  function close() {
    state = null;
    list.hidden = true;
    list.replaceChildren();
    ta.removeAttribute('aria-activedescendant');
  }

  function draw() {
    if (!state) return;
    const { items, sel, kind, q } = state;
    list.hidden = false;
    if (!items.length) {
      list.replaceChildren(h('li', { class: 'muted small empty' }, t(kind === 'canned' ? 'cannedNone' : 'mentionNone', { q })));
      return;
    }
    list.replaceChildren(...items.map((it, i) => {
      const off = kind === 'mention' && it.can_see === false;
      return h('li', {
        role: 'option', id: `pick-${i}`, class: `${i === sel ? 'sel' : ''}${off ? ' off' : ''}`,
        'aria-selected': String(i === sel), 'aria-disabled': off ? 'true' : null,
        dataset: kind === 'canned' ? { code: it.short_code } : { user: it.id },
        onmousedown: (e) => { e.preventDefault(); state.sel = i; choose(); },
      },
      kind === 'canned'
        ? [h('b', {}, `/${it.short_code}`), ' ', h('span', {}, it.title), h('div', { class: 'muted small clip' }, it.body)]
        : [h('b', {}, it.name), ' ', h('span', { class: 'muted small' }, off ? `— ${t('cannotSee')}` : it.role)]);
    }), h('li', { class: 'muted small hint' }, t('pickerHint')));
    ta.setAttribute('aria-activedescendant', `pick-${sel}`);
    list.querySelector('li.sel')?.scrollIntoView({ block: 'nearest' });
  }

  async function update() {
    const tr = trigger(ta, mode() === 'note');
    if (!tr) { close(); return; }
    const my = ++gen;
    let items;
    try {
      if (tr.kind === 'canned') {
        items = (await api('GET', `/api/v1/canned?q=${encodeURIComponent(tr.q)}&limit=20`)).items;
      } else {
        const id = convId();
        if (agents.conv !== id) agents = { conv: id, items: (await api('GET', `/api/v1/agents?conversation=${id}`)).items };
        const q = tr.q.toLowerCase();
        items = agents.items.filter((a) => a.name.toLowerCase().includes(q)).slice(0, 20);
      }
    } catch {
      items = [];
    }
    if (my !== gen) return; // a newer keystroke has asked since
    const sel = Math.max(0, items.findIndex((a) => a.can_see !== false));
    state = { ...tr, items, sel };
    draw();
  }

  // Replace the trigger word with `text`, caret after it.
  function replace(text) {
    const end = ta.selectionStart;
    ta.setRangeText(text, state.start, end, 'end');
    ta.dispatchEvent(new Event('input', { bubbles: true }));
  }

  async function choose() {
    const s = state;
    const it = s?.items[s.sel];
    if (!it) return;
    if (s.kind === 'mention') {
      if (it.can_see === false) return;
      picked.set(it.id, it.name);
      replace(`@${it.name} `);
      close();
      return;
    }
    close();
    try {
      const r = await api('POST', `/api/v1/conversations/${convId()}/canned/${it.id}/render`);
      state = s; // replace() needs the word's start
      replace(r.text);
      close();
    } catch (e) {
      state = null;
      form.querySelector('#composer-error').textContent = e.message;
    }
    ta.focus();
  }

  ta.addEventListener('input', update);
  ta.addEventListener('click', update);
  ta.addEventListener('blur', () => setTimeout(() => { if (document.activeElement !== ta) close(); }, 150));
  ta.addEventListener('keydown', (e) => {
    if (!state || list.hidden) return;
    const n = state.items.length;
    const step = (d) => {
      for (let k = 1; k <= n; k++) {
        const i = (state.sel + d * k + n * k) % n;
        if (state.items[i].can_see !== false) { state.sel = i; break; }
      }
      draw();
    };
    if (e.key === 'ArrowDown' && n) step(1);
    else if (e.key === 'ArrowUp' && n) step(-1);
    else if ((e.key === 'Enter' || e.key === 'Tab') && !e.ctrlKey && !e.metaKey && n) choose();
    else if (e.key === 'Escape') close();
    else return;
    e.preventDefault();
    e.stopPropagation(); // Esc closes the picker, not the text box
  });

  return {
    mentions(text) {
      return [...picked].filter(([, name]) => text.includes(`@${name}`)).map(([id]) => id);
    },
    reset() { picked = new Map(); close(); },
  };
}

// ---------- notifications ----------

const N = { user: null, prefs: null, items: [], unread: 0, loaded: false, buttons: new Set(), open: null, panel: null, outside: null };

function notifTitle(n) {
  if (n.kind === 'assigned') return t('assignedYou', { name: n.actor?.name || '?' });
  if (n.kind === 'message') return t('newMessage');
  return t('mentionedYou', { name: n.actor?.name || '?' });
}

// The conversation this tab shows now, if the agent can see it.
function viewing() {
  const m = /^#\/c\/(\d+)/.exec(location.hash);
  return m && document.visibilityState === 'visible' ? Number(m[1]) : 0;
}

// The two kinds a user may turn off (PATCH /api/v1/me {"notify": …}); mentions always come.
function prefsBox() {
  if (!N.prefs) return null;
  const box = (kind, label) => h('label', { class: 'small' },
    h('input', {
      type: 'checkbox', id: `notify-${kind}`, checked: N.prefs[kind] !== false,
      onchange: (e) => {
        const v = e.target.checked;
        api('PATCH', '/api/v1/me', { notify: { [kind]: v } })
          .then((r) => { N.prefs = r.user.notify; })
          .catch(() => { e.target.checked = !v; });
      },
    }), ' ', t(label));
  return h('div', { class: 'notif-prefs muted small' }, t('notifyAbout'), ': ',
    box('assigned', 'notifyAssigned'), ' ', box('message', 'notifyMessage'));
}

function drawBell() {
  for (const b of N.buttons) {
    if (!b.isConnected) { N.buttons.delete(b); continue; }
    const c = b.querySelector('.count');
    c.textContent = N.unread > 99 ? '99+' : String(N.unread);
    c.hidden = N.unread === 0;
    b.title = t('notifications');
    b.setAttribute('aria-label', `${t('notifications')}: ${N.unread}`);
  }
  if (N.panel?.isConnected && !N.panel.hidden) drawPanel();
}

async function loadNotifications() {
  try {
    const d = await api('GET', '/api/v1/notifications?limit=30');
    N.items = d.items;
    N.unread = d.unread_count;
    N.loaded = true;
  } catch { /* signed out or offline: the next event or reload tries again */ }
  drawBell();
}

function drawPanel() {
  const lang = getLanguage();
  N.panel.replaceChildren(
    h('div', { class: 'notif-head' }, h('b', {}, t('notifications')),
      N.unread ? h('button', { type: 'button', class: 'link small', id: 'notif-read-all', onclick: readAll }, t('markAllRead')) : null),
    N.items.length ? h('ul', { class: 'notif-list' }, N.items.map((n) => h('li', {
      class: `notif${n.read_at ? '' : ' notif-unread'}`, dataset: { id: n.id, conversation: n.conversation_id ?? '' },
      tabindex: 0, role: 'button',
      onclick: () => openNotification(n), onkeydown: (e) => { if (e.key === 'Enter') openNotification(n); },
    },
    h('div', { class: 'row' }, h('b', {}, notifTitle(n)),
      h('time', { class: 'muted small' }, fmtTime(n.created_at, lang))),
    n.client_name ? h('div', { class: 'muted small' }, n.client_name) : null,
    h('div', { class: 'small clip' }, n.preview || '')))) : h('p', { class: 'muted small pad' }, t('notifEmpty')),
    prefsBox());
}

async function openNotification(n) {
  N.panel.hidden = true;
  if (n.conversation_id) N.open?.(n.conversation_id);
  if (!n.read_at) {
    n.read_at = new Date().toISOString();
    N.unread = Math.max(0, N.unread - 1);
    drawBell();
    try { N.unread = (await api('POST', `/api/v1/notifications/${n.id}/read`)).unread_count; } catch { /* the list reloads on the next event */ }
    drawBell();
  }
}

async function readAll() {
  try {
    const r = await api('POST', '/api/v1/notifications/read-all');
    for (const n of N.items) n.read_at ||= new Date().toISOString();
    N.unread = r.unread_count;
  } catch { /* stays as it was */ }
  drawBell();
}

// A bell drawn in SVG: the emoji needs a colour font that a server's browser may lack.
function bellIcon() {
  const NS = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(NS, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('width', '18');
  svg.setAttribute('height', '18');
  svg.setAttribute('aria-hidden', 'true');
  const path = document.createElementNS(NS, 'path');
  path.setAttribute('fill', 'currentColor');
  path.setAttribute('d', 'M12 22a2.5 2.5 0 0 0 2.45-2h-4.9A2.5 2.5 0 0 0 12 22zm7-6V11a7 7 0 0 0-5.5-6.84V3.5a1.5 1.5 0 0 0-3 0v.66A7 7 0 0 0 5 11v5l-2 2v1h18v-1z');
  svg.append(path);
  return svg;
}

// The bell for the top bar of `user`; `open(conversationId)` shows a conversation.
export function bellButton(user, open) {
  if (N.user !== user.id) Object.assign(N, { user: user.id, prefs: user.notify || null, items: [], unread: 0, loaded: false });
  N.open = open;
  const b = h('button', { type: 'button', class: 'link bell', id: 'bell', 'aria-haspopup': 'true' },
    bellIcon(), h('span', { class: 'count', id: 'bell-count', hidden: true }, '0'));
  N.panel = h('div', { class: 'notif-panel', id: 'notif-panel', hidden: true });
  b.addEventListener('click', (e) => {
    e.stopPropagation();
    N.panel.hidden = !N.panel.hidden;
    if (!N.panel.hidden) drawPanel();
  });
  N.panel.addEventListener('click', (e) => e.stopPropagation());
  if (!N.outside) { // once per page: a click elsewhere closes the list
    N.outside = () => { if (N.panel) N.panel.hidden = true; };
    document.addEventListener('click', N.outside);
  }
  N.buttons.add(b);
  if (N.loaded) queueMicrotask(drawBell);
  else loadNotifications();
  return h('span', { class: 'bell-wrap' }, b, N.panel);
}

// After a resync (older events pruned) the list is read again.
export function refreshNotifications() {
  if (N.user) loadNotifications();
}

// notification.* events from the WebSocket (only the user's own reach this page).
export function onNotificationEvent(ev) {
  if (ev.event === 'notification.created' && ev.data?.id) {
    const d = ev.data;
    // A new message in the conversation on screen is news to nobody: read at once.
    if (d.kind === 'message' && d.conversation_id === viewing()) {
      api('POST', `/api/v1/notifications/${d.id}/read`).catch(() => {});
      return;
    }
    const now = new Date().toISOString().replace('T', ' ').replace('Z', '');
    const old = N.items.find((n) => n.id === d.id);
    if (old) { // a 'message' one refreshed by the next message: moves up, counted once
      Object.assign(old, { interaction_id: d.interaction_id, preview: d.preview, created_at: now });
      N.items = [old, ...N.items.filter((n) => n !== old)];
      if (old.read_at) { old.read_at = null; N.unread += 1; }
    } else {
      N.items.unshift({
        id: d.id, kind: d.kind, conversation_id: d.conversation_id, interaction_id: d.interaction_id,
        actor: d.actor, preview: d.preview, client_name: d.client_name || null, created_at: now, read_at: null,
      });
      N.unread += 1;
    }
    drawBell();
    // The event names no client for mentions: read the list again for that (and the server's count).
    clearTimeout(N.reload);
    N.reload = setTimeout(loadNotifications, 300);
  } else if (ev.event === 'notification.read') {
    loadNotifications(); // read in another tab: take the server's word for the count
  }
}

// Opening a conversation reads its 'message' notification on the server (main.js PATCHes
// unread 0); the bell follows.
window.addEventListener('hashchange', () => {
  const id = viewing();
  if (!id || !N.items.some((n) => n.kind === 'message' && n.conversation_id === id && !n.read_at)) return;
  clearTimeout(N.reload);
  N.reload = setTimeout(loadNotifications, 500);
});

// ---------- language ----------

// The RU/EN toggle: remembered in this browser and in the user's account, so a new
// browser opens in the same language. A failure leaves the local choice in place.
export function saveLocale(user, lang) {
  if (!user) return;
  user.locale = lang;
  api('PATCH', '/api/v1/me', { locale: lang }).catch(() => {});
}
