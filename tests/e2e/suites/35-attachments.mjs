// Files: a client's document and image shown as chips (the image as a thumbnail) once the
// sender fetched them from the mock Bot API; an agent attaches a file with the paperclip,
// sends, and the mock receives it in a multipart sendDocument; drag-and-drop adds a pending
// chip that can be removed; a file over the size cap shows the server's error.
import { sleep, assert } from '../lib.mjs';
import { hook, tgUpdate, shot, cookie } from '../web.mjs';

const FROM = 523907777;
// A 64×40 PNG (four blue and white blocks).
const PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAEAAAAAoCAIAAADBrGu+AAAASklEQVR42u3QoQ0AMAwDwSzTyTp+SUFRUXaIZHbSc+tc9/1oa59oBQAAAAAAAAAAAAAAAAAwBKQH0gcBAAAAAAAAAAAAAAAAAAxrxD+WPBrSz10AAAAASUVORK5CYII=',
  'base64');
const PDF = Buffer.from('%PDF-1.4 смета на кухню\n');

// The shared mock answers sendMessage only: teach it getFile, the file downloads and the
// file-sending methods, keeping every request (bytes intact) in ctx.mock.requests.
function teachMock(ctx) {
  if (ctx.mock.filesTaught) return;
  ctx.mock.filesTaught = true;
  ctx.mock.files = new Map([['DOC_SMETA', PDF], ['IMG_PLAN', PNG]]);
  const srv = ctx.mock.server;
  const before = srv.listeners('request');
  srv.removeAllListeners('request');
  srv.on('request', (req, res) => {
    const m = /\/(getFile|sendDocument|sendPhoto|sendMediaGroup)(\?|$)|\/file\/bot[^/]+\/files\/(\w+)$/.exec(req.url);
    if (!m) {
      for (const f of before) f.call(srv, req, res);
      return;
    }
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      ctx.mock.requests.push({ method: req.method, url: req.url, headers: req.headers, raw, body: raw.toString('utf8'), json: null });
      if (m[3]) {
        const bytes = ctx.mock.files.get(m[3]);
        res.writeHead(bytes ? 200 : 404, { 'Content-Type': 'application/octet-stream' });
        res.end(bytes || '');
        return;
      }
      let answer;
      if (m[1] === 'getFile') {
        const id = new URL(req.url, 'http://x').searchParams.get('file_id');
        answer = { ok: true, result: { file_id: id, file_path: `files/${id}` } };
      } else {
        answer = { ok: true, result: { message_id: ctx.mock.nextId++, chat: { id: FROM }, date: 1 } };
      }
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(answer));
    });
  });
}

