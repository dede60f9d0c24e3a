// One interaction, drawn by its kind: messenger bubble, e-mail, form lead, call, note.
import { h, fmtTime, fmtDuration } from './dom.js';
import { t, getLanguage } from './i18n.js';
import { emailBody } from './email.js';
import { noteText } from './mentions.js';
import { attachmentList } from './attach.js';

const TICKS = { queued: '○', sent: '✓', delivered: '✓✓', read: '✓✓', failed: '⚠' };

function flagBadges(it) {
  const map = { auto_reply: 'autoReply', bounce: 'bounce', parse_error: 'parseError' };
  return (it.flags || []).filter((f) => map[f]).map((f) => h('span', { class: `badge flag-${f}` }, t(map[f])));
}

function ticks(it, onRetry) {
  const st = it.delivery_status;
  if (it.direction !== 'out' || !TICKS[st]) return null;
  const title = t(st) + (st === 'failed' && it.meta?.delivery_error ? `: ${it.meta.delivery_error}` : '');
  return h('span', { class: `ticks ticks-${st}`, title, 'data-status': st, 'aria-label': t(st) },
    TICKS[st],
    st === 'failed' && onRetry ? h('button', { type: 'button', class: 'link small', onclick: () => onRetry(it) }, t('retry')) : null);
}

function meta(it, onRetry) {
  const lang = getLanguage();
  return h('div', { class: 'meta' },
    it.sender ? h('span', { class: 'sender' }, it.sender) : null,
    h('time', { datetime: it.occurred_at, title: fmtTime(it.occurred_at, lang, true) }, fmtTime(it.occurred_at, lang)),
    (it.flags || []).includes('edited') ? h('span', { class: 'muted' }, t('edited')) : null,
    ticks(it, onRetry));
}

function formTable(it) {
  const m = it.meta || {};
  const rows = [];
  const add = (k, v) => rows.push(h('tr', {}, h('th', {}, k), h('td', {}, Array.isArray(v) ? v.join(', ') : typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v ?? ''))));
  for (const [k, v] of Object.entries(m.contact || {})) add(k, v);
  for (const [k, v] of Object.entries(m.form || {})) add(k, v);
  const src = m.lead_source || {};
  const srcRows = Object.entries(src).map(([k, v]) => h('tr', { class: 'utm' }, h('th', {}, k), h('td', {}, String(v))));
  return h('div', { class: 'card form-lead' },
    h('div', { class: 'card-title' }, '✎ ', t('formLead'), ...flagBadges(it)),
    it.text ? h('div', { class: 'plain' }, it.text) : null,
    rows.length ? h('table', { class: 'fields' }, h('tbody', {}, rows)) : null,
    srcRows.length ? h('table', { class: 'fields utm-table' }, h('caption', {}, t('source')), h('tbody', {}, srcRows)) : null,
    meta(it));
}

function callCard(it) {
  const c = it.meta?.call || {};
  const missed = c.missed === true || c.missed === 'true';
  const outgoing = (c.direction || it.direction) === 'out' || c.direction === 'outbound';
  const title = missed ? t('missedCall') : outgoing ? t('outgoingCall') : t('incomingCall');
  return h('div', { class: `card call${missed ? ' missed' : ''}` },
    h('div', { class: 'card-title' }, missed ? '☎✕ ' : outgoing ? '☎↗ ' : '☎↙ ', title),
    h('div', {}, [c.from, c.to].filter(Boolean).join(' → ')),
    c.duration !== undefined ? h('div', {}, `${t('duration')}: ${fmtDuration(c.duration)}`) : null,
    c.recording_url && /^https?:\/\//i.test(c.recording_url)
      ? h('a', { href: c.recording_url, target: '_blank', rel: 'noopener noreferrer' }, t('recording')) : null,
    it.text && !c.from ? h('div', { class: 'plain' }, it.text) : null,
    meta(it));
}

function emailCard(it, onRetry) {
  return h('div', { class: `card email dir-${it.direction}` },
    h('div', { class: 'email-head' },
      h('div', { class: 'subject' }, '✉ ', it.subject || t('noSubject'), ...flagBadges(it)),
      it.sender ? h('div', { class: 'small' }, `${t('from')}: `, it.sender) : null),
    emailBody(it),
    meta(it, onRetry));
}

export function renderInteraction(it, { onRetry } = {}) {
  let body;
  if (it.direction === 'note' || it.kind === 'note') {
    body = h('div', { class: 'note' },
      h('div', { class: 'card-title' }, '⚑ ', t('privateNote')),
      noteText(it.text || ''),
      meta(it));
  } else if (it.kind === 'email') {
    body = emailCard(it, onRetry);
  } else if (it.kind === 'form') {
    body = formTable(it);
  } else if (it.kind === 'call') {
    body = callCard(it);
  } else {
    body = h('div', { class: 'bubble' },
      flagBadges(it).length ? h('div', {}, ...flagBadges(it)) : null,
      h('div', { class: 'plain' }, it.text || ''),
      meta(it, onRetry));
  }
  const files = attachmentList(it);
  if (files) body.insertBefore(files, body.querySelector(':scope > .meta'));
  return h('div', { class: `item dir-${it.direction} kind-${it.kind}`, dataset: { id: it.id } }, body);
}
