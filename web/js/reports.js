// The reports page (#/reports, admins and agents): is every request answered? One call to
// GET /api/v1/reports for a range of days in the browser's time zone, drawn as totals, a
// stacked bar chart of new conversations per channel and day, a bar chart and a table of
// first-response and resolution medians per agent, and the clients waiting for an answer
// now (oldest first; a click opens the conversation). Agents see what the inbox shows them.
import { h, fmtTime, channelIcon } from './dom.js';
import { t, addStrings, getLanguage } from './i18n.js';
import { api, qs } from './api.js';
import { drawChart } from './charts.js';

addStrings({
  en: {
    reports: 'Reports', rFrom: 'From', rTo: 'To', rLast7: 'Last 7 days', rLast30: 'Last 30 days',
    rShow: 'Show', rByChannelDay: 'New conversations by channel and day',
    rAgents: 'Response and resolution times', rAgent: 'Agent', rNobody: 'Unassigned',
    rFirstReplied: 'First replies', rFrMedian: 'First response, median',
    rFrP90: 'First response, 90%', rResolved: 'Resolved', rResMedian: 'Resolution, median',
    rConversations: 'New conversations', rUnanswered: 'Waiting for an answer',
    rNoneWaiting: 'Nobody is waiting for an answer.', rWaiting: 'waiting {d}',
    rOldestShown: 'the {n} waiting longest', rNoData: 'No data in this range.',
    rTz: 'Days in time zone {tz}', rLoading: 'Loading…',
    uS: 's', uMin: 'min', uH: 'h', uD: 'd',
  },
  ru: {
    reports: 'Отчёты', rFrom: 'С', rTo: 'По', rLast7: '7 дней', rLast30: '30 дней',
    rShow: 'Показать', rByChannelDay: 'Новые обращения по каналам и дням',
    rAgents: 'Время ответа и решения', rAgent: 'Сотрудник', rNobody: 'Не назначено',
    rFirstReplied: 'Первых ответов', rFrMedian: 'Первый ответ, медиана',
    rFrP90: 'Первый ответ, 90%', rResolved: 'Решено', rResMedian: 'Решение, медиана',
    rConversations: 'Новых обращений', rUnanswered: 'Ждут ответа',
    rNoneWaiting: 'Ответа никто не ждёт.', rWaiting: 'ждёт {d}',
    rOldestShown: '{n} ждущих дольше всех', rNoData: 'За эти дни данных нет.',
    rTz: 'Дни по часовому поясу {tz}', rLoading: 'Загрузка…',
    uS: 'с', uMin: 'мин', uH: 'ч', uD: 'д',
  },
});

// Colours that stay apart in a stack (and on a grey-scale print).
const PALETTE = ['#2f6fde', '#e8833a', '#3aa76d', '#c8475b', '#8a5cd1', '#c9a227', '#2aa3b3', '#7a7a7a'];

const S = { from: '', to: '', preset: 7 };

// YYYY-MM-DD of a Date in the browser's own calendar.
function ymd(d) {
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
}

function presetRange(days) {
  const to = new Date();
  const from = new Date(to.getFullYear(), to.getMonth(), to.getDate() - (days - 1));
  return { from: ymd(from), to: ymd(to) };
}

// The browser's zone by name; the server reads it from its zone files. Where it does not
// know the name, the offset now (a range across a clock change is then an hour off).
function zoneName() {
  try { return Intl.DateTimeFormat().resolvedOptions().timeZone || offsetNow(); } catch { return offsetNow(); }
}
function offsetNow() {
  const m = -new Date().getTimezoneOffset(), a = Math.abs(m);
  return `${m < 0 ? '-' : '+'}${String(Math.floor(a / 60)).padStart(2, '0')}:${String(a % 60).padStart(2, '0')}`;
}

// 95 s → "1 min 35 s", 7260 s → "2 h 1 min", 200000 s → "2 d 7 h".
export function fmtSpan(sec) {
  if (sec === null || sec === undefined) return '—';
  sec = Math.max(0, Math.round(sec));
  const d = Math.floor(sec / 86400), hh = Math.floor((sec % 86400) / 3600), m = Math.floor((sec % 3600) / 60), s = sec % 60;
  if (d) return `${d} ${t('uD')} ${hh} ${t('uH')}`;
  if (hh) return `${hh} ${t('uH')} ${m} ${t('uMin')}`;
  if (m) return `${m} ${t('uMin')}${s ? ` ${s} ${t('uS')}` : ''}`;
  return `${s} ${t('uS')}`;
}

