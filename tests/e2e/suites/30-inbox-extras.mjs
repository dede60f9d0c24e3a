// Counts per filter on the inbox's tabs (and moving live), teams: an admin creates one and
// adds a member, an agent routes a conversation to it and filters the list by it.
// Uses its own pages; ctx.page (the agent of 10-inbox) is left as it was.
import { assert } from '../lib.mjs';
import { AGENT, ADMIN, tgUpdate, hook, newPage, login, shot, convRow } from '../web.mjs';

const countOf = (page, sel) => page.$eval(sel, (e) => Number(e.dataset.n)).catch(() => NaN);
const apiGet = (page, path) => page.evaluate(async (p) => (await fetch(p)).json(), path);

export default [
  ['counts_shown_and_moving_live', async (ctx) => {
    const page = await newPage(ctx);
    ctx.extrasPage = page;
    await login(page, AGENT);
    const openTab = '#status-tabs button[data-status="open"] .count';
    await page.waitForSelector(openTab);
    const api = await apiGet(page, '/api/v1/conversations/counts?status=open');
    const before = await countOf(page, openTab);
    assert(before === api.status.open, `open tab shows ${before}, the API says ${api.status.open}`);
    assert(before > 0, 'some open conversations from the earlier suites');
    const allOpt = await countOf(page, '#f-assignee option[value="all"]');
    assert(allOpt === api.assignee.all, `"everyone" shows ${allOpt}, the API says ${api.assignee.all}`);
    const unreadBefore = await countOf(page, '#unread-count');
    // A message from someone new opens a conversation: the numbers move without a reload.
    const t0 = Date.now();
    await hook(ctx, tgUpdate({ text: 'Есть ли доставка в Казань?', fromId: 700100200, first: 'Пётр', last: 'Казанский' }));
    await page.waitForFunction(([sel, n]) => Number(document.querySelector(sel)?.dataset.n) === n, [openTab, before + 1], { timeout: 5000 });
    console.log(`    webhook → open count ${before} → ${before + 1} in ${Date.now() - t0} ms`);
    await page.waitForFunction((n) => Number(document.querySelector('#unread-count')?.dataset.n) === n, unreadBefore + 1, { timeout: 3000 });
    const row = await page.waitForSelector('#convs li.conv:has-text("Пётр Казанский")');
    ctx.kazanConv = Number(await row.getAttribute('data-id'));
    await shot(page, 'inbox-counts-desktop');
    // Resolving it moves it from one tab's count to the other's.
    const resolvedTab = '#status-tabs button[data-status="resolved"] .count';
    const resolvedBefore = await countOf(page, resolvedTab);
    await page.click(convRow(ctx.kazanConv));
    await page.waitForSelector('#resolve');
    await page.click('#resolve');
    await page.waitForFunction(([a, na, b, nb]) => Number(document.querySelector(a)?.dataset.n) === na
      && Number(document.querySelector(b)?.dataset.n) === nb, [openTab, before, resolvedTab, resolvedBefore + 1], { timeout: 5000 });
    await page.click('#reopen');
    await page.waitForFunction(([sel, n]) => Number(document.querySelector(sel)?.dataset.n) === n, [openTab, before + 1], { timeout: 5000 });
  }],

  ['admin_creates_a_team_and_adds_a_member', async (ctx) => {
    const admin = await newPage(ctx);
    await login(admin, ADMIN);
    await admin.click('#admin-link');
    await admin.waitForSelector('#admin-teams #team-add');
    await admin.fill('#team-add input[name=name]', 'Поддержка');
    await admin.click('#team-add button[type=submit]');
    const row = await admin.waitForSelector('#admin-teams tr:has-text("Поддержка")');
    ctx.teamId = Number(await row.getAttribute('data-team'));
    assert(ctx.teamId > 0, 'the new team has an id');
    // The same name twice is refused with a message.
    await admin.fill('#team-add input[name=name]', 'Поддержка');
    await admin.click('#team-add button[type=submit]');
    await admin.waitForFunction(() => document.querySelector('#admin-teams [role=alert]')?.textContent.length > 0);
    const sel = `#admin-teams tr[data-team="${ctx.teamId}"]`;
    await admin.selectOption(`${sel} .add-member select`, { label: AGENT.name });
    await admin.click(`${sel} .add-member button`);
    await admin.waitForFunction((s) => document.querySelector(`${s} .members`)?.textContent.includes('Ada Agent'), sel);
    const teams = await apiGet(admin, '/api/v1/teams');
    const team = teams.items.find((x) => x.id === ctx.teamId);
    assert(team && team.members.some((m) => m.name === AGENT.name), `members: ${JSON.stringify(team)}`);
    await shot(admin, 'admin-teams-desktop');
    await admin.context().close();
  }],

  ['team_filter_and_team_in_the_thread_header', async (ctx) => {
    const page = ctx.extrasPage;
    await page.reload();
    await page.waitForSelector('body[data-live="up"]');
    await page.waitForSelector(`#f-team option[value="${ctx.teamId}"]`, { state: 'attached' });
    // Route the conversation to the team from the thread header.
    await page.click(convRow(ctx.kazanConv));
    await page.waitForSelector(`#team option[value="${ctx.teamId}"]`, { state: 'attached' });
    await page.selectOption('#team', String(ctx.teamId));
    await page.waitForFunction(([id, tm]) => window.__sb.conv?.id === id && window.__sb.conv.team_id === tm, [ctx.kazanConv, ctx.teamId]);
    const conv = await apiGet(page, `/api/v1/conversations/${ctx.kazanConv}`);
    assert(conv.team_id === ctx.teamId, `stored team_id ${conv.team_id}`);
    // The list filtered by the team shows only that conversation, and the counts follow.
    await page.selectOption('#f-team', String(ctx.teamId));
    await page.waitForFunction((id) => {
      const rows = [...document.querySelectorAll('#convs li.conv')];
      return rows.length === 1 && Number(rows[0].dataset.id) === id;
    }, ctx.kazanConv, { timeout: 5000 });
    await page.waitForFunction(() => Number(document.querySelector('#status-tabs button[data-status="open"] .count')?.dataset.n) === 1, null, { timeout: 5000 });
    await shot(page, 'inbox-team-filter-desktop');
    await page.selectOption('#f-team', '');
    await page.waitForFunction(() => document.querySelectorAll('#convs li.conv').length > 1, null, { timeout: 5000 });
    await page.context().close();
  }],
];
