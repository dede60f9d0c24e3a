// Admin pages: an admin edits a channel's name and token (the secret stays write-only), runs
// Test connection against the mock Telegram (getMe with the new token), disables and enables
// the channel, and disables a user who is signed out at once. Then the agent's list (ctx.page)
// shows a conversation's last message after a reload. ctx.page is left on the inbox, signed in.
import { assert } from '../lib.mjs';
import { ADMIN, tgUpdate, hook, newPage, login, shot, convRow } from '../web.mjs';

const OLD_TOKEN = '777001:OLD-TOKEN';
const NEW_TOKEN = '777001:NEW-TOKEN';
const HOOK_SECRET = 'e2e_admin_secret_0123456789';
const VICTIM = { email: 'gone@example.com', name: 'Gone Agent', password: 'correct horse 9' };

// The shared mock answers sendMessage only: teach it getMe, which knows the new token only.
function teachGetMe(ctx) {
  if (ctx.mock.getMeTaught) return;
  ctx.mock.getMeTaught = true;
  const srv = ctx.mock.server;
  const before = srv.listeners('request');
  srv.removeAllListeners('request');
  srv.on('request', (req, res) => {
    if (!/\/getMe$/.test(req.url)) {
      for (const f of before) f.call(srv, req, res);
      return;
    }
    ctx.mock.requests.push({ method: req.method, url: req.url, body: '', json: null });
    const ok = req.url.includes(`/bot${NEW_TOKEN}/`);
    res.writeHead(ok ? 200 : 401, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify(ok ? { ok: true, result: { id: 777001, is_bot: true, username: 'admin_e2e_bot' } }
      : { ok: false, error_code: 401, description: 'Unauthorized' }));
  });
}

const call = (page, method, url, body) => page.evaluate(async ([m, u, b]) => {
  const r = await fetch(u, { method: m, headers: { 'Content-Type': 'application/json' }, body: b ? JSON.stringify(b) : undefined });
  return { status: r.status, json: await r.json().catch(() => null) };
}, [method, url, body]);

async function openAdmin(page) {
  await page.goto('/#/admin');
  await page.waitForSelector('#admin-channels table');
  await page.waitForSelector('#admin-users table');
}