// The agents chart's unit: seconds, minutes or hours, whichever keeps the largest bar
// readable. Values have one decimal; the unit ends the dataset labels (", min"), from which
// the e2e suite converts the API's seconds the same way.
const UNITS = [['uS', 1], ['uMin', 60], ['uH', 3600]];
function chartUnit(secs) {
  const max = Math.max(0, ...secs.filter((s) => s !== null && s !== undefined));
  return max < 120 ? UNITS[0] : max < 3 * 3600 ? UNITS[1] : UNITS[2];
}
const inUnit = (sec, div) => (sec === null || sec === undefined ? null : Math.round((sec / div) * 10) / 10);

// The page's styles, linked once (app.css stays the inbox's).
function linkStyles() {
  if (document.getElementById('reports-css')) return;
  document.head.append(h('link', { rel: 'stylesheet', href: '/reports.css', id: 'reports-css' }));
}

export function renderReports(root) {
  linkStyles();
  if (!S.from) Object.assign(S, presetRange(S.preset));
  const from = h('input', { type: 'date', id: 'r-from', value: S.from, 'aria-label': t('rFrom') });
  const to = h('input', { type: 'date', id: 'r-to', value: S.to, 'aria-label': t('rTo') });
  const body = h('div', { id: 'reports-body' });
  const preset = (days) => h('button', {
    type: 'button', class: `chip${S.preset === days ? ' on' : ''}`, id: `r-last${days}`,
    onclick: () => { S.preset = days; Object.assign(S, presetRange(days)); renderReports(root); },
  }, t(days === 7 ? 'rLast7' : 'rLast30'));
  const form = h('form', {
    class: 'report-range',
    onsubmit: (e) => {
      e.preventDefault();
      if (!from.value || !to.value) return;
      Object.assign(S, { from: from.value, to: to.value, preset: 0 });
      renderReports(root);
    },
  }, preset(7), preset(30),
  h('label', {}, t('rFrom'), ' ', from), h('label', {}, t('rTo'), ' ', to),
  h('button', { type: 'submit', class: 'btn' }, t('rShow')));
  root.replaceChildren(h('div', { class: 'admin reports', id: 'reports' },
    h('h1', { class: 'report-title' }, t('reports')), form, body));
  load(body);
}

async function load(body) {
  body.replaceChildren(h('p', { class: 'muted' }, t('rLoading')));
  let doc;
  const params = { from: S.from, to: S.to, tz: zoneName() };
  try {
    doc = await api('GET', `/api/v1/reports${qs(params)}`);
  } catch (e) {
    // A zone name the server does not know: ask again with the offset.
    if (e.status === 400 && /zone/.test(e.message) && params.tz !== offsetNow()) {
      try { doc = await api('GET', `/api/v1/reports${qs({ ...params, tz: offsetNow() })}`); } catch (e2) { e = e2; }
    }
    if (!doc) { body.replaceChildren(h('p', { class: 'error', id: 'reports-error' }, e.message)); return; }
  }
  const chCanvas = h('canvas', { id: 'chart-channels', 'aria-label': t('rByChannelDay'), role: 'img' });
  const agCanvas = h('canvas', { id: 'chart-agents', 'aria-label': t('rAgents'), role: 'img' });
  body.replaceChildren(
    totals(doc),
    h('section', { class: 'admin-section', id: 'report-channels' }, h('h2', {}, t('rByChannelDay')),
      h('p', { class: 'muted small' }, t('rTz', { tz: doc.tz })),
      doc.by_channel_day.channels.length ? h('div', { class: 'chart-box' }, chCanvas) : h('p', { class: 'muted' }, t('rNoData'))),
    h('section', { class: 'admin-section', id: 'report-agents' }, h('h2', {}, t('rAgents')),
      doc.agents.length ? [h('div', { class: 'chart-box' }, agCanvas), agentsTable(doc.agents)] : h('p', { class: 'muted' }, t('rNoData'))),
    unanswered(doc.unanswered));
  const draws = [];
  if (doc.by_channel_day.channels.length) draws.push(drawChart(chCanvas, channelsConfig(doc)));
  if (doc.agents.length) draws.push(drawChart(agCanvas, agentsConfig(doc)));
  try {
    await Promise.all(draws);
  } catch (e) {
    body.prepend(h('p', { class: 'error' }, e.message));
  }
  body.dataset.loaded = 'true';
}

