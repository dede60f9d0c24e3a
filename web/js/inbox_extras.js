// The inbox's counts per filter (numbers on the status tabs and assignee choices, and the
// unread total) and teams: the list's team filter, the team select in the thread header and
// the admin section for teams and their members. main.js calls in here from a few places.
import { h } from './dom.js';
import { api, qs } from './api.js';
import { t, addStrings } from './i18n.js';

addStrings({
  en: {
    allTeams: 'All teams', noTeam: '— no team', team: 'Team', teams: 'Teams and members',
    addTeam: 'Add a team', teamName: 'Team name', members: 'Members', addMember: 'Add member',
    removeMember: 'Remove {name} from the team', deleteTeam: 'Delete', renameTeam: 'Rename',
    confirmDeleteTeam: 'Delete the team "{name}"? Its conversations keep their assignee.',
    noTeams: 'No teams yet.', unreadCount: '{n} unread', countCapped: 'at least {n}',
  },
  ru: {
    allTeams: 'Все команды', noTeam: '— без команды', team: 'Команда', teams: 'Команды и участники',
    addTeam: 'Новая команда', teamName: 'Название команды', members: 'Участники', addMember: 'Добавить',
    removeMember: 'Убрать {name} из команды', deleteTeam: 'Удалить', renameTeam: 'Переименовать',
    confirmDeleteTeam: 'Удалить команду «{name}»? Назначенные агенты у разговоров останутся.',
    noTeams: 'Команд пока нет.', unreadCount: 'непрочитанных: {n}', countCapped: 'не меньше {n}',
  },
});

// ---------- counts ----------

// A recount follows every change the page hears of, at most one request in flight and
// one per COUNTS_DEBOUNCE ms: the server's counts are the truth (visibility, teams,
// search), so nothing is adjusted locally.
const COUNTS_DEBOUNCE = 250;
let countsTimer = null;
let countsGen = 0;

export function scheduleCounts(S, delay = COUNTS_DEBOUNCE) {
  clearTimeout(countsTimer);
  countsTimer = setTimeout(() => refreshCounts(S), delay);
}

export async function refreshCounts(S) {
  const gen = ++countsGen;
  const f = S.filters;
  let c;
  try {
    c = await api('GET', `/api/v1/conversations/counts${qs({
      status: f.status,
      assignee: f.assignee === 'me' || f.assignee === 'unassigned' ? f.assignee : '',
      channel_id: f.channel, team_id: f.team, q: f.q,
    })}`);
  } catch { return; } // the list shows the error; the numbers keep their last value
  if (gen !== countsGen) return;
  S.counts = c;
  renderCounts(S);
}

// Counts stop at c.cap (the server counts no further): shown as "1000+".
function fmtCount(n, cap) {
  return cap && n >= cap ? `${cap}+` : String(n);
}

export function renderCounts(S) {
  const c = S.counts;
  if (!c) return;
  const statuses = Object.values(c.status);
  for (const b of document.querySelectorAll('#status-tabs button')) {
    const s = b.dataset.status;
    const n = s ? c.status[s] : statuses.reduce((a, x) => a + x, 0);
    const capped = c.cap && (s ? n >= c.cap : statuses.some((x) => x >= c.cap));
    let span = b.querySelector('.count');
    if (!span) span = b.appendChild(h('span', { class: 'count' }));
    span.textContent = capped ? `${s ? c.cap : n}+` : String(n);
    span.title = capped ? t('countCapped', { n: s ? c.cap : n }) : '';
    span.dataset.n = String(n);
  }
  const names = { all: 'all', me: 'mine', unassigned: 'unassigned' };
  for (const o of document.querySelectorAll('#f-assignee option')) {
    if (!(o.value in names)) continue;
    o.dataset.label ||= o.textContent;
    const n = c.assignee[names[o.value]];
    o.textContent = `${o.dataset.label} (${fmtCount(n, c.cap)})`;
    o.dataset.n = String(n);
  }
  const u = document.getElementById('unread-count');
  if (u) {
    u.textContent = c.unread ? t('unreadCount', { n: fmtCount(c.unread, c.cap) }) : '';
    u.dataset.n = String(c.unread);
  }
}

// ---------- teams ----------

export async function loadTeams(S) {
  try {
    S.teams = (await api('GET', '/api/v1/teams')).items;
  } catch {
    S.teams = [];
  }
  fillTeamFilter(S);
}

let teamFilterEl = null;

