// Editing on the client card: the name, custom fields (free key → value pairs, edited
// inline) and the manual merge with a client found by search. client.js places these;
// each takes the card's client object and a reload(id) that redraws the card.
import { h, fmtTime } from './dom.js';
import { t, addStrings, getLanguage } from './i18n.js';
import { api } from './api.js';

addStrings({
  en: {
    editName: 'Edit name', namePlaceholder: 'Client name', fields: 'Fields', addField: 'Add field',
    fieldName: 'Field', fieldValue: 'Value', removeField: 'Remove {name}', editField: 'Edit {name}',
    noFields: 'No fields yet.', cancel: 'Cancel',
    mergeWith: 'Merge with…', mergeSearch: 'Name, phone or e-mail of the other client',
    mergeNoResults: 'No other client found.', mergeTitle: 'Merge these clients?',
    mergeKept: 'Kept (older)', mergeGone: 'Merged into it', mergeConfirm: 'Merge',
    mergeExplain: 'Identities, conversations, tags and missing fields of #{gone} move to #{kept}; #{gone} keeps pointing at #{kept}.',
    createdAt: 'created {time}',
  },
  ru: {
    editName: 'Изменить имя', namePlaceholder: 'Имя клиента', fields: 'Поля', addField: 'Добавить поле',
    fieldName: 'Поле', fieldValue: 'Значение', removeField: 'Удалить {name}', editField: 'Изменить {name}',
    noFields: 'Полей пока нет.', cancel: 'Отмена',
    mergeWith: 'Объединить с…', mergeSearch: 'Имя, телефон или e-mail другого клиента',
    mergeNoResults: 'Другой клиент не найден.', mergeTitle: 'Объединить этих клиентов?',
    mergeKept: 'Остаётся (старший)', mergeGone: 'Вливается в него', mergeConfirm: 'Объединить',
    mergeExplain: 'Идентификаторы, разговоры, теги и недостающие поля #{gone} переходят к #{kept}; #{gone} будет указывать на #{kept}.',
    createdAt: 'создан {time}',
  },
});

// The card's own stylesheet, once: app.css stays the inbox's.
if (!document.querySelector('link[data-sb="card-css"]')) {
  document.head.append(h('link', { rel: 'stylesheet', href: '/css/card.css', dataset: { sb: 'card-css' } }));
}

async function patchClient(id, body) {
  try {
    await api('PATCH', `/api/v1/clients/${id}`, body);
    return true;
  } catch (e) {
    alert(e.message);
    return false;
  }
}

// Enter saves, Escape gives up.
function keys(input, save, cancel) {
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') { e.preventDefault(); save(); }
    if (e.key === 'Escape') { e.preventDefault(); e.stopPropagation(); cancel(); }
  });
}

export function nameEditor(c, reload, onChanged) {
  const title = h('h2', { id: 'client-name' }, c.name || `${t('client')} #${c.id}`);
  const edit = h('button', {
    type: 'button', class: 'link small edit-pen', id: 'edit-name', title: t('editName'), 'aria-label': t('editName'),
    onclick: () => {
      const input = h('input', { id: 'name-input', value: c.name || '', placeholder: t('namePlaceholder'), maxlength: 255 });
      const save = async () => {
        if (!(await patchClient(c.id, { name: input.value.trim() || null }))) return;
        onChanged?.(); // the list and the thread head show the name too
        reload(c.id);
      };
      keys(input, save, () => reload(c.id));
      wrap.replaceChildren(h('form', { class: 'inline-form', onsubmit: (e) => { e.preventDefault(); save(); } },
        input, h('button', { type: 'submit', class: 'small' }, t('save'))));
      input.focus();
      input.select();
    },
  }, '✎');
  const wrap = h('div', { class: 'name-row' }, title, edit);
  return wrap;
}

// What the agent typed, as the type the field had: a number stays a number, true/false a
// boolean; anything else is text.
function typed(text, old) {
  const s = text.trim();
  if (typeof old === 'number' && s !== '' && Number.isFinite(Number(s))) return Number(s);
  if (typeof old === 'boolean' && (s === 'true' || s === 'false')) return s === 'true';
  return text;
}

const shown = (v) => (v === null || v === undefined ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v));

