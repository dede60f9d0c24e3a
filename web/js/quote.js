// The quoted history under the reply box of an e-mail conversation: a collapsed preview
// of what the server will quote below the agent's text (the latest inbound mail from a
// person, as `On <date>, <sender> wrote:` — `<dd.mm.yyyy hh:mm> UTC, <sender> пишет:`
// for an agent whose locale is Russian — and "> " lines) and a checkbox to leave it out,
// which sends `"quote": false`. The server builds the real quote (mailcompose.c) into the
// mail only: the thread keeps the agent's words. This mirrors its rules so the agent sees
// what goes out.
import { h, parseTime } from './dom.js';
import { t, addStrings } from './i18n.js';

addStrings({
  en: { quotedText: 'Quoted text', quoteOmit: 'Leave the quoted text out' },
  ru: { quotedText: 'Цитата', quoteOmit: 'Не цитировать письмо' },
});

// Keep in step with SB_MAIL_QUOTE_MAX_LINES / _BYTES (include/switchboard/mailcompose.h).
const MAX_LINES = 200;
const MAX_CHARS = 8192;
const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

// The server's choice (api_conversations.c reply_locale): the user's locale, else the
// first language the browser asks for.
const isRussian = (locale) => /^ru([-_]|$)/i.test(locale || '');

function attribution(it, locale) {
  const d = parseTime(it.occurred_at);
  const p2 = (n) => String(n).padStart(2, '0');
  const ru = isRussian(locale);
  const hm = d ? `${p2(d.getUTCHours())}:${p2(d.getUTCMinutes())} UTC, ` : '';
  const when = !d ? '' : ru
    ? `${p2(d.getUTCDate())}.${p2(d.getUTCMonth() + 1)}.${d.getUTCFullYear()} ${hm}`
    : `On ${DAYS[d.getUTCDay()]}, ${d.getUTCDate()} ${MONTHS[d.getUTCMonth()]} ${d.getUTCFullYear()} ${hm}`;
  const anon = ru ? (when ? 'отправитель' : 'Отправитель') : (when ? 'the sender' : 'The sender');
  const who = (it.sender || '').replace(/[\r\n\t]/g, ' ') || anon;
  return `${when}${who} ${ru ? 'пишет:' : 'wrote:'}`;
}

if (!document.querySelector('link[data-sb="quote-css"]')) {
  document.head.append(h('link', { rel: 'stylesheet', href: '/css/quote.css', dataset: { sb: 'quote-css' } }));
}

export function quotePreviewText(it, locale) {
  let body = (it.text || '').replace(/\r/g, '');
  let cut = false;
  if (body.length > MAX_CHARS) {
    const nl = body.lastIndexOf('\n', MAX_CHARS);
    body = body.slice(0, body[MAX_CHARS] === '\n' || nl <= 0 ? MAX_CHARS : nl);
    cut = true;
  }
  let lines = body.split('\n');
  if (lines.length > MAX_LINES) { lines = lines.slice(0, MAX_LINES); cut = true; }
  body = lines.join('\n').replace(/[\n \t]+$/, '');
  if (!body) return '';
  const quoted = body.split('\n').map((l) => (l === '' || l.startsWith('>') ? `>${l}` : `> ${l}`));
  if (cut) quoted.push('> […]');
  return `${attribution(it, locale)}\n${quoted.join('\n')}`;
}

// The mail a reply answers: the newest inbound e-mail that is not an auto-reply or a bounce.
function answered(items) {
  let best = null;
  for (const it of items.values()) {
    if (it.direction !== 'in' || it.kind !== 'email') continue;
    if ((it.flags || []).some((f) => f === 'auto_reply' || f === 'bounce')) continue;
    if (!best || it.id > best.id) best = it;
  }
  return best;
}

export class QuoteBox {
  // userLocale: users.locale of the signed-in agent (null: the browser's language).
  constructor(userLocale) {
    this.locale = userLocale || navigator.languages?.[0] || navigator.language || 'en';
    this.omit = h('input', { type: 'checkbox', id: 'quote-omit' });
    this.pre = h('pre', { class: 'quoted', id: 'quoted-text' });
    this.details = h('details', { class: 'quote-preview' }, h('summary', { class: 'small muted' }, `… ${t('quotedText')}`), this.pre);
    this.el = h('div', { class: 'quote-box small', id: 'quote-box', hidden: true },
      this.details, h('label', { class: 'quote-omit muted' }, this.omit, ' ', t('quoteOmit')));
    this.omit.addEventListener('change', () => { this.details.classList.toggle('omitted', this.omit.checked); });
    this.active = false;
  }

  // Shown for replies in e-mail conversations that have a mail to answer.
  update(conv, items, mode) {
    const it = conv?.channel?.kind === 'email' && mode === 'reply' ? answered(items) : null;
    const text = it ? quotePreviewText(it, this.locale) : '';
    this.active = conv?.channel?.kind === 'email';
    this.pre.textContent = text;
    this.el.hidden = !text;
  }

  // Members for POST …/replies.
  body() {
    return this.active ? { quote: !this.omit.checked } : {};
  }

  reset() {
    this.omit.checked = false;
    this.details.open = false;
    this.details.classList.remove('omitted');
  }
}
