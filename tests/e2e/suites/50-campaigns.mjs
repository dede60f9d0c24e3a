// The marketer's campaign pages: sign in and land on campaigns, build a segment with its live
// count, a template with a sandboxed preview (its script never runs) and a test send, a
// campaign started, paused, resumed and sent to a real SMTP sink (Postfix's smtp-sink), the
// hourly chart, the CSV export, cancel with confirmation, the help listing only the keys of these
// pages, editing in place (a template's subject and its preview, a segment's filter, a draft),
// deleting an unused template and a draft, and the phone layout.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { cli, sleep, assert, SmtpSink } from '../lib.mjs';
import { newPage, login, shot, cookie, ADMIN, PHONE } from '../web.mjs';

const MARKETER = { email: 'mila@example.com', name: 'Mila Marketer', password: 'correct horse 3' };
// Six "spring" clients with an address (three on plan gold), one without an address, two others.
const CLIENTS = [
  ['Olga Petrova', 'olga@e2e.example', 'spring;vip', 'gold'],
  ['Pavel Orlov', 'pavel@e2e.example', 'spring', 'gold'],
  ['Rita Sokolova', 'rita@e2e.example', 'spring', 'gold'],
  ['Semyon Lebedev', 'semyon@e2e.example', 'spring', 'basic'],
  ['Tanya Kuznetsova', 'tanya@e2e.example', 'Spring', 'basic'],
  ['Ulyana Volkova', 'ulyana@e2e.example', 'spring, autumn', 'basic'],
  ['Vadim Noaddress', '', 'spring', 'gold'],
  ['Wanda Autumn', 'wanda@e2e.example', 'autumn', 'gold'],
  ['Xenia Other', 'xenia@e2e.example', '', 'basic'],
];
const SPRING = CLIENTS.filter((c) => /spring/i.test(c[2]) && c[1]).map((c) => c[1]);
const SUBJECT = 'Spring sale for {{client.name|friend}}';

async function api(ctx, page, method, p, body) {
  const r = await fetch(`${ctx.srv.url}${p}`, {
    method, headers: { Cookie: await cookie(page), 'Content-Type': 'application/json' }, body: body && JSON.stringify(body),
  });
  const text = await r.text();
  return { status: r.status, headers: r.headers, text, json: (() => { try { return JSON.parse(text); } catch { return null; } })() };
}

const header = (msg, name) => new RegExp(`^${name}:\\s*(.*(?:\\r?\\n[ \\t].*)*)`, 'im').exec(msg)?.[1].replace(/\r?\n[ \t]+/g, ' ').trim();
const campaignMail = (sink) => sink.messages().filter((m) => /^Subject: Spring sale/m.test(m));