export function fieldsEditor(c, reload) {
  const fields = c.custom_fields && typeof c.custom_fields === 'object' ? c.custom_fields : {};
  const list = h('dl', { class: 'fields', id: 'fields' });
  const keysSorted = Object.keys(fields).sort((a, b) => a.localeCompare(b));
  for (const k of keysSorted) {
    const v = fields[k];
    const dd = h('dd', {});
    const value = h('button', {
      type: 'button', class: 'field-value', title: t('editField', { name: k }),
      onclick: () => {
        if (typeof v === 'object' && v !== null) return; // nested values came from an import: shown, not edited here
        const input = h('input', { class: 'field-input', value: shown(v), 'aria-label': k, maxlength: 1000 });
        const save = async () => {
          if (await patchClient(c.id, { custom_fields: { [k]: typed(input.value, v) } })) reload(c.id);
        };
        keys(input, save, () => reload(c.id));
        dd.replaceChildren(h('form', { class: 'inline-form', onsubmit: (e) => { e.preventDefault(); save(); } },
          input, h('button', { type: 'submit', class: 'small' }, t('save'))));
        input.focus();
        input.select();
      },
    }, shown(v) || '—');
    const remove = h('button', {
      type: 'button', class: 'link small field-remove', title: t('removeField', { name: k }), 'aria-label': t('removeField', { name: k }),
      onclick: async () => { if (await patchClient(c.id, { custom_fields: { [k]: null } })) reload(c.id); },
    }, '✕');
    dd.append(value, remove);
    list.append(h('div', { class: 'field', dataset: { field: k } }, h('dt', {}, k), dd));
  }
  const add = h('button', {
    type: 'button', class: 'link small', id: 'add-field',
    onclick: () => {
      const key = h('input', { id: 'field-key', placeholder: t('fieldName'), 'aria-label': t('fieldName'), maxlength: 64, required: true });
      const val = h('input', { id: 'field-value', placeholder: t('fieldValue'), 'aria-label': t('fieldValue'), maxlength: 1000 });
      const save = async () => {
        const k = key.value.trim();
        if (!k) { key.focus(); return; }
        if (await patchClient(c.id, { custom_fields: { [k]: val.value } })) reload(c.id);
      };
      keys(key, () => val.focus(), () => reload(c.id));
      keys(val, save, () => reload(c.id));
      add.replaceWith(h('form', { class: 'inline-form add-field-form', onsubmit: (e) => { e.preventDefault(); save(); } },
        key, val, h('button', { type: 'submit', class: 'small' }, t('save'))));
      key.focus();
    },
  }, `+ ${t('addField')}`);
  return h('div', { class: 'fields-box' },
    keysSorted.length ? list : h('div', { class: 'muted small', id: 'fields' }, t('noFields')),
    add);
}

function identitiesLine(x) {
  return (x.identities || []).map((i) => i.value || i.raw).filter(Boolean).join(', ');
}

function clientBox(x, label, cls) {
  const lang = getLanguage();
  return h('div', { class: `merge-side ${cls}`, dataset: { clientId: x.id } },
    h('div', { class: 'muted small' }, label),
    h('strong', {}, `#${x.id} ${x.name || ''}`),
    h('div', { class: 'small' }, identitiesLine(x)),
    x.created_at ? h('div', { class: 'muted small' }, t('createdAt', { time: fmtTime(x.created_at, lang, true) })) : null);
}

// The older client (lower id, as accepting a suggestion does) is kept: its id is the one
// links, conversations and reports already point at.
function confirmMerge(c, other, reload, onChanged) {
  const [kept, gone] = c.id < other.id ? [c, other] : [other, c];
  const err = h('div', { class: 'error small', role: 'alert' });
  const ok = h('button', { type: 'button', id: 'merge-confirm-ok' }, t('mergeConfirm'));
  const dlg = h('dialog', { class: 'merge-confirm', id: 'merge-confirm' },
    h('h3', {}, t('mergeTitle')),
    h('div', { class: 'merge-pair' }, clientBox(kept, t('mergeKept'), 'kept'), h('div', { class: 'merge-arrow' }, '⟵'), clientBox(gone, t('mergeGone'), 'gone')),
    h('p', { class: 'small' }, t('mergeExplain').replaceAll('{kept}', kept.id).replaceAll('{gone}', gone.id)),
    err,
    h('div', { class: 'row' },
      h('button', { type: 'button', class: 'secondary', id: 'merge-cancel', onclick: () => dlg.close() }, t('cancel')), ok));
  ok.addEventListener('click', async () => {
    ok.disabled = true;
    try {
      await api('POST', `/api/v1/clients/${kept.id}/merge`, { other_id: gone.id });
    } catch (e) {
      err.textContent = e.message;
      ok.disabled = false;
      return;
    }
    dlg.close();
    onChanged?.();
    reload(kept.id);
  });
  dlg.addEventListener('close', () => dlg.remove());
  document.body.append(dlg);
  dlg.showModal();
}

export function mergeSearch(c, reload, onChanged) {
  const box = h('div', { class: 'merge-search' });
  const open = h('button', {
    type: 'button', class: 'small secondary', id: 'merge-open',
    onclick: () => {
      const input = h('input', { id: 'merge-q', type: 'search', placeholder: t('mergeSearch'), 'aria-label': t('mergeSearch'), autocomplete: 'off' });
      const results = h('ul', { class: 'merge-results', id: 'merge-results' });
      let timer = 0, gen = 0;
      const search = async () => {
        const q = input.value.trim();
        const my = ++gen;
        if (q.length < 2) { results.replaceChildren(); return; }
        let d;
        try {
          d = await api('GET', `/api/v1/clients?limit=10&q=${encodeURIComponent(q)}`);
        } catch (e) {
          if (my === gen) results.replaceChildren(h('li', { class: 'error small' }, e.message));
          return;
        }
        if (my !== gen) return;
        const items = (d.items || []).filter((x) => x.id !== c.id);
        results.replaceChildren(...(items.length ? items.map((x) => h('li', {},
          h('button', { type: 'button', class: 'merge-pick', dataset: { clientId: x.id }, onclick: () => confirmMerge(c, x, reload, onChanged) },
            h('strong', {}, `#${x.id} ${x.name || ''}`), ' ', h('span', { class: 'muted small' }, identitiesLine(x)))))
          : [h('li', { class: 'muted small' }, t('mergeNoResults'))]));
      };
      input.addEventListener('input', () => { clearTimeout(timer); timer = setTimeout(search, 250); });
      keys(input, () => { clearTimeout(timer); search(); }, () => box.replaceChildren(open));
      box.replaceChildren(input, results);
      input.focus();
    },
  }, t('mergeWith'));
  box.append(open);
  return box;
}
