// Agents' tools: canned responses (admin page, "/" picker, rendered and sent), @mentions in a
// note making the mentioned admin's bell count move live (the name highlighted in the note), an
// assignment by the admin reaching the agent's bell, the language saved on the server, and the
// top bar on a phone for every role in both languages (links behind a menu button).
// Runs after 10-inbox.mjs: ctx.page is the agent (English), ctx.convId Анна's Telegram chat.
import { cli, sleep, assert } from '../lib.mjs';
import { AGENT, ADMIN, PHONE, newPage, login, shot, convRow, cookie } from '../web.mjs';

const BODY = 'Здравствуйте, {{client.first_name|коллега}}! Это {{agent.name}}, заявка №{{conversation.id}}. Спасибо за обращение.';

async function me(ctx, page) {
  const r = await fetch(`${ctx.srv.url}/api/v1/me`, { headers: { Cookie: await cookie(page) } });
  return (await r.json()).user;
}

export default [
  ['admin_creates_a_canned_response', async (ctx) => {
    const admin = await newPage(ctx);
    ctx.adminPage = admin;
    await login(admin, ADMIN);
    await admin.click('#admin-link');
    await admin.waitForSelector('#admin-canned form');
    // A campaign-only merge field is refused with the server's message.
    await admin.fill('#admin-canned input[name=short_code]', 'bad');
    await admin.fill('#admin-canned input[name=title]', 'Bad');
    await admin.fill('#admin-canned textarea[name=body]', 'Hi {{unsubscribe_url}}');
    await admin.click('#admin-canned form button[type=submit]');
    await admin.waitForFunction(() => document.querySelector('#admin-canned .error')?.textContent.includes('unsubscribe_url'));
    await admin.fill('#admin-canned input[name=short_code]', 'thanks');
    await admin.fill('#admin-canned input[name=title]', 'Спасибо за обращение');
    await admin.fill('#admin-canned textarea[name=body]', BODY);
    await admin.click('#admin-canned form button[type=submit]');
    await admin.waitForSelector('#admin-canned tr[data-code="thanks"]');
    // Edit it in place (the title), through the same form.
    await admin.click('#admin-canned tr[data-code="thanks"] button');
    await admin.fill('#admin-canned input[name=title]', 'Благодарность');
    await admin.click('#admin-canned form button[type=submit]');
    await admin.waitForFunction(() => document.querySelector('#admin-canned tr[data-code="thanks"]')?.textContent.includes('Благодарность'));
    await admin.locator('#admin-canned').scrollIntoViewIfNeeded();
    await shot(admin, 'admin-canned-desktop');
    // Back to the inbox: the bell is watched in the mention test.
    await admin.goto('/#');
    await admin.waitForSelector('#bell');
  }],

  ['slash_picks_a_canned_response_and_it_is_sent', async (ctx) => {
    const { page } = ctx;
    await page.click(convRow(ctx.convId));
    await page.waitForSelector('.item.dir-in');
    const conv = await page.evaluate((id) => fetch(`/api/v1/conversations/${id}`).then((r) => r.json()), ctx.convId);
    const first = (conv.client.name || '').trim().split(/\s+/)[0] || 'коллега';
    await page.click('#composer .tabs button[data-mode="reply"]');
    await page.click('#composer-text');
    // Esc closes the picker and leaves the text box alone.
    await page.keyboard.type('/');
    await page.waitForSelector('#picker li[data-code="thanks"]');
    await page.keyboard.press('Escape');
    await page.waitForSelector('#picker', { state: 'hidden' });
    assert(await page.evaluate(() => document.activeElement?.id) === 'composer-text', 'Esc kept the focus in the composer');
    await page.fill('#composer-text', '');
    // Typing filters; arrows move; Enter inserts the text rendered for this client.
    await page.keyboard.type('/than');
    await page.waitForSelector('#picker li[data-code="thanks"]');
    assert(await page.$$eval('#picker li[data-code]', (l) => l.length) === 1, 'filtered to one');
    await shot(page, 'canned-picker-desktop');
    await page.keyboard.press('ArrowDown');
    await page.keyboard.press('Enter');
    const want = `Здравствуйте, ${first}! Это ${AGENT.name}, заявка №${ctx.convId}. Спасибо за обращение.`;
    await page.waitForFunction((w) => document.querySelector('#composer-text').value === w, want, { timeout: 5000 });
    await page.waitForSelector('#picker', { state: 'hidden' });
    await page.click('#send');
    const req = await ctx.mock.waitFor((q) => q.url.endsWith('/sendMessage') && q.json?.text === want);
    assert(req, `the mock got the rendered text: ${want}`);
    await page.waitForSelector(`.item.dir-out:has-text("Спасибо за обращение")`);
    await sleep(200);
    assert(ctx.mock.requests.filter((q) => q.json?.text === want).length === 1, 'sent exactly once');
  }],

  ['a_mention_moves_the_admins_bell_live', async (ctx) => {
    const { page } = ctx;
    const admin = ctx.adminPage;
    const count = async (p) => p.$eval('#bell-count', (e) => (e.hidden ? 0 : Number(e.textContent)));
    const before = await count(admin);
    await page.click('#composer .tabs button[data-mode="note"]');
    await page.click('#composer-text');
    await page.keyboard.type('@Bor');
    await page.waitForSelector('#picker li[data-user]:has-text("Boris Admin")');
    await shot(page, 'mention-picker-desktop');
    await page.keyboard.press('Enter');
    await page.keyboard.type('посмотрите, пожалуйста, этот заказ');
    assert(await page.inputValue('#composer-text') === '@Boris Admin посмотрите, пожалуйста, этот заказ', 'the name went in');
    const bell = admin.waitForFunction((n) => {
      const e = document.querySelector('#bell-count');
      return e && !e.hidden && Number(e.textContent) === n;
    }, before + 1, { timeout: 5000, polling: 'raf' });
    const t0 = Date.now();
    await page.keyboard.press('Control+Enter');
    await bell;
    const ms = Date.now() - t0;
    console.log(`    note sent → admin's bell moved in ${ms} ms`);
    assert(ms < 2000, `the bell took ${ms} ms`);
    await page.waitForSelector('.item.dir-note:has-text("посмотрите, пожалуйста")');
    assert(await count(page) === 0, 'the author is not notified');
    // The name is marked in the note, as text: the rest of the note stays plain.
    const mark = await page.waitForSelector('.item.dir-note:has-text("посмотрите, пожалуйста") .mention');
    assert(await mark.textContent() === '@Boris Admin', `marked ${await mark.textContent()}`);
    assert(await mark.evaluate((e) => e.closest('.plain').textContent) === '@Boris Admin посмотрите, пожалуйста, этот заказ', 'the text is whole');
    await shot(page, 'mention-in-note-desktop');
    await admin.click('#bell');
    await admin.waitForSelector('#notif-panel li.notif-unread');
    assert((await admin.textContent('#notif-panel li.notif-unread')).includes(AGENT.name), 'names who mentioned');
    await shot(admin, 'notifications-desktop');
    await admin.click('#notif-panel li.notif-unread');
    await admin.waitForFunction((id) => location.hash === `#/c/${id}`, ctx.convId);
    await admin.waitForSelector('.item.dir-note:has-text("посмотрите, пожалуйста")');
    await admin.waitForFunction((n) => {
      const e = document.querySelector('#bell-count');
      return e && (n === 0 ? e.hidden : Number(e.textContent) === n);
    }, before);
    // The page counts down at once; the server's count follows its POST …/read.
    await admin.waitForFunction(async (n) => (await fetch('/api/v1/notifications?unread=1').then((r) => r.json())).unread_count === n, before);
    // The note keeps who was mentioned.
    const items = await page.evaluate((id) => fetch(`/api/v1/conversations/${id}/interactions?limit=5`).then((r) => r.json()), ctx.convId);
    const note = items.items.find((i) => i.kind === 'note' && i.text.includes('посмотрите'));
    const boris = (await me(ctx, admin)).id;
    assert(JSON.stringify(note?.meta?.mentions) === JSON.stringify([boris]), `meta ${JSON.stringify(note?.meta)}`);
    await page.click('#composer .tabs button[data-mode="reply"]');
  }],

  ['language_saved_on_the_server_follows_the_user', async (ctx) => {
    const admin = ctx.adminPage;
    await admin.click('#lang');
    await admin.waitForFunction(() => document.documentElement.lang === 'ru');
    await admin.waitForFunction(async () => (await fetch('/api/v1/me').then((r) => r.json())).user.locale === 'ru');
    // A fresh browser (English-speaking) of the same user opens in Russian.
    const fresh = await newPage(ctx, { locale: 'en-US' });
    await fresh.goto('/');
    assert(await fresh.getAttribute('html', 'lang') === 'en', 'the sign-in page follows the browser');
    await login(fresh, ADMIN);
    await fresh.waitForFunction(() => document.documentElement.lang === 'ru');
    assert((await fresh.textContent('#logout')) === 'Выйти', 'Russian after sign-in');
    await shot(fresh, 'language-from-server-desktop');
    // The notification list fits a phone's screen.
    await fresh.setViewportSize(PHONE);
    await fresh.click('#bell');
    await fresh.waitForSelector('#notif-panel li.notif');
    const box = await fresh.locator('#notif-panel').boundingBox();
    assert(box.x >= 0 && box.x + box.width <= PHONE.width, `panel at ${box.x}+${box.width}`);
    await shot(fresh, 'notifications-phone');
    await fresh.click('#who');
    await fresh.waitForSelector('#notif-panel', { state: 'hidden' });
    // And back, from the fresh one (on a phone the link is behind the menu button).
    await fresh.click('#top-menu-btn');
    await fresh.click('#lang');
    await fresh.waitForFunction(() => document.documentElement.lang === 'en');
    await fresh.waitForFunction(async () => (await fetch('/api/v1/me').then((r) => r.json())).user.locale === 'en');
    await fresh.context().close();
    await admin.context().close();
    ctx.adminPage = null;
  }],

  ['an_assignment_by_the_admin_rings_the_agents_bell', async (ctx) => {
    const { page } = ctx;
    const count = async (p) => p.$eval('#bell-count', (e) => (e.hidden ? 0 : Number(e.textContent)));
    const before = await count(page);
    const agent = (await me(ctx, page)).id;
    const admin = await newPage(ctx);
    await login(admin, ADMIN);
    // Away from the conversation the agent has open: the bell is for what they do not see.
    await page.evaluate(() => { location.hash = ''; });
    const r = await admin.evaluate(async ([id, uid]) => {
      await fetch(`/api/v1/conversations/${id}`, { method: 'PATCH', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ assignee_id: null }) });
      const res = await fetch(`/api/v1/conversations/${id}`, { method: 'PATCH', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ assignee_id: uid }) });
      return res.status;
    }, [ctx.convId, agent]);
    assert(r === 200, `assign: ${r}`);
    await page.waitForFunction((n) => Number(document.querySelector('#bell-count')?.textContent) === n, before + 1, { timeout: 5000 });
    await page.click('#bell');
    const li = await page.waitForSelector('#notif-panel li.notif-unread');
    assert((await li.textContent()).includes(`${ADMIN.name} assigned you a conversation`), `says who: ${await li.textContent()}`);
    assert(await page.isVisible('#notify-assigned') && await page.isChecked('#notify-message'), 'the two choices are shown');
    await shot(page, 'notification-assigned-desktop');
    await page.click('#notif-panel li.notif-unread'); // the list may have been redrawn meanwhile
    await page.waitForFunction((id) => location.hash === `#/c/${id}`, ctx.convId);
    await page.waitForFunction((n) => Number(document.querySelector('#bell-count')?.textContent || 0) === n || (n === 0 && document.querySelector('#bell-count').hidden), before);
    await admin.context().close();
  }],

  ['top_bar_fits_a_phone_for_every_role', async (ctx) => {
    const MARKETER = { email: 'mira@example.com', name: 'Мирослава Маркетолог', password: 'correct horse 4' };
    cli(ctx.env, ['user', 'add', '--email', MARKETER.email, '--name', MARKETER.name, '--role', 'marketer', '--password-stdin'], `${MARKETER.password}\n`);
    const fits = (p) => p.evaluate(() => ({ sw: document.documentElement.scrollWidth, w: window.innerWidth }));
    for (const [role, who] of [['agent', AGENT], ['admin', ADMIN], ['marketer', MARKETER]]) {
      const phone = await newPage(ctx, { viewport: PHONE, mobile: true, locale: 'ru-RU' });
      await login(phone, who);
      const start = await phone.evaluate(() => document.documentElement.lang);
      const saved = (await me(ctx, phone)).locale; // put back at the end: later suites sign in as these users
      for (let round = 0; round < 2; round++) {
        const lang = await phone.evaluate(() => document.documentElement.lang);
        const f = await fits(phone);
        assert(f.sw <= f.w, `${role} ${lang}: the page is ${f.sw}px wide on a ${f.w}px screen`);
        assert(await phone.isVisible('#top-menu-btn') && !(await phone.isVisible('#logout')), `${role} ${lang}: links behind the menu`);
        await phone.click('#top-menu-btn');
        await phone.waitForSelector('#logout', { state: 'visible' });
        const box = await phone.locator('#top-menu').boundingBox();
        assert(box.x >= 0 && box.x + box.width <= PHONE.width, `${role} ${lang}: menu at ${box.x}+${box.width}`);
        const g = await fits(phone);
        assert(g.sw <= g.w, `${role} ${lang}: with the menu open ${g.sw}px on ${g.w}px`);
        if (lang === 'ru') await shot(phone, `topbar-${role}-phone-ru`);
        await phone.click('#lang'); // closes the menu and switches the language (saved: switched back below)
        await phone.waitForFunction((l) => document.documentElement.lang !== l, lang);
        await phone.waitForSelector('#logout', { state: 'hidden' });
      }
      assert(await phone.evaluate(() => document.documentElement.lang) === start, `${role}: language as it was`);
      await phone.waitForFunction(async (l) => (await fetch('/api/v1/me').then((r) => r.json())).user.locale === l, start);
      await phone.evaluate(async (l) => {
        await fetch('/api/v1/me', { method: 'PATCH', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ locale: l }) });
      }, saved ?? null);
      assert((await me(ctx, phone)).locale === (saved ?? null), `${role}: saved language as it was`);
      await phone.context().close();
    }
    // On a desktop the links sit in the bar, no menu button.
    assert(await ctx.page.isVisible('#logout') && !(await ctx.page.isVisible('#top-menu-btn')), 'desktop: links in the bar');
  }],
];
