// DOM helpers. Everything the server sends is put into the page as text nodes or
// attribute values, never as HTML: the only HTML from outside is e-mail, which goes
// through DOMPurify into a sandboxed iframe (email.js).

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : String(c));
  }
}

export const $ = (sel, root = document) => root.querySelector(sel);

// The server's times are MariaDB DATETIME(6) text in UTC.
export function parseTime(s) {
  if (!s) return null;
  const d = new Date(s.replace(' ', 'T').replace(/(\.\d{3})\d*$/, '$1') + 'Z');
  return isNaN(d) ? null : d;
}

export function fmtTime(s, lang, full = false) {
  const d = parseTime(s);
  if (!d) return '';
  const now = new Date();
  const sameDay = d.toDateString() === now.toDateString();
  const opts = full || !sameDay
    ? { day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit' }
    : { hour: '2-digit', minute: '2-digit' };
  return d.toLocaleString(lang, opts);
}

export function fmtDuration(sec) {
  sec = Math.max(0, Math.round(Number(sec) || 0));
  const m = Math.floor(sec / 60), s = sec % 60;
  return `${m}:${String(s).padStart(2, '0')}`;
}

// A key for POST …/replies: crypto.randomUUID needs a secure context, which a plain
// http:// deployment on a LAN address is not; getRandomValues works everywhere.
export function newKey() {
  const b = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

export const CHANNEL_ICONS = {
  telegram: '✈', whatsapp: '✆', viber: '☏', email: '✉', imap: '✉', webform: '✎', pbx: '☎',
};
// Symbols from common text fonts (DejaVu, Liberation, system UI), not colour emoji, which
// many Linux desktops lack.
export const channelIcon = (kind) => CHANNEL_ICONS[kind] || '◆';