// The list's team filter; `onChange` reloads the list.
export function teamFilter(S, onChange) {
  teamFilterEl = h('select', {
    id: 'f-team', 'aria-label': t('allTeams'),
    onchange: (e) => { S.filters.team = e.target.value; onChange(); },
  });
  fillTeamFilter(S);
  return teamFilterEl;
}

function fillTeamFilter(S) {
  if (!teamFilterEl) return;
  const teams = S.teams || [];
  teamFilterEl.replaceChildren(h('option', { value: '' }, t('allTeams')),
    ...teams.map((tm) => h('option', { value: tm.id }, tm.name)));
  teamFilterEl.value = S.filters.team || '';
  teamFilterEl.hidden = !teams.length && !S.filters.team;
}

// The team select beside the assignee in the thread header.
export function teamSelect(S, conv, patch) {
  const sel = h('select', {
    id: 'team', 'aria-label': t('team'),
    onchange: (e) => patch({ team_id: e.target.value ? Number(e.target.value) : null }),
  }, h('option', { value: '' }, t('noTeam')),
  (S.teams || []).map((tm) => h('option', { value: tm.id }, tm.name)));
  if (conv.team_id && ![...sel.options].some((o) => o.value === String(conv.team_id))) {
    sel.append(h('option', { value: conv.team_id }, `#${conv.team_id}`));
  }
  sel.value = conv.team_id ? String(conv.team_id) : '';
  return sel;
}

// ---------- admin: teams and members ----------

export async function teamsSection() {
  const sec = h('section', { class: 'admin-section', id: 'admin-teams' }, h('h2', {}, t('teams')));
  let teams = [];
  let users = [];
  try {
    [teams, users] = await Promise.all([
      api('GET', '/api/v1/teams').then((d) => d.items),
      api('GET', '/api/v1/users').then((d) => d.users.filter((u) => !u.disabled)),
    ]);
  } catch (e) {
    sec.append(h('p', { class: 'error' }, e.message));
    return sec;
  }
  const err = h('p', { class: 'error small', role: 'alert' });
  const redraw = async () => sec.replaceWith(await teamsSection());
  const act = async (fn) => {
    try { await fn(); await redraw(); } catch (e) { err.textContent = e.message; }
  };
  if (!teams.length) sec.append(h('p', { class: 'muted' }, t('noTeams')));
  else {
    sec.append(h('table', { class: 'grid teams' },
      h('thead', {}, h('tr', {}, h('th', {}, t('name')), h('th', {}, t('members')), h('th', {}, ''))),
      h('tbody', {}, teams.map((tm) => {
        const pick = h('select', { 'aria-label': t('addMember') },
          users.filter((u) => !tm.members.some((m) => m.id === u.id)).map((u) => h('option', { value: u.id }, u.name)));
        return h('tr', { dataset: { team: tm.id } },
          h('td', { class: 'team-name' }, tm.name),
          h('td', {},
            h('ul', { class: 'members' }, tm.members.map((m) => h('li', { dataset: { user: m.id } }, m.name, ' ',
              h('button', {
                type: 'button', class: 'link small', title: t('removeMember', { name: m.name }),
                onclick: () => act(() => api('DELETE', `/api/v1/teams/${tm.id}/members/${m.id}`)),
              }, '×')))),
            pick.options.length ? h('span', { class: 'add-member' }, pick, ' ', h('button', {
              type: 'button', class: 'small',
              onclick: () => act(() => api('PUT', `/api/v1/teams/${tm.id}/members/${pick.value}`)),
            }, t('addMember'))) : null),
          h('td', {},
            h('button', {
              type: 'button', class: 'link small',
              onclick: () => {
                const name = prompt(t('teamName'), tm.name);
                if (name && name.trim() !== tm.name) act(() => api('PATCH', `/api/v1/teams/${tm.id}`, { name }));
              },
            }, t('renameTeam')), ' ',
            h('button', {
              type: 'button', class: 'link small danger',
              onclick: () => { if (confirm(t('confirmDeleteTeam', { name: tm.name }))) act(() => api('DELETE', `/api/v1/teams/${tm.id}`)); },
            }, t('deleteTeam'))));
      }))));
  }
  const form = h('form', { class: 'admin-form', id: 'team-add' },
    h('h3', {}, t('addTeam')),
    h('label', {}, t('teamName'), h('input', { name: 'name', required: true, maxlength: 100 })),
    h('button', { type: 'submit' }, t('add')));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    act(() => api('POST', '/api/v1/teams', { name: new FormData(form).get('name') }));
  });
  sec.append(form, err);
  return sec;
}
