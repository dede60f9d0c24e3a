// Shared pieces of the e2e suites: accounts, Telegram updates, pages, sign-in, screenshots.
import fs from 'node:fs';
import path from 'node:path';
import { assert, SHOTS } from './lib.mjs';

export const CHROMIUM = process.env.SB_CHROMIUM || '/usr/bin/chromium';
export const SECRET = 'e2e_secret_token_0123456789';
export const AGENT = { email: 'ada@example.com', name: 'Ada Agent', password: 'correct horse 1' };
export const ADMIN = { email: 'boris@example.com', name: 'Boris Admin', password: 'correct horse 2' };
export const DESKTOP = { width: 1280, height: 800 };
export const PHONE = { width: 390, height: 844 };
export const TABLET = { width: 820, height: 1180 };

let updateId = 815300000;
export function tgUpdate({ text, contact, messageId, fromId = 523901177, first = 'Анна', last = 'Смирнова' }) {
  const from = { id: fromId, is_bot: false, first_name: first, last_name: last, username: 'anna_smirnova', language_code: 'ru' };
  updateId++;
  const message = {
    message_id: messageId ?? 1000 + (updateId % 100000), from,
    chat: { id: fromId, first_name: first, last_name: last, type: 'private' },
    date: Math.floor(Date.now() / 1000),
  };
  if (text) message.text = text;
  if (contact) message.contact = { phone_number: contact, first_name: first, last_name: last, user_id: fromId };
  return { update_id: updateId, message };
}

export async function hook(ctx, update) {
  const r = await fetch(`${ctx.srv.url}/hooks/telegram/${ctx.tgId}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'X-Telegram-Bot-Api-Secret-Token': SECRET },
    body: JSON.stringify(update),
  });
  const body = await r.json();
  assert(r.status === 200 && body.ok, `webhook answered ${r.status} ${JSON.stringify(body)}`);
  if (process.env.SB_E2E_DEBUG) console.log(`    ${Date.now() % 100000} hook answered ${JSON.stringify(body)}`);
  return body;
}

export async function newPage(ctx, { viewport = DESKTOP, locale = 'en-US', mobile = false, expectErrors = false } = {}) {
  const context = await ctx.browser.newContext({ viewport, locale, isMobile: mobile, hasTouch: mobile, baseURL: ctx.srv.url });
  ctx.contexts.push(context);
  context.setDefaultTimeout(8000);
  const page = await context.newPage();
  if (!expectErrors) page.on('pageerror', (e) => ctx.pageErrors.push(String(e)));
  if (process.env.SB_E2E_DEBUG) {
    page.on('console', (m) => console.log(`    console: ${m.text()}`));
    page.on('websocket', (ws) => ws.on('framereceived', (f) => console.log(`    ${Date.now() % 100000} ws <- ${f.payload.slice(0, 150)}`)));
  }
  return page;
}

export async function login(page, who) {
  await page.goto('/');
  await page.fill('#login input[name=email]', who.email);
  await page.fill('#login input[name=password]', who.password);
  await page.click('#login button[type=submit]');
  await page.waitForSelector('#who');
  await page.waitForSelector('body[data-live="up"]');
}

export async function shot(page, name) {
  fs.mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`) });
}

export const convRow = (id) => `#convs li[data-id="${id}"]`;


export async function cookie(page) {
  const c = (await page.context().cookies()).find((x) => x.name === 'sb_session');
  return c ? `sb_session=${c.value}` : '';
}

