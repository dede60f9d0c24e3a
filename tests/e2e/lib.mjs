// The e2e harness: a scratch database, the real switchboard binary serving the real web/,
// a mock Telegram Bot API, and a tiny cmocka-compatible test runner (tests/run sums the
// "[  PASSED  ] N" / "[  FAILED  ] N" lines).
import { spawn, execFileSync } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { fileURLToPath } from 'node:url';

export const ROOT = process.env.SB_ROOT || path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const BUILD = process.env.SB_BUILD || path.join(ROOT, 'build');
export const BIN = path.join(BUILD, 'switchboard');
export const LOGS = path.join(BUILD, 'tests', 'logs');
export const SHOTS = path.join(ROOT, 'tests', 'e2e', 'screenshots');

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---------- database ----------

function baseUrl() {
  if (process.env.SB_E2E_BASE_DB) return process.env.SB_E2E_BASE_DB;
  if (process.env.SWITCHBOARD_DB) return process.env.SWITCHBOARD_DB;
  const out = execFileSync(path.join(ROOT, 'scripts/localdb'), ['url'], { encoding: 'utf8' }).trim();
  if (!out) throw new Error('no SWITCHBOARD_DB and scripts/localdb url gave nothing');
  return out;
}

export class ScratchDb {
  constructor() {
    this.base = baseUrl();
    const u = new URL(this.base);
    this.conn = {
      user: decodeURIComponent(u.username), password: decodeURIComponent(u.password),
      host: u.hostname || 'localhost', port: u.port, socket: u.searchParams.get('socket'),
    };
    this.name = `switchboard_e2e_${process.pid}_${Date.now() % 100000}`;
    this.url = this.base.replace(/\/[^/?]*(\?|$)/, `/${this.name}$1`);
  }

  sql(statement, db = this.name) {
    const args = ['--no-defaults', '--batch', '--skip-column-names', `--user=${this.conn.user}`];
    if (this.conn.socket) args.push('--protocol=socket', `--socket=${this.conn.socket}`);
    else args.push('--protocol=tcp', `--host=${this.conn.host}`, `--port=${this.conn.port || 3306}`);
    if (db) args.push(db);
    return execFileSync('mariadb', args, {
      input: statement, encoding: 'utf8', env: { ...process.env, MYSQL_PWD: this.conn.password },
    });
  }

  create() {
    this.sql(`CREATE DATABASE ${this.name} CHARACTER SET utf8mb4`, null);
    this.created = true;
  }

  drop() {
    if (this.created) this.sql(`DROP DATABASE IF EXISTS ${this.name}`, null);
    this.created = false;
  }
}

// ---------- the switchboard binary ----------

export function serverEnv(db) {
  return {
    ...process.env,
    SWITCHBOARD_DB: db.url,
    SWITCHBOARD_WEB_ROOT: path.join(ROOT, 'web'),
    SWITCHBOARD_SCHEMA_DIR: path.join(ROOT, 'schema'),
    SWITCHBOARD_SECURITY_SECRET_KEY: process.env.SWITCHBOARD_SECURITY_SECRET_KEY || crypto.randomBytes(32).toString('base64'),
  };
}

export function cli(env, args, input) {
  return execFileSync(BIN, args, { env, input, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
}

export class Server {
  constructor(env, port) {
    this.env = env;
    this.port = port;
    this.url = `http://127.0.0.1:${port}`;
    this.proc = null;
    this.exitCodes = [];
    this.log = path.join(LOGS, `e2e-server-${port}.log`);
  }

  async start() {
    fs.mkdirSync(LOGS, { recursive: true });
    const log = fs.openSync(this.log, 'a');
    this.proc = spawn(BIN, ['serve', '--listen', `127.0.0.1:${this.port}`], { env: this.env, stdio: ['ignore', log, log] });
    fs.closeSync(log);
    let exited = false;
    this.proc.once('exit', () => { exited = true; });
    const until = Date.now() + 20000;
    while (Date.now() < until) {
      if (exited) throw new Error(`server exited at start-up; see ${LOGS}/e2e-server-${this.port}.log`);
      try {
        const r = await fetch(`${this.url}/healthz`);
        if (r.ok) return;
      } catch { /* not yet */ }
      await sleep(50);
    }
    throw new Error('server did not answer /healthz within 20 s');
  }

  async stop() {
    const p = this.proc;
    if (!p || p.exitCode !== null) return;
    const done = new Promise((r) => p.once('exit', (code, signal) => r(signal || code)));
    p.kill('SIGTERM');
    const t = setTimeout(() => p.kill('SIGKILL'), 10000);
    this.exitCodes.push(await done);
    clearTimeout(t);
    this.proc = null;
  }
}

// ---------- mock provider ----------

export class MockProvider {
  constructor() {
    this.requests = [];
    this.nextId = 9000;
  }

  start() {
    this.server = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c) => { body += c; });
      req.on('end', () => {
        let json = null;
        try { json = JSON.parse(body); } catch { /* not JSON */ }
        this.requests.push({ method: req.method, url: req.url, body, json });
        if (/\/sendMessage$/.test(req.url)) {
          res.writeHead(200, { 'Content-Type': 'application/json' });
          res.end(JSON.stringify({ ok: true, result: { message_id: this.nextId++, chat: { id: json?.chat_id }, date: 1, text: json?.text } }));
        } else {
          res.writeHead(404, { 'Content-Type': 'application/json' });
          res.end('{"ok":false,"error_code":404,"description":"Not Found"}');
        }
      });
    });
    return new Promise((r) => this.server.listen(0, '127.0.0.1', () => { this.port = this.server.address().port; r(); }));
  }

  stop() {
    this.server.closeAllConnections?.();
    return new Promise((r) => this.server.close(r));
  }

  async waitFor(pred, ms = 10000) {
    const until = Date.now() + ms;
    while (Date.now() < until) {
      const hit = this.requests.find(pred);
      if (hit) return hit;
      await sleep(25);
    }
    return null;
  }
}

