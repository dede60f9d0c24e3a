// End-to-end tests of the web view: the real server on a scratch database, Debian's
// Chromium driven by playwright-core. Run by tests/e2e/run (from tests/run / make test).
//
// One server and one browser serve every test, in order. The tests live in suites/*.mjs (each
// exports an array of [name, fn(ctx)]), run in file-name order: 10-inbox.mjs signs the agent in
// and leaves ctx.page, ctx.convId and friends for the suites after it. The two tests below run
// last: they sign out and check that the server stops cleanly.
import fs from 'node:fs';
import { chromium } from 'playwright-core';
import { ScratchDb, Server, MockProvider, serverEnv, cli, freePort, assert, runTests } from './lib.mjs';
import { CHROMIUM, SECRET, AGENT, ADMIN, cookie } from './web.mjs';

const suiteDir = new URL('./suites/', import.meta.url);
const suites = fs.readdirSync(suiteDir).filter((f) => f.endsWith('.mjs')).sort();
const tests = [];
for (const f of suites) tests.push(...(await import(new URL(f, suiteDir))).default);
tests.push(
  ['sign_out', async (ctx) => {
    const { page } = ctx;
    await page.click('#logout');
    await page.waitForSelector('#login');
    const r = await fetch(`${ctx.srv.url}/api/v1/me`, { headers: { Cookie: await cookie(page) } });
    assert(r.status === 401, `after sign-out /me answers ${r.status}`);
    assert(ctx.pageErrors.length === 0, `page errors: ${ctx.pageErrors.join('; ')}`);
  }],

  ['server_stops_cleanly', async (ctx) => {
    // Under the sanitizer build (make test) a leak or UB report fails the stop.
    await ctx.srv.stop();
    assert(ctx.srv.exitCodes.every((c) => c === 0), `server exit statuses ${ctx.srv.exitCodes}`);
    const log = fs.readFileSync(ctx.srv.log, 'utf8');
    assert(!/Sanitizer|runtime error:/.test(log), `sanitizer report in ${ctx.srv.log}`);
  }],
);

async function setup() {
  if (!fs.existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} not found: run scripts/e2e-deps (apt-get install chromium)`);
  // cleanup: what suites started (an SMTP sink…), stopped in teardown even after a failure.
  const ctx = { contexts: [], pageErrors: [], cleanup: [] };
  ctx.db = new ScratchDb();
  ctx.db.create();
  const env = serverEnv(ctx.db);
  ctx.env = env;
  cli(env, ['migrate']);
  for (const [u, role] of [[AGENT, 'agent'], [ADMIN, 'admin']]) {
    cli(env, ['user', 'add', '--email', u.email, '--name', u.name, '--role', role, '--password-stdin'], `${u.password}\n`);
  }
  ctx.mock = new MockProvider();
  await ctx.mock.start();
  const ch = JSON.parse(cli(env, ['channel', 'add', 'telegram', '--name', 'Shop bot', '--set', 'token=123456:TESTTOKEN',
    '--set', `secret_token=${SECRET}`, '--set', `api_base=http://127.0.0.1:${ctx.mock.port}`]));
  ctx.tgId = ch.id;
  ctx.srv = new Server(env, await freePort());
  await ctx.srv.start();
  ctx.browser = await chromium.launch({
    executablePath: CHROMIUM,
    chromiumSandbox: false,
    args: ['--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  return ctx;
}

async function teardown(ctx) {
  if (!ctx) return;
  await ctx.browser?.close().catch(() => {});
  await ctx.srv?.stop().catch(() => {});
  for (const f of ctx.cleanup || []) await Promise.resolve().then(f).catch(() => {});
  await ctx.mock?.stop().catch(() => {});
  if (!process.env.SB_E2E_KEEP_DB) ctx.db?.drop();
}

const t0 = Date.now();
const rc = await runTests(tests, { setup, teardown });
console.log(`e2e: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
process.exit(rc);
