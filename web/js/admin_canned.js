// Admin page section: canned responses (saved replies agents insert by typing "/code").
// The body is a template the server checks and fills (docs/api.md, "Canned responses").
import { h } from './dom.js';
import { t, addStrings } from './i18n.js';
import { api } from './api.js';

addStrings({
  en: {
    canned: 'Canned responses', shortCode: 'Short code', cannedTitle: 'Title', cannedBody: 'Text',
    addCanned: 'Add a canned response', editCanned: 'Edit “/{code}”', cannedEdit: 'Edit', cannedDelete: 'Delete',
    cannedCancel: 'Cancel', cannedEmpty: 'No canned responses yet.',
    cannedFields: 'Merge fields: {{client.name}}, {{client.first_name}}, {{client.email}}, {{client.phone}}, {{custom.KEY}}, {{agent.name}}, {{conversation.id}}; a fallback after a bar: {{client.first_name|there}}.',
    confirmDelete: 'Delete “/{code}”?',
  },
  ru: {
    canned: 'Шаблоны ответов', shortCode: 'Код', cannedTitle: 'Название', cannedBody: 'Текст',
    addCanned: 'Добавить шаблон', editCanned: 'Изменить «/{code}»', cannedEdit: 'Изменить', cannedDelete: 'Удалить',
    cannedCancel: 'Отмена', cannedEmpty: 'Шаблонов пока нет.',
    cannedFields: 'Поля: {{client.name}}, {{client.first_name}}, {{client.email}}, {{client.phone}}, {{custom.KEY}}, {{agent.name}}, {{conversation.id}}; запасное значение после черты: {{client.first_name|коллега}}.',
    confirmDelete: 'Удалить «/{code}»?',
  },
});

export async function cannedSection() {
  const sec = h('section', { class: 'admin-section', id: 'admin-canned' }, h('h2', {}, t('canned')));
  let items = [];
  try { items = (await api('GET', '/api/v1/canned?limit=200')).items; } catch (e) { sec.append(h('p', { class: 'error' }, e.message)); return sec; }
  const reload = async () => sec.replaceWith(await cannedSection());
  let editing = null;
  const code = h('input', { name: 'short_code', required: true, maxlength: 64, pattern: '[^\\s/]+', autocomplete: 'off' });
  const title = h('input', { name: 'title', required: true, maxlength: 255 });
  const body = h('textarea', { name: 'body', rows: 4, required: true });
  const heading = h('h3', {}, t('addCanned'));
  const err = h('p', { class: 'error small', role: 'alert' });
  const cancel = h('button', { type: 'button', class: 'secondary', hidden: true, onclick: () => edit(null) }, t('cannedCancel'));
  function edit(c) {
    editing = c;
    code.value = c?.short_code || '';
    title.value = c?.title || '';
    body.value = c?.body || '';
    heading.textContent = c ? t('editCanned', { code: c.short_code }) : t('addCanned');
    cancel.hidden = !c;
    err.textContent = '';
    if (c) code.focus();
  }
  if (!items.length) sec.append(h('p', { class: 'muted' }, t('cannedEmpty')));
  else {
    sec.append(h('table', { class: 'grid' },
      h('thead', {}, h('tr', {}, h('th', {}, t('shortCode')), h('th', {}, t('cannedTitle')), h('th', {}, t('cannedBody')), h('th', {}, ''))),
      h('tbody', {}, items.map((c) => h('tr', { dataset: { code: c.short_code } },
        h('td', {}, h('code', {}, `/${c.short_code}`)), h('td', {}, c.title),
        h('td', { class: 'canned-body' }, c.body),
        h('td', { class: 'nowrap' },
          h('button', { type: 'button', class: 'small secondary', onclick: () => edit(c) }, t('cannedEdit')), ' ',
          h('button', {
            type: 'button', class: 'small secondary',
            onclick: async () => {
              if (!confirm(t('confirmDelete', { code: c.short_code }))) return;
              try { await api('DELETE', `/api/v1/canned/${c.id}`); } catch (e) { alert(e.message); }
              reload();
            },
          }, t('cannedDelete'))))))));
  }
  const form = h('form', { class: 'admin-form' }, heading,
    h('label', {}, t('shortCode'), code), h('label', {}, t('cannedTitle'), title),
    h('label', {}, t('cannedBody'), body), h('p', { class: 'muted small' }, t('cannedFields')),
    h('button', { type: 'submit' }, t('save')), ' ', cancel, err);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const fields = { short_code: code.value.trim().replace(/^\//, ''), title: title.value.trim(), body: body.value };
    try {
      if (editing) await api('PATCH', `/api/v1/canned/${editing.id}`, fields);
      else await api('POST', '/api/v1/canned', fields);
      reload();
    } catch (ex) {
      err.textContent = ex.message;
    }
  });
  sec.append(form);
  return sec;
}
