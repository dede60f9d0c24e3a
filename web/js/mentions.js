// "@Name" of a colleague in a note's text, drawn as a highlighted span. Only names of real
// colleagues (GET /api/v1/agents, asked once per page) are marked, so "@" in ordinary text
// ("write to a@b.ru") stays plain; everything goes in as text nodes.
import { h } from './dom.js';
import { api } from './api.js';

let names = null; // colleagues' names, longest first so "Ann Lee" wins over "Ann"
let loading = null;

function load() {
  loading ||= api('GET', '/api/v1/agents')
    .then((d) => {
      names = [...new Set((d.items || []).map((a) => a.name).filter(Boolean))].sort((a, b) => b.length - a.length);
    })
    .catch(() => { names = []; });
  return loading;
}

const WORD = /[\p{L}\p{N}_]/u;

// Pieces of `text`: strings, and a span for each "@Name" of `list` that ends at a word
// boundary (so "@Ann" inside "@Annabel" is not Ann's).
export function mentionParts(text, list) {
  const out = [];
  let plain = 0;
  for (let i = text.indexOf('@'); i >= 0; i = text.indexOf('@', i + 1)) {
    if (i > 0 && WORD.test(text[i - 1])) continue; // an e-mail address, not a mention
    const rest = text.slice(i + 1);
    const name = list.find((n) => rest.slice(0, n.length).toLowerCase() === n.toLowerCase() &&
      !WORD.test(rest[n.length] || ''));
    if (!name) continue;
    if (i > plain) out.push(text.slice(plain, i));
    out.push(h('span', { class: 'mention' }, text.slice(i, i + 1 + name.length)));
    plain = i + 1 + name.length;
    i = plain - 1;
  }
  if (plain < text.length) out.push(text.slice(plain));
  return out;
}

// The note's text element; its mentions are marked once the names are known.
export function noteText(text) {
  const el = h('div', { class: 'plain' }, text);
  if (!text.includes('@')) return el;
  const fill = () => { if (names.length) el.replaceChildren(...mentionParts(text, names)); };
  if (names) fill();
  else load().then(fill);
  return el;
}
