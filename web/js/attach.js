// Files in the thread and in the reply box.
//  - attachmentList(it): a chip per file of an interaction (icon, name, size, download link),
//    a thumbnail for raster images; files still being fetched from the provider say so.
//  - composerFiles(form, textarea, errorBox): the paperclip, drag-and-drop and paste; each file is
//    uploaded at once (POST /api/v1/uploads) and shown as a pending chip with remove; ids() gives
//    the upload ids for the reply's "attachment_ids".
import { h } from './dom.js';
import { t, addStrings } from './i18n.js';

addStrings({
  en: {
    attachFile: 'Attach a file', removeFile: 'Remove', uploading: 'uploading…',
    fileTooLarge: '{name}: the file is too large ({msg})', uploadFailed: '{name}: {msg}',
    stillFetching: 'being fetched…', download: 'Download', filesWithRepliesOnly: 'Files go with replies, not notes',
    waitUploads: 'Wait until the files are uploaded',
  },
  ru: {
    attachFile: 'Прикрепить файл', removeFile: 'Убрать', uploading: 'загружается…',
    fileTooLarge: '{name}: файл слишком большой ({msg})', uploadFailed: '{name}: {msg}',
    stillFetching: 'загружается у провайдера…', download: 'Скачать', filesWithRepliesOnly: 'Файлы отправляются с ответом, не с заметкой',
    waitUploads: 'Дождитесь загрузки файлов',
  },
});

if (!document.querySelector('link[data-sb="attach-css"]')) {
  document.head.append(h('link', { rel: 'stylesheet', href: '/css/attach.css', dataset: { sb: 'attach-css' } }));
}

const RASTER = new Set(['image/png', 'image/jpeg', 'image/gif', 'image/webp']);

export function fmtSize(n) {
  if (n === null || n === undefined) return '';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(n < 10240 ? 1 : 0)} KB`;
  return `${(n / 1048576).toFixed(1)} MB`;
}

function fileIcon(type) {
  // Symbols from common text fonts, like the channel icons (dom.js), not colour emoji.
  if (type?.startsWith('image/')) return '▣';
  if (type === 'application/pdf') return '▤';
  if (type?.startsWith('audio/')) return '♪';
  if (type?.startsWith('video/')) return '▶';
  return '◫';
}

function chip(a) {
  const name = a.filename || `${t('download')} #${a.id}`;
  const ready = a.fetched !== false;
  const inner = [
    h('span', { class: 'att-icon', 'aria-hidden': 'true' }, fileIcon(a.content_type)),
    h('span', { class: 'att-name' }, name),
    h('span', { class: 'att-size muted' }, ready ? fmtSize(a.size) : t('stillFetching')),
  ];
  const attrs = { class: `att-chip${ready ? '' : ' pending'}`, title: name, dataset: { id: a.id } };
  return ready
    ? h('a', { ...attrs, href: a.url || `/api/v1/attachments/${a.id}`, download: name, rel: 'noopener' }, inner)
    : h('span', attrs, inner);
}

export function attachmentList(it) {
  const files = (it.attachments || []).filter((a) => !(a.inline && a.content_id && it.kind === 'email' && it.html));
  if (!files.length) return null;
  return h('div', { class: 'attachments' },
    files.map((a) => {
      const c = chip(a);
      if (a.fetched === false || !RASTER.has(a.content_type)) return c;
      const url = a.url || `/api/v1/attachments/${a.id}`;
      return h('figure', { class: 'att-thumb' },
        h('a', { href: url, target: '_blank', rel: 'noopener noreferrer' },
          h('img', { src: url, alt: a.filename || '', loading: 'lazy' })),
        c);
    }));
}

export function composerFiles(form, ta, errBox) {
  const pending = []; // { file, id, chip, promise, failed }
  const list = h('div', { class: 'att-pending', id: 'composer-files' });
  const input = h('input', { type: 'file', multiple: true, hidden: true, id: 'composer-file' });
  const btn = h('button', {
    type: 'button', class: 'attach-btn secondary small', id: 'attach', title: t('attachFile'), 'aria-label': t('attachFile'),
    onclick: () => input.click(),
  }, '⊕');

  function remove(p) {
    const i = pending.indexOf(p);
    if (i >= 0) pending.splice(i, 1);
    p.chip.remove();
  }

  async function upload(p) {
    const res = await fetch(`/api/v1/uploads?filename=${encodeURIComponent(p.file.name || 'file')}`, {
      method: 'POST', credentials: 'same-origin',
      headers: { 'Content-Type': p.file.type || 'application/octet-stream' },
      body: p.file,
    });
    const data = await res.json().catch(() => null);
    if (!res.ok) {
      const msg = data?.error?.message || `HTTP ${res.status}`;
      throw new Error(res.status === 413 ? t('fileTooLarge', { name: p.file.name, msg }) : t('uploadFailed', { name: p.file.name, msg }));
    }
    return data.id;
  }

  function add(files) {
    for (const file of files) {
      const size = h('span', { class: 'att-size muted' }, t('uploading'));
      const p = { file, id: null, failed: false };
      p.chip = h('span', { class: 'att-chip pending', title: file.name },
        h('span', { class: 'att-icon', 'aria-hidden': 'true' }, fileIcon(file.type)),
        h('span', { class: 'att-name' }, file.name), size,
        h('button', { type: 'button', class: 'link small att-remove', title: t('removeFile'), 'aria-label': t('removeFile'), onclick: () => remove(p) }, '×'));
      p.promise = upload(p).then((id) => {
        p.id = id;
        p.chip.classList.remove('pending');
        p.chip.dataset.id = id;
        size.textContent = fmtSize(file.size);
      }).catch((e) => {
        p.failed = true;
        errBox.textContent = e.message;
        remove(p);
      });
      pending.push(p);
      list.append(p.chip);
    }
  }

  input.addEventListener('change', () => { add([...input.files]); input.value = ''; });
  form.addEventListener('dragover', (e) => {
    if ([...(e.dataTransfer?.types || [])].includes('Files')) { e.preventDefault(); form.classList.add('drop'); }
  });
  form.addEventListener('dragleave', () => form.classList.remove('drop'));
  form.addEventListener('drop', (e) => {
    form.classList.remove('drop');
    if (e.dataTransfer?.files?.length) { e.preventDefault(); add([...e.dataTransfer.files]); }
  });
  ta.addEventListener('paste', (e) => {
    const files = [...(e.clipboardData?.files || [])];
    if (files.length) { e.preventDefault(); add(files); }
  });

  return {
    button: btn, input, list,
    // Resolves once every pending upload has finished (failed ones are dropped).
    ready: () => Promise.all(pending.map((p) => p.promise)),
    ids: () => pending.filter((p) => p.id).map((p) => p.id),
    count: () => pending.length,
    clear: () => { pending.splice(0).forEach((p) => p.chip.remove()); },
  };
}