export default [
  ['campaigns_marketer_lands_on_campaigns', async (ctx) => {
    cli(ctx.env, ['user', 'add', '--email', MARKETER.email, '--name', MARKETER.name, '--role', 'marketer', '--password-stdin'], `${MARKETER.password}\n`);
    const csv = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'sb-e2e-camp-')), 'clients.csv');
    fs.writeFileSync(csv, `name,email,tags,plan\n${CLIENTS.map((c) => c.map((v) => `"${v}"`).join(',')).join('\n')}\n`);
    cli(ctx.env, ['import', 'clients', csv]);
    fs.rmSync(path.dirname(csv), { recursive: true, force: true });
    ctx.sink = new SmtpSink();
    ctx.cleanup.push(() => ctx.sink.stop());
    await ctx.sink.start();
    const ch = JSON.parse(cli(ctx.env, ['channel', 'add', 'email', '--name', 'Newsletter', '--set', 'smtp_host=127.0.0.1',
      '--set', `smtp_port=${ctx.sink.port}`, '--set', 'smtp_tls=none', '--set', 'from=Shop News <news@shop.example>']));
    ctx.emailId = ch.id;

    const page = await newPage(ctx);
    ctx.mkt = page;
    await login(page, MARKETER);
    await page.waitForSelector('#campaign-list');
    assert(await page.evaluate(() => location.hash) === '#/campaigns', 'a marketer lands on #/campaigns');
    assert(await page.isVisible('#campaigns-link'), 'Campaigns link in the top bar');
    assert(!(await page.isVisible('#convs')), 'no inbox list for a marketer');
    // Agents have no campaign pages; the agent's page is still signed in for later suites.
    if (ctx.page) assert(await ctx.page.$('#campaigns-link') === null, 'no Campaigns link for agents');
    // Admins have the link too, beside their inbox.
    const admin = await newPage(ctx);
    await login(admin, ADMIN);
    await admin.waitForSelector('#convs');
    await admin.click('#campaigns-link');
    await admin.waitForSelector('#campaign-list');
    await admin.context().close();
    // Back to the inbox by hand: still campaigns.
    await page.evaluate(() => { location.hash = '#/c/1'; });
    await page.waitForFunction(() => location.hash === '#/campaigns');
    await page.waitForSelector('#campaign-list');
  }],

  ['campaigns_segment_editor_counts_live', async (ctx) => {
    const page = ctx.mkt;
    await page.click('#new-segment');
    await page.waitForSelector('#segment-form');
    const countIs = (n) => page.waitForFunction((v) => document.querySelector('#seg-count')?.dataset.count === v, String(n), { timeout: 5000 });
    // No filter: everyone with an address (ours and the earlier suites' clients).
    await page.waitForFunction((n) => Number(document.querySelector('#seg-count')?.dataset.count) >= n, SPRING.length + 2, { timeout: 5000 });
    await page.fill('#segment-form input[name=name]', 'Spring buyers');
    await page.fill('#segment-form input[name=tag]', 'spring');
    await countIs(SPRING.length);
    assert((await page.textContent('#seg-count')).includes(String(SPRING.length)), 'the count is shown');
    await page.fill('#segment-form textarea[name=custom]', 'plan=gold');
    await countIs(3);
    await page.selectOption('#segment-form select[name=identity_kind]', 'phone');
    await countIs(0);
    await page.selectOption('#segment-form select[name=identity_kind]', '');
    await page.fill('#segment-form input[name=created_after]', '2999-01-01');
    await countIs(0);
    await page.fill('#segment-form input[name=created_after]', '');
    await page.fill('#segment-form textarea[name=custom]', '');
    await countIs(SPRING.length);
    await shot(page, 'campaign-segment-desktop');
    await page.click('#save-segment');
    await page.waitForSelector('#segment-list');
    assert((await page.textContent('#segment-list')).includes('Spring buyers'), 'the segment is listed');
  }],

  ['campaigns_template_preview_is_sandboxed', async (ctx) => {
    const page = ctx.mkt;
    const m = `http://127.0.0.1:${ctx.mock.port}`;
    const hostile = `<script>parent.__pwned = 'script'; fetch('${m}/pwned-tpl-script')</script>`
      + `<img src="x" onerror="parent.__pwned='onerror'; fetch('${m}/pwned-tpl-onerror')">`;
    // Proof that the payload is live: in a plain page it calls the mock.
    const control = await newPage(ctx, { expectErrors: true });
    await control.setContent(hostile);
    assert(await ctx.mock.waitFor((q) => q.url === '/pwned-tpl-onerror', 5000), 'control: the payload runs in a plain page');
    await control.context().close();
    const hits = () => ctx.mock.requests.filter((q) => /pwned-tpl/.test(q.url));
    const before = hits().length;

    await page.click('#new-template');
    await page.waitForSelector('#template-form');
    assert((await page.textContent('#template-tools')).length > 0, 'preview waits for a saved template');
    await page.click('#merge-help summary');
    assert((await page.textContent('#merge-help')).includes('{{client.name|there}}'), 'merge-field help with fallbacks');
    await page.fill('#template-form input[name=name]', 'Spring sale');
    await page.fill('#template-form input[name=subject]', SUBJECT);
    await page.fill('#template-form textarea[name=html]',
      `<p id="hi">Hello {{client.name|friend}}, plan {{custom.plan|none}}</p><a href="https://shop.example/sale">Sale</a>${hostile}`);
    await page.fill('#template-form textarea[name=text]', 'Hello {{client.name|friend}}: https://shop.example/sale');
    await page.click('#save-template');
    await page.waitForSelector('#preview-btn');
    ctx.tplId = Number(await page.evaluate(() => location.hash.split('/').pop()));
    assert(ctx.tplId > 0, 'the template has an id');

    await page.fill('#preview-q', 'Olga');
    await page.waitForFunction(() => [...document.querySelectorAll('#preview-client option')].some((o) => o.textContent.includes('Olga')));
    await page.click('#preview-btn');
    await page.waitForSelector('#preview-frame');
    const frame = page.frameLocator('#preview-frame');
    await frame.locator('#hi').waitFor({ timeout: 5000 });
    const hi = await frame.locator('#hi').textContent();
    assert(hi === 'Hello Olga Petrova, plan gold', `personalised preview: ${hi}`);
    assert((await page.textContent('#preview-subject')) === 'Spring sale for Olga Petrova', 'subject rendered');
    await sleep(1500);
    assert(await page.evaluate(() => window.__pwned) === undefined, 'no script of the template reached the page');
    assert(hits().length === before, `the template's script ran: ${JSON.stringify(hits().slice(before).map((q) => q.url))}`);
    assert(await page.getAttribute('#preview-frame', 'sandbox') === '', 'sandbox=""');
    assert((await page.getAttribute('#preview-frame', 'srcdoc')).includes("default-src 'none'"), 'CSP meta in the frame');
    assert(await page.$('#hi') === null, 'the HTML is not in the page itself');
    // Without a client: the fallbacks.
    await page.selectOption('#preview-client', '');
    await page.click('#preview-btn');
    await page.frameLocator('#preview-frame').locator('#hi').waitFor();
    await page.waitForFunction(() => document.querySelector('#preview-subject')?.textContent === 'Spring sale for friend');
    await shot(page, 'campaign-template-desktop');

    // A test message to an address, through the channel's SMTP server into the sink.
    await page.fill('#test-to', 'qa@e2e.example');
    await page.click('#test-btn');
    await page.waitForFunction(() => /SMTP 25\d/.test(document.querySelector('#test-result')?.textContent || ''), null, { timeout: 10000 });
    const msgs = await ctx.sink.waitFor(1, 5000);
    const test = msgs.find((x) => /^Subject: \[TEST\]/m.test(x));
    assert(test, `the test message reached the sink (${msgs.length} messages)`);
    assert(/qa@e2e\.example/.test(header(test, 'To')), 'to the given address');
  }],

  ['campaigns_send_pause_resume_chart', async (ctx) => {
    const page = ctx.mkt;
    await page.click('#campaigns-link');
    await page.waitForSelector('#new-campaign');
    await page.click('#new-campaign');
    await page.waitForSelector('#campaign-form');
    await page.fill('#campaign-form input[name=name]', 'Spring 2026');
    await page.selectOption('#campaign-form select[name=segment_id]', { label: 'Spring buyers' });
    await page.selectOption('#campaign-form select[name=template_id]', { index: 1 });
    assert(await page.inputValue('#campaign-form select[name=channel_id]') === String(ctx.emailId), 'the one e-mail channel is chosen');
    await page.fill('#campaign-form input[name=rate_per_second]', '2');
    await page.click('#create-campaign');
    await page.waitForSelector('#campaign[data-status="draft"]');
    ctx.campId = Number(await page.evaluate(() => location.hash.split('/').pop()));
    assert((await page.textContent('#campaign-meta')).includes('Spring buyers'), 'segment named');
    await page.click('#campaign-start');
    await page.waitForSelector('#campaign[data-status="running"]');
    await page.click('#campaign-pause');
    await page.waitForSelector('#campaign[data-status="paused"]');
    await sleep(1000); // what was already in an SMTP transaction finishes (docs/campaigns.md)
    const atPause = campaignMail(ctx.sink).length;
    await sleep(1500);
    const later = campaignMail(ctx.sink).length;
    assert(later === atPause && atPause < SPRING.length, `paused: ${atPause} then ${later} of ${SPRING.length}`);
    await page.click('#campaign-resume');
    await page.waitForSelector('#campaign[data-status="running"]');
    // The counters follow without a reload (polling while running, the finish event).
    const t0 = Date.now();
    await page.waitForFunction((n) => document.querySelector('#stat-sent')?.dataset.value === String(n), SPRING.length, { timeout: 20000 });
    await page.waitForSelector('#campaign[data-status="finished"]', { timeout: 10000 });
    console.log(`    all ${SPRING.length} sent ${Date.now() - t0} ms after resume (2 msgs/s)`);
    assert((await page.textContent('#campaign-progress-text')) === `${SPRING.length} / ${SPRING.length}`, 'progress 6 / 6');
    const drawn = await page.evaluate(() => {
      const c = document.querySelector('#campaign-chart');
      const chart = window.Chart?.getChart(c);
      return chart ? { sent: chart.data.datasets[0].data.reduce((a, b) => a + b, 0), w: c.width, h: c.height } : null;
    });
    assert(drawn && drawn.sent === SPRING.length && drawn.w > 0 && drawn.h > 0, `chart drawn: ${JSON.stringify(drawn)}`);
    await shot(page, 'campaign-detail-desktop');

    // Each recipient got one message, personalised, with the unsubscribe headers.
    const mail = campaignMail(ctx.sink);
    const to = mail.map((x) => header(x, 'To')).map((v) => /<?([^<>\s]+@[^<>\s]+)>?$/.exec(v)?.[1]).sort();
    assert(JSON.stringify(to) === JSON.stringify([...SPRING].sort()), `recipients ${JSON.stringify(to)}`);
    const olga = mail.find((x) => /olga@/.test(header(x, 'To')));
    assert(/Hello Olga Petrova/.test(olga), 'personalised body');
    assert(header(olga, 'List-Unsubscribe-Post') === 'List-Unsubscribe=One-Click', 'one-click unsubscribe header');

    // The list shows the progress.
    await page.click('#campaigns-link');
    await page.waitForFunction((id) => document.querySelector(`#campaign-list tr[data-id="${id}"] .progress-cell`)?.textContent.includes('6 / 6'), ctx.campId);
    await shot(page, 'campaign-list-desktop');
  }],

  ['campaigns_csv_export', async (ctx) => {
    const page = ctx.mkt;
    await page.goto(`/#/campaigns/${ctx.campId}`);
    await page.waitForSelector('#campaign[data-status="finished"]');
    assert(await page.$('#campaign-edit-form') === null && await page.$('#campaign-delete') === null, 'a finished campaign is not editable');
    const href = await page.getAttribute('#campaign-csv', 'href');
    assert(href === `/api/v1/campaigns/${ctx.campId}/recipients.csv`, `CSV link ${href}`);
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#campaign-csv')]);
    const file = await download.path();
    const text = fs.readFileSync(file, 'utf8');
    const lines = text.trim().split(/\r?\n/);
    assert(lines[0].startsWith('recipient_id,client_id,email,outcome'), `CSV header ${lines[0]}`);
    assert(lines.length === SPRING.length + 1, `${lines.length - 1} recipients in the CSV`);
    for (const a of SPRING) assert(lines.some((l) => l.includes(a) && /,sent,/.test(l)), `${a} sent in the CSV`);
    assert(download.suggestedFilename() === `campaign-${ctx.campId}-recipients.csv`, download.suggestedFilename());
  }],

  ['campaigns_cancel_asks_first', async (ctx) => {
    const page = ctx.mkt;
    const seg = (await api(ctx, page, 'GET', '/api/v1/segments')).json.items.find((s) => s.name === 'Spring buyers');
    const r = await api(ctx, page, 'POST', '/api/v1/campaigns', {
      name: 'Later', segment_id: seg.id, template_id: ctx.tplId, channel_id: ctx.emailId, send_at: '2999-01-01T10:00:00Z',
    });
    assert(r.status === 201, `create: ${r.status} ${r.text}`);
    await page.goto(`/#/campaigns/${r.json.id}`);
    await page.waitForSelector('#campaign[data-status="draft"]');
    await page.click('#campaign-start');
    await page.waitForSelector('#campaign[data-status="scheduled"]');
    // Scheduled: nothing sent yet, so still editable in place.
    await page.waitForSelector('#campaign-edit-form');
    page.once('dialog', (d) => d.dismiss());
    await page.click('#campaign-cancel');
    await sleep(500);
    assert(await page.$('#campaign[data-status="scheduled"]'), 'dismissing the question cancels nothing');
    let asked = '';
    page.once('dialog', (d) => { asked = d.message(); d.accept(); });
    await page.click('#campaign-cancel');
    await page.waitForSelector('#campaign[data-status="cancelled"]');
    assert(asked.includes('"Later"'), `the question names the campaign: ${asked}`);
    assert(await page.$('#campaign-actions button') === null, 'no actions on a cancelled campaign');
    assert(await page.$('#campaign-edit-form') === null, 'no edit form once cancelled');
    assert((await api(ctx, page, 'GET', `/api/v1/campaigns/${r.json.id}`)).json.status === 'cancelled', 'cancelled on the server');
  }],

  ['campaigns_help_lists_only_page_keys', async (ctx) => {
    const page = ctx.mkt;
    await page.goto('/#/campaigns');
    await page.waitForSelector('#campaign-list');
    await page.evaluate(() => document.activeElement?.blur());
    await page.keyboard.press('?');
    await page.waitForSelector('#help[open]');
    const keys = await page.$$eval('#help kbd', (ks) => ks.map((k) => k.textContent));
    assert(JSON.stringify(keys) === JSON.stringify(['?', 'Esc']), `the help on a marketer's page lists ${JSON.stringify(keys)}`);
    await page.keyboard.press('Escape');
    await page.waitForFunction(() => !document.querySelector('#help').open);
    // The inbox keys do nothing here: j would have opened a conversation.
    await page.keyboard.press('j');
    await sleep(300);
    assert(await page.evaluate(() => location.hash) === '#/campaigns', 'j leaves the campaign pages alone');
    // An agent's inbox still lists its keys.
    if (ctx.page) {
      await ctx.page.click('button[title]:text-is("?")');
      await ctx.page.waitForSelector('#help[open]');
      assert((await ctx.page.$$('#help kbd')).length === 8, 'the inbox help keeps its eight keys');
      await ctx.page.keyboard.press('Escape');
    }
  }],

  ['campaigns_edit_template_preview_changes', async (ctx) => {
    const page = ctx.mkt;
    await page.goto(`/#/campaigns/templates/${ctx.tplId}`);
    await page.waitForSelector('#preview-btn');
    assert(await page.inputValue('#template-form input[name=subject]') === SUBJECT, 'the form holds the saved template');
    await page.click('#preview-btn');
    await page.waitForFunction(() => document.querySelector('#preview-subject')?.textContent === 'Spring sale for friend');
    // A bad merge field is refused as on create, and nothing changes.
    await page.fill('#template-form input[name=subject]', 'Sale for {{client.nmae}}');
    await page.click('#save-template');
    await page.waitForFunction(() => /unknown merge field 'client\.nmae'/.test(document.querySelector('#tpl-error')?.textContent || ''));
    await page.fill('#template-form input[name=subject]', 'Summer sale for {{client.name|friend}}');
    await page.click('#save-template');
    await page.waitForFunction(() => document.querySelector('#tpl-saved')?.textContent.length > 0);
    await page.waitForFunction(() => document.querySelector('#preview-subject')?.textContent === 'Summer sale for friend', null, { timeout: 5000 });
    assert(await page.evaluate(() => location.hash) === `#/campaigns/templates/${ctx.tplId}`, 'saved in place, not as a new template');
    const r = await api(ctx, page, 'GET', `/api/v1/templates/${ctx.tplId}`);
    assert(r.json.subject === 'Summer sale for {{client.name|friend}}', `saved: ${r.json.subject}`);
    assert(await page.textContent('#tpl-error') === '', 'the earlier error is gone');
    await shot(page, 'campaign-template-edited');
  }],

  ['campaigns_edit_segment_filter', async (ctx) => {
    const page = ctx.mkt;
    const seg = (await api(ctx, page, 'GET', '/api/v1/segments')).json.items.find((x) => x.name === 'Spring buyers');
    await page.goto('/#/campaigns');
    await page.click(`#segment-list a[href="#/campaigns/segments/${seg.id}"]`);
    await page.waitForSelector('#segment-form');
    assert(await page.inputValue('#segment-form input[name=tag]') === 'spring', 'the saved filter is in the form');
    await page.waitForFunction((n) => document.querySelector('#seg-count')?.dataset.count === String(n), SPRING.length);
    await page.fill('#segment-form textarea[name=custom]', 'plan=gold');
    await page.waitForFunction(() => document.querySelector('#seg-count')?.dataset.count === '3');
    await page.click('#save-segment');
    await page.waitForSelector('#segment-list');
    await page.waitForFunction(() => document.querySelector('#segment-list')?.textContent.includes('"plan":"gold"'));
    const r = await api(ctx, page, 'GET', `/api/v1/segments/${seg.id}`);
    assert(r.json.count === 3 && r.json.filter.custom?.plan === 'gold' && r.json.name === 'Spring buyers', `saved in place: ${r.text}`);
    const all = (await api(ctx, page, 'GET', '/api/v1/segments')).json.items.filter((x) => x.name === 'Spring buyers');
    assert(all.length === 1, 'no second segment');
  }],

  ['campaigns_delete_template_and_draft', async (ctx) => {
    const page = ctx.mkt;
    await page.goto('/#/campaigns/templates/new');
    await page.waitForSelector('#template-form');
    await page.fill('#template-form input[name=name]', 'Throwaway');
    await page.fill('#template-form input[name=subject]', 'Nothing much');
    await page.fill('#template-form textarea[name=text]', 'Hello {{client.name|there}}');
    await page.click('#save-template');
    await page.waitForSelector('#delete-template');
    const tplId = Number(await page.evaluate(() => location.hash.split('/').pop()));
    const seg = (await api(ctx, page, 'GET', '/api/v1/segments')).json.items.find((x) => x.name === 'Spring buyers');
    const draft = await api(ctx, page, 'POST', '/api/v1/campaigns', { name: 'Draft one', segment_id: seg.id, template_id: tplId, channel_id: ctx.emailId });
    assert(draft.status === 201, `draft: ${draft.text}`);

    // Used by a draft: the server refuses and says why.
    page.once('dialog', (d) => d.accept());
    await page.click('#delete-template');
    await page.waitForFunction(() => /used by/.test(document.querySelector('#tpl-error')?.textContent || ''));

    // The draft is edited in place on its page, then deleted (after a question).
    await page.goto(`/#/campaigns/${draft.json.id}`);
    await page.waitForSelector('#campaign[data-status="draft"] ~ #campaign-edit #campaign-edit-form');
    assert(await page.inputValue('#campaign-edit-form input[name=name]') === 'Draft one', 'the form holds the draft');
    await page.fill('#campaign-edit-form input[name=name]', 'Draft renamed');
    await page.fill('#campaign-edit-form input[name=rate_per_second]', '3');
    await page.click('#save-campaign');
    await page.waitForFunction(() => document.querySelector('#campaign-name')?.textContent === 'Draft renamed');
    await page.waitForFunction(() => document.querySelector('#campaign-meta')?.textContent.includes('3/s'));
    const got = await api(ctx, page, 'GET', `/api/v1/campaigns/${draft.json.id}`);
    assert(got.json.name === 'Draft renamed' && got.json.rate_per_second === 3 && got.json.status === 'draft', `saved: ${got.text}`);
    await shot(page, 'campaign-draft-edit');
    page.once('dialog', (d) => d.dismiss());
    await page.click('#campaign-delete');
    await sleep(300);
    assert((await api(ctx, page, 'GET', `/api/v1/campaigns/${draft.json.id}`)).status === 200, 'dismissed: still there');
    let asked = '';
    page.once('dialog', (d) => { asked = d.message(); d.accept(); });
    await page.click('#campaign-delete');
    await page.waitForSelector('#campaign-list');
    assert(asked.includes('"Draft renamed"'), `the question names the draft: ${asked}`);
    assert((await api(ctx, page, 'GET', `/api/v1/campaigns/${draft.json.id}`)).status === 404, 'the draft is gone');

    // Now unused: the template goes.
    await page.click(`#template-list a[href="#/campaigns/templates/${tplId}"]`);
    await page.waitForSelector('#delete-template');
    page.once('dialog', (d) => d.accept());
    await page.click('#delete-template');
    await page.waitForSelector('#template-list');
    assert(!(await page.textContent('#template-list')).includes('Throwaway'), 'not listed any more');
    assert((await api(ctx, page, 'GET', `/api/v1/templates/${tplId}`)).status === 404, 'deleted on the server');
  }],

  ['campaigns_phone_layout', async (ctx) => {
    const phone = await newPage(ctx, { viewport: PHONE, mobile: true });
    await login(phone, MARKETER);
    await phone.waitForSelector('#campaign-list');
    await shot(phone, 'campaign-list-phone');
    await phone.goto(`/#/campaigns/${ctx.campId}`);
    await phone.waitForSelector('#campaign[data-status="finished"]');
    await phone.waitForFunction(() => window.Chart?.getChart(document.querySelector('#campaign-chart')));
    const overflow = await phone.evaluate(() => Math.max(document.documentElement.scrollWidth,
      document.querySelector('#campaign').getBoundingClientRect().right, document.querySelector('#campaign-chart').getBoundingClientRect().right) - window.innerWidth);
    assert(overflow <= 1, `the page fits a phone's width (${overflow}px over)`);
    await shot(phone, 'campaign-detail-phone');
    await phone.context().close();
    await ctx.mkt.context().close();
    assert(ctx.pageErrors.length === 0, `page errors: ${ctx.pageErrors.join('; ')}`);
  }],
];
