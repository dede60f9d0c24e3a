// The client card beside the thread: identities, tags, merge suggestions and the
// cross-channel timeline.
import { h, fmtTime, channelIcon } from './dom.js';
import { t, getLanguage } from './i18n.js';
import { api } from './api.js';
import { nameEditor, fieldsEditor, mergeSearch } from './clientedit.js';

const ID_ICONS = { phone: '☎', email: '✉', telegram: '✈', whatsapp: '✆', viber: '☏' };

function tagsEditor(c, root, opts) {
  const box = h('div', { class: 'tags', id: 'tags' }, (c.tags || []).map((x) => h('span', { class: 'tag' }, x)));
  const edit = h('button', {
    type: 'button', class: 'link small', id: 'edit-tags',
    onclick: () => {
      const input = h('input', { id: 'tags-input', value: (c.tags || []).join(', '), placeholder: t('tagsHint') });
      const form = h('form', { class: 'tags-form', onsubmit: async (e) => {
        e.preventDefault();
        const tags = input.value.split(',').map((x) => x.trim()).filter(Boolean);
        try {
          await api('PATCH', `/api/v1/clients/${c.id}`, { tags });
        } catch (ex) {
          alert(ex.message);
        }
        renderClientCard(root, c.id, opts);
      } }, input, h('button', { type: 'submit', class: 'small' }, t('save')));
      box.replaceWith(form);
      edit.remove();
      input.focus();
    },
  }, t('editTags'));
  return h('div', {}, box, edit);
}

// An editor open in the card (a form, the merge dialog): a live reload waits for it.
const editing = (root) => !!root.querySelector('form, dialog[open]');

// quiet: a live reload (another agent's edit, a merge, an import): no "loading" flash,
// nothing redrawn when the client is unchanged, and never under an open editor. Only the
// newest call draws, so a slow answer cannot overwrite a newer one.
export async function renderClientCard(root, clientId, { onOpenConversation, onChanged, onClose, quiet = false }) {
  const opts = { onOpenConversation, onChanged, onClose };
  if (quiet && editing(root)) {
    // Dropped if another load starts meanwhile (the editor's own, another conversation's).
    const seen = root.sbCardGen;
    clearTimeout(root.sbCardRetry);
    root.sbCardRetry = setTimeout(() => {
      if (root.sbCardGen === seen) renderClientCard(root, clientId, { ...opts, quiet });
    }, 400);
    return;
  }
  const gen = (root.sbCardGen = (root.sbCardGen || 0) + 1);
  if (!quiet) root.replaceChildren(h('div', { class: 'muted pad' }, t('loading')));
  let c, sugg = [];
  try {
    c = await api('GET', `/api/v1/clients/${clientId}?limit=30`);
  } catch (e) {
    if (root.sbCardGen === gen && !quiet) root.replaceChildren(h('div', { class: 'error pad' }, `${t('errorPrefix')}: ${e.message}`));
    return;
  }
  try {
    const s = await api('GET', '/api/v1/merge-suggestions?limit=200');
    sugg = (s.items || []).filter((x) => x.client?.id === c.id || x.other?.id === c.id);
  } catch { /* marketers may not see suggestions */ }
  if (root.sbCardGen !== gen) return;
  const lang = getLanguage();
  const data = JSON.stringify([c, sugg, lang]);
  if (quiet && (data === root.sbCardData || editing(root))) {
    if (data !== root.sbCardData) renderClientCard(root, clientId, { ...opts, quiet });
    return;
  }
  root.sbCardData = data;
  const reload = (id) => renderClientCard(root, id, opts);
  const decide = async (s, what) => {
    try {
      await api('POST', `/api/v1/merge-suggestions/${s.id}/${what}`);
    } catch (e) {
      alert(e.message);
    }
    onChanged?.();
    renderClientCard(root, what === 'accept' ? Math.min(s.client.id, s.other.id) : clientId, opts);
  };
  root.replaceChildren(
    h('div', { class: 'client-card', dataset: { clientId: c.id } },
      onClose ? h('button', { type: 'button', class: 'link card-close', 'aria-label': t('close'), onclick: onClose }, '✕') : null,
      nameEditor(c, reload, onChanged),
      c.company ? h('div', { class: 'muted' }, `${t('company')}: ${c.company}`) : null,
      h('h3', {}, t('identities')),
      h('ul', { class: 'identities' }, (c.identities || []).map((i) => h('li', { class: i.verified ? 'verified' : 'unverified' },
        h('span', { class: 'id-kind', title: i.kind }, ID_ICONS[i.kind] || i.kind), ' ',
        h('span', { class: 'id-value' }, i.value || i.raw || ''),
        i.verified ? h('span', { class: 'ok', title: 'verified' }, ' ✓') : null))),
      h('h3', {}, t('fields')), fieldsEditor(c, reload),
      h('h3', {}, t('tags')), tagsEditor(c, root, opts),
      sugg.length ? [h('h3', {}, t('mergeSuggestions')), h('ul', { class: 'suggestions' }, sugg.map((s) => {
        const other = s.client.id === c.id ? s.other : s.client;
        return h('li', { dataset: { suggestion: s.id } },
          h('div', {}, `#${other.id} ${other.name || ''}`), h('div', { class: 'muted small' }, s.reason),
          h('button', { type: 'button', class: 'small', onclick: () => decide(s, 'accept') }, t('accept')), ' ',
          h('button', { type: 'button', class: 'small secondary', onclick: () => decide(s, 'dismiss') }, t('dismiss')));
      }))] : null,
      c.timeline ? mergeSearch(c, reload, onChanged) : null,
      c.timeline ? [h('h3', {}, t('timeline')), h('ol', { class: 'timeline' }, (c.timeline.items || []).map((it) => h('li', {
        class: `dir-${it.direction}`,
        onclick: it.conversation_id ? () => onOpenConversation(it.conversation_id) : null,
      },
      h('span', { class: 'ch-icon', title: it.channel_kind }, channelIcon(it.channel_kind)), ' ',
      h('time', {}, fmtTime(it.occurred_at, lang)), ' ',
      h('span', { class: 'tl-text' }, it.subject || it.text || `(${it.kind})`))))] : null));
}
