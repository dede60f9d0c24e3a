// The reports page: the agent (ctx.page) opens it from the top bar; the charts are drawn with
// the numbers GET /api/v1/reports gives for the same range, and the client who wrote and got
// no answer is in the waiting list, which opens the conversation. Then an admin on a phone.
// ctx.page is left on the inbox, signed in.
import { assert } from '../lib.mjs';
import { ADMIN, PHONE, tgUpdate, hook, newPage, login, shot } from '../web.mjs';

const WAITING = { fromId: 523909901, first: 'Рита', last: 'Ждёт' };

// What the page asked the API for, asked again from the page (same cookie, zone, range).
async function apiReport(page) {
  return page.evaluate(async () => {
    const from = document.querySelector('#r-from').value, to = document.querySelector('#r-to').value;
    const tz = Intl.DateTimeFormat().resolvedOptions().timeZone;
    const r = await fetch(`/api/v1/reports?from=${from}&to=${to}&tz=${encodeURIComponent(tz)}`);
    return r.json();
  });
}

async function chartData(page, sel) {
  return page.evaluate((s) => {
    const c = window.Chart.getChart(document.querySelector(s));
    return c && { type: c.config.type, labels: c.data.labels, datasets: c.data.datasets.map((d) => ({ label: d.label, data: d.data })) };
  }, sel);
}

// The chart's unit is the end of its dataset labels; values have one decimal.
const DIV = { s: 1, min: 60, h: 3600 };
const inUnit = (sec, label) => (sec === null ? null : Math.round((sec / DIV[label.split(', ').pop()]) * 10) / 10);
const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);

async function loaded(page) {
  await page.waitForSelector('#reports-body[data-loaded="true"]');
}

export default [
  ['reports_charts_match_the_api_and_list_who_waits', async (ctx) => {
    const { page } = ctx;
    await hook(ctx, tgUpdate({ text: 'Отчёты: мне так никто и не ответил', ...WAITING }));
    const waitingId = await page.evaluate(async (q) => {
      const r = await fetch(`/api/v1/conversations?q=${encodeURIComponent(q)}`);
      return (await r.json()).items?.[0]?.id;
    }, `${WAITING.first} ${WAITING.last}`);
    assert(waitingId > 0, 'the webhook made a conversation');
    await page.click('#reports-link');
    await loaded(page);
    assert(await page.$('#chart-channels') && await page.$('#chart-agents'), 'both canvases are on the page');
    const doc = await apiReport(page);
    assert(doc.by_channel_day.days.length === 7, `a week by default (${doc.by_channel_day.days.length} days)`);
    assert(doc.totals.conversations >= 2, `the inbox suite's conversations are counted (${doc.totals.conversations})`);

    const ch = await chartData(page, '#chart-channels');
    assert(ch?.type === 'bar', 'the channel chart is a bar chart');
    assert(ch.labels.length === 7, `7 day labels, got ${ch.labels.length}`);
    assert(same(ch.datasets.map((d) => d.label), doc.by_channel_day.channels.map((c) => c.name)), `channel datasets ${JSON.stringify(ch.datasets)}`);
    assert(same(ch.datasets.map((d) => d.data), doc.by_channel_day.channels.map((c) => c.counts)), 'channel counts as the API gives them');
    assert(ch.datasets[0].data.reduce((a, b) => a + b, 0) === doc.by_channel_day.channels[0].total, 'counts add up to the total');

    // The inbox suite replied as the agent: there is at least that agent with a first response.
    const ag = await chartData(page, '#chart-agents');
    assert(doc.agents.some((a) => a.first_replied > 0), `someone answered: ${JSON.stringify(doc.agents)}`);
    assert(same(ag.labels, doc.agents.map((a) => a.name ?? 'Unassigned')), `agent labels ${JSON.stringify(ag.labels)}`);
    assert(ag.datasets.length === 2 && ag.datasets[0].label.startsWith('First response, median'), `agent datasets ${JSON.stringify(ag.datasets.map((d) => d.label))}`);
    assert(ag.datasets.every((d) => d.label.split(', ').pop() in DIV), 'the unit ends each label');
    assert(same(ag.datasets[0].data, doc.agents.map((a) => inUnit(a.first_response_median_s, ag.datasets[0].label))), 'first-response medians');
    assert(same(ag.datasets[1].data, doc.agents.map((a) => inUnit(a.resolution_median_s, ag.datasets[1].label))), 'resolution medians');
    const rows = await page.$$eval('#report-agents-table tbody tr', (trs) => trs.length);
    assert(rows === doc.agents.length, `one table row per agent (${rows})`);
    assert((await page.textContent('#t-conversations .stat-value')).trim() === String(doc.totals.conversations), 'total shown');

    // Who waits: the list is the API's, oldest first, and holds the client who just wrote.
    const ids = await page.$$eval('#report-unanswered li[data-id]', (lis) => lis.map((li) => Number(li.dataset.id)));
    assert(same(ids, doc.unanswered.oldest.map((w) => w.id)), `waiting list ${ids} vs ${doc.unanswered.oldest.map((w) => w.id)}`);
    assert(ids.includes(waitingId), `conversation ${waitingId} is waiting`);
    assert((await page.textContent('#t-unanswered .stat-value')).trim() === String(doc.unanswered.count), 'waiting count shown');
    await shot(page, 'reports-desktop');

    // The last-30-days preset asks again.
    await page.click('#r-last30');
    await loaded(page);
    const ch30 = await chartData(page, '#chart-channels');
    assert(ch30.labels.length === 30, `30 day labels, got ${ch30.labels.length}`);

    // A click opens the conversation in the inbox.
    await page.click(`#report-unanswered li[data-id="${waitingId}"] a`);
    await page.waitForFunction((id) => location.hash === `#/c/${id}`, waitingId);
    await page.waitForSelector('.item.dir-in:has-text("мне так никто и не ответил")');
    assert(await page.$('.shell[data-view="inbox"]'), 'back in the inbox view');
  }],

  ['reports_on_a_phone_for_an_admin', async (ctx) => {
    const page = await newPage(ctx, { viewport: PHONE, mobile: true });
    await login(page, ADMIN);
    // On a phone the top bar's links are behind a menu button (topmenu.js): open the page by its address.
    await page.goto('/#/reports');
    await loaded(page);
    const ch = await chartData(page, '#chart-channels');
    assert(ch && ch.datasets.length >= 1, 'the channel chart is drawn on a phone');
    const box = await page.$eval('#chart-channels', (c) => c.getBoundingClientRect().width);
    assert(box > 200 && box <= 390, `the chart fits the screen (${box} px)`);
    const overflow = await page.evaluate(() => Math.max(document.documentElement.scrollWidth - window.innerWidth,
      ...[...document.querySelectorAll('#admin, #reports, #report-totals, .report-range')].map((e) => e.scrollWidth - e.clientWidth)));
    assert(overflow <= 1, `no sideways scrolling (${overflow} px too wide)`);
    const right = await page.$eval('#r-to', (e) => e.getBoundingClientRect().right);
    assert(right <= 390, `the date fields fit (${right} px)`);
    await shot(page, 'reports-phone');
    await page.evaluate(() => document.querySelector('#report-unanswered').scrollIntoView());
    await shot(page, 'reports-phone-waiting');
    await page.context().close();
  }],
];
