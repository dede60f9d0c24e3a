// Inbound e-mail HTML, shown so that it can never run script or load anything:
//  1. DOMPurify removes scripts, event handlers, javascript: URLs, forms and the like;
//  2. remote images are dropped (only data: and cid: stay);
//  3. the result goes into an iframe with sandbox="" (no scripts, no same-origin, no
//     forms, no popups) through srcdoc, whose own CSP meta allows nothing remote;
//  4. a srcdoc frame also inherits this page's CSP (no inline script).
// Any one of these is enough on its own; together a DOMPurify bug is not a hole.
import { h } from './dom.js';
import { t } from './i18n.js';

let purifier = null; // null: not tried yet; false: failed to load
async function loadPurifier() {
  if (purifier === null) {
    try {
      const mod = await import('/vendor/purify.es.mjs');
      purifier = mod.default;
      purifier.addHook('afterSanitizeAttributes', (node) => {
        for (const attr of ['src', 'background', 'poster']) {
          const v = node.getAttribute?.(attr);
          if (v && !/^(data:image\/|cid:)/i.test(v.trim())) node.removeAttribute(attr);
        }
        if (node.tagName === 'A') node.setAttribute('rel', 'noopener noreferrer');
      });
    } catch (e) {
      console.error('DOMPurify could not be loaded', e);
      purifier = false;
    }
  }
  return purifier;
}

const FRAME_CSP = "default-src 'none'; img-src data: cid:; style-src 'unsafe-inline'";

export function sanitizeEmail(DOMPurify, html) {
  return DOMPurify.sanitize(html, {
    FORBID_TAGS: ['base', 'meta', 'link', 'form', 'input', 'button', 'textarea', 'select', 'iframe',
      'frame', 'object', 'embed', 'svg', 'math'],
    FORBID_ATTR: ['srcset', 'action', 'formaction', 'ping'],
    ALLOW_DATA_ATTR: false,
  });
}

export function emailBody(it) {
  const box = h('div', { class: 'email-body' });
  if (!it.html) {
    box.append(h('div', { class: 'plain' }, it.text || ''));
    return box;
  }
  box.append(h('div', { class: 'muted small' }, t('loading')));
  loadPurifier().then((DOMPurify) => {
    box.replaceChildren();
    if (!DOMPurify) {
      box.append(h('div', { class: 'muted small' }, t('emailNoSanitizer')), h('div', { class: 'plain' }, it.text || ''));
      return;
    }
    const clean = sanitizeEmail(DOMPurify, it.html);
    const doc = `<!doctype html><html><head><meta charset="utf-8">`
      + `<meta http-equiv="Content-Security-Policy" content="${FRAME_CSP}">`
      + `<style>body{font:14px/1.45 system-ui,sans-serif;margin:8px;color:#1d2330;word-wrap:break-word}img{max-width:100%}</style>`
      + `</head><body>${clean}</body></html>`;
    const frame = h('iframe', {
      class: 'email-frame', sandbox: '', referrerpolicy: 'no-referrer', title: it.subject || 'e-mail',
    });
    frame.srcdoc = doc;
    // The frame's height is fixed (its document is opaque to us): keep the thread's
    // scroll position at the bottom when it was there.
    frame.addEventListener('load', () => box.dispatchEvent(new CustomEvent('sb-resized', { bubbles: true })), { once: true });
    const taller = h('button', {
      type: 'button', class: 'link small',
      onclick: () => { frame.style.height = `${frame.offsetHeight + 400}px`; },
    }, t('showTall'));
    box.append(frame, h('div', { class: 'muted small' }, t('emailBlocked'), ' ', taller));
  });
  return box;
}