function totals(doc) {
  const x = doc.totals;
  const card = (id, label, value) => h('div', { class: 'stat', id }, h('div', { class: 'stat-value' }, value), h('div', { class: 'stat-label muted small' }, label));
  return h('div', { class: 'stats', id: 'report-totals' },
    card('t-conversations', t('rConversations'), String(x.conversations)),
    card('t-first', t('rFrMedian'), fmtSpan(x.first_response_median_s)),
    card('t-resolved', t('rResolved'), String(x.resolved)),
    card('t-resolution', t('rResMedian'), fmtSpan(x.resolution_median_s)),
    card('t-unanswered', t('rUnanswered'), String(x.unanswered)));
}

function channelsConfig(doc) {
  const lang = getLanguage();
  const labels = doc.by_channel_day.days.map((d) => new Date(`${d}T12:00:00Z`).toLocaleDateString(lang, { day: 'numeric', month: 'short', timeZone: 'UTC' }));
  return {
    type: 'bar',
    data: {
      labels,
      datasets: doc.by_channel_day.channels.map((c, i) => ({
        label: c.name, data: c.counts, backgroundColor: PALETTE[i % PALETTE.length], stack: 'all',
      })),
    },
    options: {
      responsive: true, maintainAspectRatio: false, animation: false,
      scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } } },
      plugins: { legend: { position: 'bottom' } },
    },
  };
}

const agentName = (a) => a.name ?? t('rNobody');

function agentsConfig(doc) {
  const [unit, div] = chartUnit(doc.agents.flatMap((a) => [a.first_response_median_s, a.resolution_median_s]));
  return {
    type: 'bar',
    data: {
      labels: doc.agents.map(agentName),
      datasets: [
        { label: `${t('rFrMedian')}, ${t(unit)}`, data: doc.agents.map((a) => inUnit(a.first_response_median_s, div)), backgroundColor: PALETTE[0] },
        { label: `${t('rResMedian')}, ${t(unit)}`, data: doc.agents.map((a) => inUnit(a.resolution_median_s, div)), backgroundColor: PALETTE[2] },
      ],
    },
    options: {
      responsive: true, maintainAspectRatio: false, animation: false,
      scales: { y: { beginAtZero: true } },
      plugins: { legend: { position: 'bottom' } },
    },
  };
}

function agentsTable(agents) {
  return h('table', { class: 'grid', id: 'report-agents-table' },
    h('thead', {}, h('tr', {}, [t('rAgent'), t('rFirstReplied'), t('rFrMedian'), t('rFrP90'), t('rResolved'), t('rResMedian')].map((c) => h('th', {}, c)))),
    h('tbody', {}, agents.map((a) => h('tr', { dataset: { agent: a.id ?? '' } },
      h('td', {}, agentName(a)), h('td', { class: 'num' }, a.first_replied),
      h('td', { class: 'num' }, fmtSpan(a.first_response_median_s)), h('td', { class: 'num' }, fmtSpan(a.first_response_p90_s)),
      h('td', { class: 'num' }, a.resolved), h('td', { class: 'num' }, fmtSpan(a.resolution_median_s))))));
}

function unanswered(u) {
  const lang = getLanguage();
  return h('section', { class: 'admin-section', id: 'report-unanswered' },
    h('h2', {}, `${t('rUnanswered')}: ${u.count}`),
    u.count ? [
      u.count > u.oldest.length ? h('p', { class: 'muted small' }, t('rOldestShown', { n: u.oldest.length })) : null,
      h('ul', { class: 'waiting' }, u.oldest.map((w) => h('li', { dataset: { id: w.id } },
        h('a', { href: `#/c/${w.id}` },
          h('span', { class: 'chan', title: w.channel.kind }, channelIcon(w.channel.kind)), ' ',
          h('b', {}, w.client.name || `#${w.client.id}`), ' ',
          h('span', { class: 'muted small' }, w.channel.name), ' ',
          h('span', { class: 'wait small' }, t('rWaiting', { d: fmtSpan(w.waiting_s) })), ' ',
          h('time', { class: 'muted small', datetime: w.waiting_since }, fmtTime(w.waiting_since, lang, true)))))),
    ] : h('p', { class: 'muted' }, t('rNoneWaiting')));
}