// ---------- SMTP sink ----------

// Postfix's smtp-sink (unpacked by scripts/smtp-tools, as the C harness does), each message
// dumped to a file of its own in a scratch directory.
export class SmtpSink {
  async start() {
    const out = execFileSync(path.join(ROOT, 'scripts/smtp-tools'), { encoding: 'utf8' }).trim().split('\n');
    const bin = path.join(out[out.length - 1], 'smtp-sink');
    this.dir = fs.mkdtempSync('/tmp/sb-e2e-smtp-sink-');
    fs.chmodSync(this.dir, 0o777); // run as root, smtp-sink drops to nobody, who writes the dumps
    this.port = await freePort();
    const args = process.getuid?.() === 0 ? ['-u', 'nobody'] : [];
    args.push('-d', `${this.dir}/%Y%m%d%H%M%S.`, `127.0.0.1:${this.port}`, '64');
    fs.mkdirSync(LOGS, { recursive: true });
    const log = fs.openSync(path.join(LOGS, `e2e-smtp-sink-${this.port}.log`), 'a');
    this.proc = spawn(bin, args, { stdio: ['ignore', log, log] });
    fs.closeSync(log);
    let exited = false;
    this.proc.once('exit', () => { exited = true; });
    const until = Date.now() + 5000;
    while (Date.now() < until) {
      if (exited) throw new Error('smtp-sink exited at start-up');
      const up = await new Promise((r) => {
        const c = net.connect(this.port, '127.0.0.1', () => { c.destroy(); r(true); });
        c.once('error', () => r(false));
      });
      if (up) return;
      await sleep(50);
    }
    throw new Error('smtp-sink did not listen within 5 s');
  }

  // The messages received so far, oldest first, as text.
  messages() {
    return fs.readdirSync(this.dir).filter((f) => !f.startsWith('.')).sort()
      .map((f) => fs.readFileSync(path.join(this.dir, f), 'utf8'));
  }

  async waitFor(n, ms = 10000) {
    const until = Date.now() + ms;
    while (Date.now() < until && this.messages().length < n) await sleep(50);
    await sleep(100); // a dump is written while DATA arrives
    return this.messages();
  }

  async stop() {
    const p = this.proc;
    if (p && p.exitCode === null && p.signalCode === null) {
      const done = new Promise((r) => p.once('exit', r));
      p.kill('SIGTERM');
      await done;
    }
    this.proc = null;
    if (this.dir && !process.env.SB_E2E_KEEP_DB) fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

// ---------- runner ----------

export function assert(cond, msg) {
  if (!cond) throw new Error(`assertion failed: ${msg}`);
}

export async function runTests(tests, { setup, teardown }) {
  const failed = [];
  let passed = 0;
  console.log(`[==========] e2e: Running ${tests.length} test(s).`);
  let ctx;
  try {
    ctx = await setup();
  } catch (e) {
    console.log(`[  ERROR   ] e2e: setup failed: ${e.stack || e}`);
    console.log(`[  FAILED  ] ${tests.length} test(s), listed below:`);
    await teardown?.(ctx).catch(() => {});
    return 1;
  }
  for (const [name, fn] of tests) {
    console.log(`[ RUN      ] ${name}`);
    const t0 = Date.now();
    try {
      await fn(ctx);
      passed++;
      console.log(`[       OK ] ${name} (${Date.now() - t0} ms)`);
    } catch (e) {
      failed.push(name);
      console.log(String(e.stack || e).split('\n').slice(0, 6).join('\n'));
      console.log(`[  FAILED  ] ${name} (${Date.now() - t0} ms)`);
    }
  }
  try { await teardown(ctx); } catch (e) { console.log(`teardown: ${e}`); }
  console.log(`[==========] e2e: ${tests.length} test(s) run.`);
  console.log(`[  PASSED  ] ${passed} test(s).`);
  if (failed.length) {
    console.log(`[  FAILED  ] ${failed.length} test(s), listed below:`);
    for (const n of failed) console.log(`[  FAILED  ] ${n}`);
  }
  return failed.length ? 1 : 0;
}