export default [
  ['admin_edits_a_channel_and_tests_its_connection', async (ctx) => {
    teachGetMe(ctx);
    const page = await newPage(ctx);
    await login(page, ADMIN);
    const made = await call(page, 'POST', '/api/v1/channels', {
      kind: 'telegram', name: 'Second bot',
      config: { token: OLD_TOKEN, secret_token: HOOK_SECRET, api_base: `http://127.0.0.1:${ctx.mock.port}` },
    });
    assert(made.status === 201, `channel created (${made.status})`);
    const id = made.json.id;
    ctx.adminChannelId = id;
    await openAdmin(page);
    const row = `#admin-channels tr[data-channel="${id}"]`;
    await page.click(`${row} details summary`);
    const tokenInput = `${row} input[name="cfg.token"]`;
    assert(await page.inputValue(tokenInput) === '', 'a secret is never put into the form');
    assert(await page.getAttribute(tokenInput, 'placeholder') === 'unchanged', 'a secret field says it is unchanged');
    await page.fill(`${row} input[name="name"]`, 'Renamed bot');
    await page.fill(tokenInput, NEW_TOKEN);
    await shot(page, 'admin-channel-edit');
    await page.click(`${row} .ch-save`);
    await page.waitForFunction((s) => document.querySelector(s)?.textContent.includes('Renamed bot'), `${row} .ch-name`);

    const list = await call(page, 'GET', '/api/v1/channels');
    const ch = list.json.items.find((c) => c.id === id);
    assert(ch.name === 'Renamed bot', 'the name is stored');
    assert(ch.config.token === '********' && ch.config.secret_token === '********', 'secrets are masked in the API');
    assert(!JSON.stringify(list.json).includes('NEW-TOKEN'), 'the new token is never returned');

    // The secret_token was left empty in the form: the stored one still verifies webhooks.
    const r = await fetch(`${ctx.srv.url}/hooks/telegram/${id}`, {
      method: 'POST', headers: { 'Content-Type': 'application/json', 'X-Telegram-Bot-Api-Secret-Token': HOOK_SECRET },
      body: JSON.stringify(tgUpdate({ text: 'Второй бот: здравствуйте', fromId: 523907701, first: 'Олег', last: 'Второй' })),
    });
    assert(r.status === 200, `the kept secret_token still verifies (${r.status})`);

    await page.click(`${row} .ch-test`);
    await page.waitForFunction((s) => document.querySelector(s)?.textContent.includes('admin_e2e_bot'), `${row} .ch-result`);
    assert(ctx.mock.requests.some((q) => q.url === `/bot${NEW_TOKEN}/getMe`), 'getMe went out with the new token');
    await shot(page, 'admin-channel-tested');

    // Disable: its webhooks answer 404; enable again.
    await page.click(`${row} .ch-toggle`);
    await page.waitForSelector(`${row}.muted`);
    const off = await fetch(`${ctx.srv.url}/hooks/telegram/${id}`, {
      method: 'POST', headers: { 'Content-Type': 'application/json', 'X-Telegram-Bot-Api-Secret-Token': HOOK_SECRET },
      body: JSON.stringify(tgUpdate({ text: 'пока выключен', fromId: 523907701, first: 'Олег', last: 'Второй' })),
    });
    assert(off.status === 404, `a disabled channel's webhook answers 404 (${off.status})`);
    await page.click(`${row} .ch-toggle`);
    await page.waitForSelector(`${row}:not(.muted)`);
    await page.context().close();
  }],

  ['admin_disables_a_user_who_is_signed_out_at_once', async (ctx) => {
    const page = await newPage(ctx);
    await login(page, ADMIN);
    const made = await call(page, 'POST', '/api/v1/users', { ...VICTIM, role: 'agent' });
    assert(made.status === 201, `user created (${made.status})`);
    const victim = await newPage(ctx, { expectErrors: true });
    await login(victim, VICTIM);
    assert((await call(victim, 'GET', '/api/v1/me')).status === 200, 'the user is signed in');

    await openAdmin(page);
    const row = `#admin-users tr[data-user="${made.json.id}"]`;
    await page.click(`${row} .u-toggle`);
    await page.waitForSelector(`${row}.muted`);
    await shot(page, 'admin-user-disabled');
    assert((await call(victim, 'GET', '/api/v1/me')).status === 401, 'the disabled user is signed out at once');
    await victim.reload();
    await victim.waitForSelector('#login input[name=email]');

    // The last admin cannot disable themselves: the page says why.
    const me = (await call(page, 'GET', '/api/v1/me')).json;
    const meId = me.id ?? me.user?.id;
    const admins = (await call(page, 'GET', '/api/v1/users')).json.users.filter((u) => u.role === 'admin' && !u.disabled);
    if (admins.length === 1) {
      await page.click(`#admin-users tr[data-user="${meId}"] .u-toggle`);
      await page.waitForFunction((s) => document.querySelector(s)?.textContent.includes('last'), `#admin-users tr[data-user="${meId}"] .error`);
      assert((await call(page, 'GET', '/api/v1/me')).status === 200, 'the last admin is still signed in');
    }
    await victim.context().close();
    await page.context().close();
  }],

  ['list_row_shows_the_last_message_after_a_reload', async (ctx) => {
    const { page } = ctx;
    const text = 'Последнее сообщение видно в списке после перезагрузки';
    await hook(ctx, tgUpdate({ text, fromId: 523907702, first: 'Лиза', last: 'Списокова' }));
    const id = await page.evaluate(async (q) => {
      const r = await fetch(`/api/v1/conversations?q=${encodeURIComponent(q)}`);
      return (await r.json()).items?.[0]?.id;
    }, 'Лиза Списокова');
    assert(id > 0, 'the webhook made a conversation');
    await page.reload();
    await page.waitForSelector('body[data-live="up"]');
    await page.waitForSelector(convRow(id));
    const preview = await page.textContent(`${convRow(id)} .preview`);
    assert(preview.includes(text), `the row shows the last message after a reload: "${preview}"`);
    await shot(page, 'admin-list-last-message');
  }],
];