export default [
  ['client_files_show_as_chips_and_thumbnails', async (ctx) => {
    teachMock(ctx);
    const { page, db } = ctx;
    const u1 = tgUpdate({ text: 'Смету прислал', fromId: FROM, first: 'Пётр', last: 'Файлов' });
    delete u1.message.text;
    u1.message.caption = 'Смета во вложении';
    u1.message.document = { file_name: 'Смета.pdf', mime_type: 'application/pdf', file_id: 'DOC_SMETA', file_unique_id: 'ds1', file_size: PDF.length };
    const r = await hook(ctx, u1);
    const u2 = tgUpdate({ text: 'x', fromId: FROM, first: 'Пётр', last: 'Файлов' });
    delete u2.message.text;
    u2.message.document = { file_name: 'план.png', mime_type: 'image/png', file_id: 'IMG_PLAN', file_unique_id: 'ip1', file_size: PNG.length };
    await hook(ctx, u2);
    const conv = Number(db.sql(`SELECT conversation_id FROM interactions WHERE id = ${r.interactions[0]}`).trim());
    ctx.filesConvId = conv;
    await page.goto(`/#/c/${conv}`);
    await page.waitForSelector('.item.dir-in:has-text("Смета во вложении")');
    // Fetched by the sender in the background; the thread updates live.
    const chip = await page.waitForSelector('.item.dir-in a.att-chip:has-text("Смета.pdf")', { timeout: 15000 });
    assert((await chip.textContent()).includes(`${PDF.length} B`), `size shown: ${await chip.textContent()}`);
    const href = await chip.getAttribute('href');
    const res = await fetch(`${ctx.srv.url}${href}`, { headers: { Cookie: await cookie(page) } });
    assert(res.status === 200, `download ${res.status}`);
    assert(Buffer.from(await res.arrayBuffer()).equals(PDF), 'the same bytes');
    assert(res.headers.get('content-type') === 'application/pdf', res.headers.get('content-type'));
    assert(res.headers.get('content-disposition').startsWith('attachment; ') &&
      res.headers.get('content-disposition').includes("filename*=UTF-8''%D0%A1%D0%BC%D0%B5%D1%82%D0%B0.pdf"),
    res.headers.get('content-disposition'));
    assert(res.headers.get('x-content-type-options') === 'nosniff', 'nosniff');
    const anon = await fetch(`${ctx.srv.url}${href}`);
    assert(anon.status === 401, `without a session: ${anon.status}`);
    // The image: a thumbnail that really loaded.
    await page.waitForFunction(() => [...document.querySelectorAll('.att-thumb img')].some((i) => i.complete && i.naturalWidth === 64), null, { timeout: 15000 });
    await shot(page, 'attachments-inbound-desktop');
  }],

  ['attach_a_file_send_it_and_see_the_chip', async (ctx) => {
    const { page } = ctx;
    const text = `Прайс во вложении (${Date.now()})`;
    const bytes = Buffer.from('Кухня «Лофт»: 120 000 ₽\n');
    await page.setInputFiles('#composer-file', { name: 'прайс.txt', mimeType: 'text/plain', buffer: bytes });
    await page.waitForSelector('#composer-files .att-chip[data-id]:has-text("прайс.txt")');
    await shot(page, 'attachments-composer-desktop');
    await page.fill('#composer-text', text);
    await page.click('#send');
    const req = await ctx.mock.waitFor((q) => /\/sendDocument$/.test(q.url) && q.raw?.includes(Buffer.from(text)));
    assert(req, 'the mock got sendDocument');
    assert(req.headers['content-type'].startsWith('multipart/form-data; boundary='), req.headers['content-type']);
    assert(req.raw.includes(bytes), 'the file bytes are in the multipart body');
    assert(req.body.includes('filename="прайс.txt"'), 'the file name is in the multipart body');
    assert(req.body.includes(`name="chat_id"\r\n\r\n${FROM}\r\n`), 'chat id');
    // The sent message shows its file, and the reply box is empty again.
    await page.waitForSelector(`.item.dir-out:has-text("${text}") a.att-chip:has-text("прайс.txt")`);
    await page.waitForSelector(`.item.dir-out:has-text("${text}") .ticks[data-status="sent"]`, { timeout: 10000 });
    assert(await page.$('#composer-files .att-chip') === null, 'no pending chips left');
    await shot(page, 'attachments-sent-desktop');
  }],

  ['drop_adds_a_chip_that_can_be_removed_and_too_large_is_refused', async (ctx) => {
    const { page } = ctx;
    const dt = await page.evaluateHandle(() => {
      const d = new DataTransfer();
      d.items.add(new File(['dropped bytes'], 'dropped.txt', { type: 'text/plain' }));
      return d;
    });
    await page.dispatchEvent('#composer', 'drop', { dataTransfer: dt });
    await page.waitForSelector('#composer-files .att-chip[data-id]:has-text("dropped.txt")');
    await page.click('#composer-files .att-chip:has-text("dropped.txt") .att-remove');
    await page.waitForSelector('#composer-files .att-chip', { state: 'detached' });
    // Over server.body_limit (1 MiB by default): the server's 413 shows in the reply box.
    await page.setInputFiles('#composer-file', { name: 'huge.bin', mimeType: 'application/octet-stream', buffer: Buffer.alloc(1536 * 1024, 7) });
    await page.waitForFunction(() => /huge\.bin/.test(document.querySelector('#composer-error')?.textContent) &&
      /too large/.test(document.querySelector('#composer-error')?.textContent));
    await sleep(100);
    assert(await page.$('#composer-files .att-chip') === null, 'the refused file left no chip');
    await shot(page, 'attachments-too-large-desktop');
    await page.goto(`/#/c/${ctx.convId}`);
    await page.waitForSelector('.item.dir-in');
  }],
];
