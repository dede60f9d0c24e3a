// The agent's day: sign-in, live webhooks, replies, search, merge, e-mail HTML, layouts,
// reconnect after a restart, admin pages.
import { cli, sleep, assert } from '../lib.mjs';
import {
  SECRET, AGENT, ADMIN, PHONE, TABLET, tgUpdate, hook, newPage, login, shot, convRow, cookie,
} from '../web.mjs';

export default [
  ['russian_by_default_when_the_browser_asks', async (ctx) => {
    const page = await newPage(ctx, { locale: 'ru-RU' });
    await page.goto('/');
    const label = await page.textContent('#login button[type=submit]');
    assert(label === 'Войти', `sign-in button reads ${label}`);
    assert(await page.getAttribute('html', 'lang') === 'ru', 'html lang is ru');
    await shot(page, 'login-ru-desktop');
    await page.context().close();
  }],

  ['login_shows_name_and_role', async (ctx) => {
    const page = await newPage(ctx);
    ctx.page = page;
    await page.goto('/');
    await page.fill('#login input[name=email]', AGENT.email);
    await page.fill('#login input[name=password]', 'wrong password');
    await page.click('#login button[type=submit]');
    await page.waitForFunction(() => document.querySelector('#login-error')?.textContent.includes('wrong'));
    await shot(page, 'login-desktop');
    await login(page, AGENT);
    assert((await page.textContent('#who')).includes(AGENT.name), 'name shown');
    assert((await page.textContent('#role')) === 'agent', 'role shown');
    assert((await page.textContent('#convs')).trim() === '', 'empty inbox at first');
  }],

  ['webhook_appears_live_within_a_second', async (ctx) => {
    const { page } = ctx;
    const t0 = Date.now();
    if (process.env.SB_E2E_DEBUG) console.log(`    ${Date.now() % 100000} posting`);
    const r = await hook(ctx, tgUpdate({ text: 'Здравствуйте! Хочу заказать кухонный гарнитур, перезвоните мне: 8 (916) 000-11-22' }));
    const row = await page.waitForSelector('#convs li.conv:has-text("Анна Смирнова")', { timeout: 5000 });
    const ms = Date.now() - t0;
    console.log(`    webhook → list row in ${ms} ms`);
    assert(ms < 1000, `the row took ${ms} ms`);
    ctx.convId = Number(await row.getAttribute('data-id'));
    ctx.firstInteraction = r.interactions[0];
    assert((await row.textContent()).includes('Хочу заказать'), 'preview from the live event');
    assert(await row.$('.unread') !== null, 'unread badge');
    assert((await row.textContent()).includes('✈'), 'telegram icon');
    // A second message moves the counter without a reload.
    await hook(ctx, tgUpdate({ text: 'Алло?' }));
    await page.waitForFunction((sel) => document.querySelector(sel)?.querySelector('.unread')?.textContent === '2', convRow(ctx.convId), { timeout: 3000 });
  }],

  ['reply_reaches_the_mock_provider', async (ctx) => {
    const { page } = ctx;
    await page.click(convRow(ctx.convId));
    await page.waitForSelector('.item.dir-in:has-text("Хочу заказать")');
    // Opening marks it read.
    await page.waitForFunction((sel) => !document.querySelector(sel)?.querySelector('.unread'), convRow(ctx.convId), { timeout: 3000 });
    const text = `Добрый день! Перезвоним до 18:00 (${Date.now()})`;
    await page.fill('#composer-text', text);
    await page.click('#send');
    const req = await ctx.mock.waitFor((q) => q.url.endsWith('/sendMessage') && q.json?.text === text);
    assert(req, 'the mock got sendMessage');
    assert(req.url === '/bot123456:TESTTOKEN/sendMessage', `url ${req.url}`);
    assert(String(req.json.chat_id) === '523901177', `chat_id ${req.json.chat_id}`);
    // The tick moves to "sent" live (interaction.updated).
    await page.waitForSelector(`.item.dir-out:has-text("${text}") .ticks[data-status="sent"]`, { timeout: 10000 });
    await sleep(300);
    assert(ctx.mock.requests.filter((q) => q.json?.text === text).length === 1, 'sent exactly once');
    // A note stays inside.
    await page.keyboard.press('Escape');
    await page.click('body');
    await page.keyboard.press('n');
    await page.keyboard.type('Перезвонить после обеда');
    await page.keyboard.press('Control+Enter');
    await page.waitForSelector('.item.dir-note:has-text("Перезвонить после обеда")');
    await sleep(200);
    assert(!ctx.mock.requests.some((q) => q.json?.text === 'Перезвонить после обеда'), 'a note is never sent');
    await shot(page, 'thread-desktop');
  }],

  ['resolve_and_reopen', async (ctx) => {
    const { page } = ctx;
    await page.click('#resolve');
    await page.waitForFunction(() => document.querySelector('#conv-status')?.textContent === 'Resolved');
    // The list shows open conversations, so it leaves the list.
    await page.waitForSelector(convRow(ctx.convId), { state: 'detached', timeout: 3000 });
    await page.click('#reopen');
    await page.waitForFunction(() => document.querySelector('#conv-status')?.textContent === 'Open');
    await page.waitForSelector(convRow(ctx.convId), { timeout: 3000 });
    // And by keyboard.
    await page.click('.thread-head .title');
    await page.keyboard.press('e');
    await page.waitForFunction(() => document.querySelector('#conv-status')?.textContent === 'Resolved');
    await page.keyboard.press('e');
    await page.waitForFunction(() => document.querySelector('#conv-status')?.textContent === 'Open');
    // Snooze for an hour: it leaves the open list; reopen brings it back.
    await page.selectOption('#snooze', 'h1');
    await page.waitForFunction(() => document.querySelector('#conv-status')?.textContent === 'Snoozed');
    await page.waitForSelector(convRow(ctx.convId), { state: 'detached', timeout: 3000 });
    await page.click('#reopen');
    await page.waitForFunction(() => document.querySelector('#conv-status')?.textContent === 'Open');
    await page.waitForSelector(convRow(ctx.convId), { timeout: 3000 });
    const st = await fetch(`${ctx.srv.url}/api/v1/conversations/${ctx.convId}`, { headers: { Cookie: await cookie(page) } }).then((r) => r.json());
    assert(st.status === 'open', `stored status ${st.status}`);
  }],

  ['search_by_a_phone_in_another_format', async (ctx) => {
    const { page } = ctx;
    await hook(ctx, tgUpdate({ contact: '79160001122' }));
    // A second client who must not match.
    await hook(ctx, tgUpdate({ text: 'Добрый вечер', fromId: 777000111, first: 'Олег', last: 'Иванов' }));
    await page.waitForSelector('#convs li.conv:has-text("Олег Иванов")');
    for (const q of ['8 (916) 000-11-22', '+7 916 000 11 22', '89160001122']) {
      await page.click('body');
      await page.keyboard.press('/');
      await page.keyboard.press('Control+A');
      await page.keyboard.type(q);
      await page.waitForFunction(([id]) => {
        const rows = [...document.querySelectorAll('#convs li.conv')];
        return rows.length === 1 && rows[0].dataset.id === String(id);
      }, [ctx.convId], { timeout: 3000 }).catch(async (e) => {
        const rows = await page.$$eval('#convs li.conv', (l) => l.map((x) => `${x.dataset.id}:${x.textContent}`));
        throw new Error(`search ${q}: rows ${JSON.stringify(rows)} (want ${ctx.convId}); ${e.message}`);
      });
    }
    // (Digits that occur in a message would match the full-text search: none here.)
    await page.fill('#q', '+7 903 555 12 34');
    await page.waitForFunction(() => document.querySelectorAll('#convs li.conv').length === 0, null, { timeout: 3000 });
    await page.fill('#q', '');
    await page.waitForFunction(() => document.querySelectorAll('#convs li.conv').length === 2, null, { timeout: 3000 });
  }],

  ['email_html_cannot_run_script', async (ctx) => {
    const { page, mock, db } = ctx;
    const m = `http://127.0.0.1:${mock.port}`;
    const payload = '<p id="hello">Hello from HTML</p>'
      + `<script>parent.__pwned = 'script'; fetch('${m}/pwned-script')</script>`
      + `<img src="x" onerror="parent.__pwned='onerror'; fetch('${m}/pwned-onerror')">`
      + `<svg onload="fetch('${m}/pwned-svg')"></svg>`
      + `<a id="js" href="javascript:fetch('${m}/pwned-href')">click</a>`
      + `<img src="${m}/remote.png"><iframe src="${m}/pwned-iframe"></iframe>`
      + `<form action="${m}/pwned-form"><button>go</button></form>`;
    // Proof that the payload is live: in a plain page it calls the mock.
    const control = await newPage(ctx, { expectErrors: true });
    await control.setContent(payload);
    assert(await mock.waitFor((q) => q.url === '/pwned-onerror', 5000), 'control: the payload runs in a plain page');
    await control.context().close();
    const hits = () => mock.requests.filter((q) => /pwned|remote\.png/.test(q.url));
    const before = hits().length;
    const clientId = db.sql(`SELECT client_id FROM conversations WHERE id=${ctx.convId}`).trim();
    const esc = (s) => s.replace(/\\/g, '\\\\').replace(/'/g, "\\'");
    db.sql(`INSERT INTO interactions (conversation_id, client_id, channel_id, direction, kind, external_id, sender, subject, text, html, flags)
            VALUES (${ctx.convId}, ${clientId}, ${ctx.tgId}, 'in', 'email', 'e2e-mail-1', 'Mallory <m@evil.example>', 'Invoice 42',
                    'Hello from text', '${esc(payload)}', 'auto_reply')`);
    await page.reload();
    await page.waitForSelector('iframe.email-frame');
    const frame = page.frameLocator('iframe.email-frame');
    await frame.locator('#hello').waitFor({ timeout: 5000 });
    assert((await frame.locator('#hello').textContent()) === 'Hello from HTML', 'the HTML is shown');
    await frame.locator('#js').click({ timeout: 2000 }).catch(() => {});
    await sleep(1500);
    assert(await page.evaluate(() => window.__pwned) === undefined, 'no script reached the page');
    assert(hits().length === before, `the mock was called: ${JSON.stringify(hits().slice(before).map((q) => q.url))}`);
    assert(await page.getAttribute('iframe.email-frame', 'sandbox') === '', 'sandbox=""');
    const srcdoc = await page.getAttribute('iframe.email-frame', 'srcdoc');
    assert(!/<script|onerror|onload|javascript:/i.test(srcdoc), 'sanitised');
    assert(srcdoc.includes("default-src 'none'"), 'CSP meta in the frame');
    const card = await page.textContent('.card.email');
    assert(card.includes('Invoice 42') && card.includes('m@evil.example'), 'subject and sender');
    assert(await page.$('.card.email .badge.flag-auto_reply') !== null, 'auto-reply marked');
    await shot(page, 'email-desktop');
  }],

  ['another_agents_typing_shows', async (ctx) => {
    const other = await newPage(ctx);
    await login(other, ADMIN);
    await other.goto(`/#/c/${ctx.convId}`);
    await other.waitForSelector('#composer-text');
    await sleep(200);
    await other.fill('#composer-text', 'Минуточку');
    await other.type('#composer-text', '…');
    await ctx.page.waitForFunction((n) => document.querySelector('#typing')?.textContent.includes(n), ADMIN.name, { timeout: 3000 });
    await other.context().close();
  }],

  ['client_card_shows_identities_and_timeline', async (ctx) => {
    const { page } = ctx;
    await page.waitForSelector('#client-card .client-card');
    const card = await page.textContent('#client-card');
    assert(card.includes('+79160001122'), 'phone in international format');
    assert(card.includes('523901177'), 'telegram id');
    assert(await page.$$eval('#client-card .timeline li', (l) => l.length) >= 3, 'timeline');
    await page.click('#edit-tags');
    await page.fill('#tags-input', 'vip, кухня');
    await page.press('#tags-input', 'Enter');
    await page.waitForFunction(() => document.querySelector('#tags')?.textContent.includes('кухня'));
    const c = await fetch(`${ctx.srv.url}/api/v1/clients/${await page.getAttribute('#client-card .client-card', 'data-client-id')}`,
      { headers: { Cookie: await cookie(page) } }).then((r) => r.json());
    assert(JSON.stringify(c.tags.sort()) === JSON.stringify(['vip', 'кухня'].sort()), `stored tags ${JSON.stringify(c.tags)}`);
  }],

  ['merge_suggestion_accepted_from_the_card', async (ctx) => {
    const { page } = ctx;
    // Oleg shares his own contact card carrying Anna's phone: one inbound naming two
    // clients, so ingest records a merge suggestion.
    await hook(ctx, tgUpdate({ contact: '+7 916 000-11-22', fromId: 777000111, first: 'Олег', last: 'Иванов' }));
    await sleep(200);
    await page.click(convRow(ctx.convId));
    const li = await page.waitForSelector('#client-card .suggestions li');
    assert((await li.textContent()).includes('Олег'), 'the suggestion names the other client');
    await shot(page, 'merge-suggestion-desktop');
    // A locator, not the handle: the card redraws itself on client events (live card).
    await page.locator('#client-card .suggestions li button').first().click();
    await page.waitForFunction(() => document.querySelector('#client-card .identities')?.textContent.includes('777000111'));
    assert(await page.$('#client-card .suggestions li') === null, 'the suggestion is gone');
    const open = await fetch(`${ctx.srv.url}/api/v1/merge-suggestions`, { headers: { Cookie: await cookie(page) } }).then((r) => r.json());
    assert(open.items.length === 0, 'no open suggestions left');
  }],

  ['form_lead_and_call_shown_by_kind', async (ctx) => {
    const { page, db } = ctx;
    const form = JSON.parse(cli(ctx.env, ['channel', 'add', 'webform', '--name', 'Site']));
    const r = await fetch(`${ctx.srv.url}/forms/${form.public_key}`, {
      method: 'POST', headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: JSON.stringify({ name: 'Пётр Лидов', phone: '+7 (905) 111-22-33', email: 'petr@example.ru', message: 'Нужна кухня 3 м', city: 'Тверь', utm_source: 'yandex', utm_campaign: 'kitchens' }),
    });
    assert(r.status === 200, `form post answered ${r.status}`);
    const row = await page.waitForSelector('#convs li.conv:has-text("Пётр Лидов")', { timeout: 3000 });
    assert((await row.textContent()).includes('✎'), 'web form icon');
    await row.click();
    await page.waitForSelector('.card.form-lead');
    const lead = await page.textContent('.card.form-lead');
    for (const s of ['Тверь', 'Нужна кухня 3 м', 'utm_source', 'yandex', 'kitchens']) assert(lead.includes(s), `lead shows ${s}`);
    assert(await page.getAttribute('#composer', 'data-mode') === 'note', 'a web form is answered with notes');
    // A missed call, stored as the PBX adapter stores one.
    const conv = Number(await row.getAttribute('data-id'));
    const client = db.sql(`SELECT client_id FROM conversations WHERE id=${conv}`).trim();
    db.sql(`INSERT INTO interactions (conversation_id, client_id, channel_id, direction, kind, external_id, text, meta)
            VALUES (${conv}, ${client}, ${form.id}, 'in', 'call', 'call-1', 'Missed call',
                    '{"call":{"direction":"in","status":"missed","from":"+79051112233","to":"+74950000000","duration":0,"missed":true,"recording_url":"https://pbx.example/rec/1.mp3"}}')`);
    await page.reload();
    await page.waitForSelector('.card.call.missed');
    const call = await page.textContent('.card.call');
    assert(call.includes('Missed call') && call.includes('+79051112233') && call.includes('0:00'), `call card: ${call}`);
    assert(await page.getAttribute('.card.call a', 'href') === 'https://pbx.example/rec/1.mp3', 'recording link');
    await shot(page, 'form-and-call-desktop');
    await page.goto(`/#/c/${ctx.convId}`);
    await page.waitForSelector('.item.dir-in');
  }],

  ['reconnect_and_resume_after_restart', async (ctx) => {
    const { page, srv } = ctx;
    await page.evaluate(() => { window.__sameDocument = true; });
    const lastBefore = await page.evaluate(() => window.__sb.live.lastId);
    await srv.stop();
    await page.waitForSelector('body[data-live="down"]', { timeout: 5000 });
    await srv.start();
    // Posted at once, before the page has reconnected (its backoff is at least 0.25 s):
    // it reaches the page through the resume.
    await hook(ctx, tgUpdate({ text: 'Сообщение после перезапуска' }));
    await page.waitForSelector('.item.dir-in:has-text("Сообщение после перезапуска")', { timeout: 15000 });
    await page.waitForSelector('body[data-live="up"]');
    assert(await page.evaluate(() => window.__sameDocument) === true, 'no reload');
    assert(await page.evaluate(() => window.__sb.live.lastId) > lastBefore, 'event id moved on');
    // And live again afterwards.
    await hook(ctx, tgUpdate({ text: 'И ещё одно' }));
    await page.waitForSelector('.item.dir-in:has-text("И ещё одно")', { timeout: 3000 });
  }],

  ['keyboard_help_and_navigation', async (ctx) => {
    const { page } = ctx;
    await page.click('.thread-head .title');
    await page.keyboard.press('?');
    await page.waitForSelector('dialog#help[open]');
    assert((await page.textContent('dialog#help')).includes('Next conversation'), 'shortcuts listed');
    await page.keyboard.press('Escape');
    await page.waitForFunction(() => !document.querySelector('dialog#help').open);
    const before = await page.evaluate(() => window.__sb.openId);
    await page.keyboard.press('j');
    await page.waitForFunction((b) => window.__sb.openId !== b, before);
    await page.keyboard.press('k');
    await page.waitForFunction((b) => window.__sb.openId === b, before);
  }],

  ['infinite_scroll_and_filters', async (ctx) => {
    const { page, db } = ctx;
    db.sql(`INSERT INTO clients (name) SELECT CONCAT('Bulk ', seq) FROM seq_1_to_70;
            INSERT INTO conversations (client_id, channel_id, status, last_activity_at)
              SELECT id, ${ctx.tgId}, IF(id % 10 = 0, 'pending', 'open'), NOW(6) - INTERVAL id MINUTE
              FROM clients WHERE name LIKE 'Bulk %';`);
    await page.reload();
    await page.waitForFunction(() => document.querySelectorAll('#convs li.conv').length === 40);
    const count = () => page.$$eval('#convs li.conv', (l) => l.length);
    const want = Number(db.sql("SELECT COUNT(*) FROM conversations WHERE status = 'open'").trim());
    for (let i = 0; i < 10 && (await count()) < want; i++) {
      await page.$eval('#list-scroll', (e) => { e.scrollTop = e.scrollHeight; });
      await sleep(150);
    }
    assert((await count()) === want, `scrolled to ${await count()} of ${want} open conversations`);
    const ids = await page.$$eval('#convs li.conv', (l) => l.map((x) => x.dataset.id));
    assert(new Set(ids).size === ids.length, 'no conversation twice');
    // Pending tab: only the pending ones.
    await page.click('#status-tabs button[data-status="pending"]');
    await page.waitForFunction(() => [...document.querySelectorAll('#convs li.conv')].length === 7
      && [...document.querySelectorAll('#convs li.conv')].every((x) => x.dataset.status === 'pending'));
    // Channel filter: the web form channel has one conversation.
    await page.click('#status-tabs button[data-status=""]');
    await page.selectOption('#f-channel', { label: '✎ Site' }).catch(async () => {
      // Agents cannot list channels; the filter learns them from the conversations seen.
      const opts = await page.$$eval('#f-channel option', (o) => o.map((x) => x.textContent)) + ' / ' + await page.evaluate(() => JSON.stringify([...window.__sb.channels.values()]));
      throw new Error(`channel options: ${opts}`);
    });
    await page.waitForFunction(() => document.querySelectorAll('#convs li.conv').length === 1);
    await page.selectOption('#f-channel', '');
    await page.click('#status-tabs button[data-status="open"]');
    await page.waitForFunction(() => document.querySelectorAll('#convs li.conv').length === 40);
  }],

  ['phone_and_tablet_layouts', async (ctx) => {
    const phone = await newPage(ctx, { viewport: PHONE, mobile: true, locale: 'ru-RU' });
    await login(phone, AGENT);
    await phone.waitForSelector(convRow(ctx.convId));
    assert(!(await phone.isVisible('#thread')), 'phone: the list alone');
    await shot(phone, 'list-phone');
    await phone.click(convRow(ctx.convId));
    await phone.waitForSelector('.item.dir-in');
    assert(!(await phone.isVisible('.list-pane')), 'phone: the thread alone');
    await shot(phone, 'thread-phone');
    await phone.click('.thread-head .back');
    await phone.waitForSelector('.list-pane', { state: 'visible' });
    const tablet = await newPage(ctx, { viewport: TABLET, mobile: true });
    await login(tablet, AGENT);
    await tablet.goto(`/#/c/${ctx.convId}`);
    await tablet.waitForSelector('.item.dir-in');
    assert(await tablet.isVisible('.list-pane') && await tablet.isVisible('#thread'), 'tablet: list and thread');
    await shot(tablet, 'thread-tablet');
    await tablet.click('.card-toggle');
    await tablet.waitForSelector('#client-card .client-card');
    await shot(tablet, 'client-card-tablet');
    await tablet.click('#client-card .card-close');
    await tablet.waitForSelector('#client-card', { state: 'hidden' });
    await ctx.page.click(convRow(ctx.convId));
    await shot(ctx.page, 'inbox-desktop');
  }],

  ['admin_pages', async (ctx) => {
    const admin = await newPage(ctx);
    await login(admin, ADMIN);
    // Something unreadable for the quarantine list.
    const r = await fetch(`${ctx.srv.url}/hooks/telegram/${ctx.tgId}`, {
      method: 'POST', headers: { 'Content-Type': 'application/json', 'X-Telegram-Bot-Api-Secret-Token': SECRET },
      body: '{"update_id": "one", "message": [1, 2',
    });
    assert((await r.json()).quarantined === true, 'the webhook was quarantined');
    await admin.click('#admin-link');
    await admin.waitForSelector('#admin-channels table');
    assert((await admin.textContent('#admin-channels')).includes(`/hooks/telegram/${ctx.tgId}`), 'webhook URL shown');
    await admin.fill('#admin-channels form input[name=name]', 'Site form');
    await admin.selectOption('#admin-channels form select[name=kind]', 'webform');
    await admin.click('#admin-channels form button[type=submit]');
    await admin.waitForFunction(() => document.querySelector('#admin-channels')?.textContent.includes('/forms/'));
    await admin.fill('#admin-users form input[name=name]', 'Vera Agent');
    await admin.fill('#admin-users form input[name=email]', 'vera@example.com');
    await admin.fill('#admin-users form input[name=password]', 'long enough 1');
    await admin.click('#admin-users form button[type=submit]');
    await admin.waitForFunction(() => document.querySelector('#admin-users')?.textContent.includes('vera@example.com'));
    await admin.waitForSelector('#admin-quarantine table');
    await shot(admin, 'admin-desktop');
    await admin.click('#admin-quarantine button');
    await admin.waitForFunction(() => !document.querySelector('#admin-quarantine table'));
    // Agents get no admin link.
    assert(await ctx.page.$('#admin-link') === null, 'no admin link for agents');
    await admin.context().close();
  }],

];
