// English and Russian strings. The language is the account's locale when signed in, else
// the choice saved in this browser, else Russian when the browser asks for it.
const STRINGS = {
  en: {
    signIn: 'Sign in', email: 'E-mail', password: 'Password', signOut: 'Sign out',
    inbox: 'Inbox', search: 'Search name, phone, e-mail, text…',
    open: 'Open', pending: 'Pending', resolved: 'Resolved', snoozed: 'Snoozed', allStatuses: 'All',
    mine: 'Mine', unassigned: 'Unassigned', everyone: 'All', allChannels: 'All channels',
    noConversations: 'No conversations here.', loading: 'Loading…', loadEarlier: 'Load earlier',
    pickConversation: 'Pick a conversation on the left.', back: 'Back',
    resolve: 'Resolve', reopen: 'Reopen', markPending: 'Pending', assignTo: 'Assignee',
    reply: 'Reply', note: 'Note', send: 'Send', addNote: 'Add note',
    replyPlaceholder: 'Write a reply… (Ctrl+Enter sends)', notePlaceholder: 'Private note for colleagues… (Ctrl+Enter)',
    privateNote: 'Private note', autoReply: 'Auto-reply', bounce: 'Bounce', parseError: 'Unparsed', edited: 'edited',
    queued: 'Queued', sent: 'Sent', delivered: 'Delivered', read: 'Read', failed: 'Failed', retry: 'Retry',
    call: 'Call', incomingCall: 'Incoming call', outgoingCall: 'Outgoing call', missedCall: 'Missed call',
    duration: 'Duration', recording: 'Recording', formLead: 'Form lead', field: 'Field', value: 'Value',
    source: 'Source', from: 'From', subject: 'Subject', noSubject: '(no subject)', showTall: 'Taller',
    emailBlocked: 'Remote content and scripts are blocked.', emailNoSanitizer: 'HTML view unavailable; showing the text.',
    client: 'Client', identities: 'Identities', tags: 'Tags', timeline: 'Timeline', company: 'Company',
    mergeSuggestions: 'Merge suggestions', accept: 'Merge', dismiss: 'Dismiss', clientCard: 'Client',
    typing: '{name} is typing…', live: 'Live', offline: 'Reconnecting…', shortcuts: 'Keyboard shortcuts',
    kNext: 'Next conversation', kPrev: 'Previous conversation', kReply: 'Reply', kNote: 'Note',
    kResolve: 'Resolve / reopen', kSearch: 'Search', kHelp: 'This list', kEsc: 'Close / leave the box',
    close: 'Close', language: 'Язык: русский', errorPrefix: 'Error', sendFailed: 'Not sent: {msg}',
    me: 'me', unread: 'unread', newCount: '{n} new',
    snooze: 'Snooze', snooze_h1: 'for an hour', snooze_h3: 'for 3 hours', snooze_tomorrow: 'until tomorrow 9:00',
    snooze_monday: 'until Monday 9:00', snoozedUntil: 'until {time}', editTags: 'Edit tags', save: 'Save',
    tagsHint: 'comma separated',
    st_open: 'Open', st_pending: 'Pending', st_resolved: 'Resolved', st_snoozed: 'Snoozed',
    admin: 'Admin', channels: 'Channels', users: 'Users', quarantine: 'Quarantine', kind: 'Kind', name: 'Name',
    endpoint: 'Webhook / form URL', copy: 'Copy', embed: 'Embed snippet', addChannel: 'Add a channel',
    otherSettings: 'Other settings', add: 'Add', addUser: 'Add a user', role: 'Role', time: 'Time',
    quarantineEmpty: 'Nothing in quarantine.', download: 'Download', markResolved: 'Resolved',
  },
  ru: {
    signIn: 'Войти', email: 'E-mail', password: 'Пароль', signOut: 'Выйти',
    inbox: 'Входящие', search: 'Имя, телефон, e-mail, текст…',
    open: 'Открытые', pending: 'Ожидают', resolved: 'Решённые', snoozed: 'Отложенные', allStatuses: 'Все',
    mine: 'Мои', unassigned: 'Без ответственного', everyone: 'Все', allChannels: 'Все каналы',
    noConversations: 'Здесь нет диалогов.', loading: 'Загрузка…', loadEarlier: 'Показать раньше',
    pickConversation: 'Выберите диалог слева.', back: 'Назад',
    resolve: 'Решено', reopen: 'Открыть снова', markPending: 'Ожидает', assignTo: 'Ответственный',
    reply: 'Ответ', note: 'Заметка', send: 'Отправить', addNote: 'Добавить заметку',
    replyPlaceholder: 'Напишите ответ… (Ctrl+Enter — отправить)', notePlaceholder: 'Заметка для коллег… (Ctrl+Enter)',
    privateNote: 'Внутренняя заметка', autoReply: 'Автоответ', bounce: 'Недоставка', parseError: 'Не разобрано', edited: 'изменено',
    queued: 'В очереди', sent: 'Отправлено', delivered: 'Доставлено', read: 'Прочитано', failed: 'Ошибка', retry: 'Повторить',
    call: 'Звонок', incomingCall: 'Входящий звонок', outgoingCall: 'Исходящий звонок', missedCall: 'Пропущенный звонок',
    duration: 'Длительность', recording: 'Запись', formLead: 'Заявка с сайта', field: 'Поле', value: 'Значение',
    source: 'Источник', from: 'От', subject: 'Тема', noSubject: '(без темы)', showTall: 'Выше',
    emailBlocked: 'Внешнее содержимое и скрипты заблокированы.', emailNoSanitizer: 'HTML недоступен; показан текст.',
    client: 'Клиент', identities: 'Контакты', tags: 'Метки', timeline: 'История', company: 'Компания',
    mergeSuggestions: 'Возможные дубли', accept: 'Объединить', dismiss: 'Отклонить', clientCard: 'Клиент',
    typing: '{name} печатает…', live: 'Онлайн', offline: 'Переподключение…', shortcuts: 'Клавиши',
    kNext: 'Следующий диалог', kPrev: 'Предыдущий диалог', kReply: 'Ответ', kNote: 'Заметка',
    kResolve: 'Решено / открыть снова', kSearch: 'Поиск', kHelp: 'Этот список', kEsc: 'Закрыть / выйти из поля',
    close: 'Закрыть', language: 'Language: English', errorPrefix: 'Ошибка', sendFailed: 'Не отправлено: {msg}',
    me: 'я', unread: 'непрочитанных', newCount: 'новых: {n}',
    snooze: 'Отложить', snooze_h1: 'на час', snooze_h3: 'на 3 часа', snooze_tomorrow: 'до завтра 9:00',
    snooze_monday: 'до понедельника 9:00', snoozedUntil: 'до {time}', editTags: 'Изменить метки', save: 'Сохранить',
    tagsHint: 'через запятую',
    st_open: 'Открыт', st_pending: 'Ожидает', st_resolved: 'Решён', st_snoozed: 'Отложен',
    admin: 'Настройки', channels: 'Каналы', users: 'Пользователи', quarantine: 'Карантин', kind: 'Тип', name: 'Название',
    endpoint: 'Адрес вебхука / формы', copy: 'Копировать', embed: 'Код формы', addChannel: 'Добавить канал',
    otherSettings: 'Другие параметры', add: 'Добавить', addUser: 'Добавить пользователя', role: 'Роль', time: 'Время',
    quarantineEmpty: 'Карантин пуст.', download: 'Скачать', markResolved: 'Разобрано',
  },
};

let lang = 'en';

export function pickLanguage(userLocale) {
  // Signed in, the account's language (saved by the RU/EN toggle) wins, so every browser
  // of the user agrees; this browser's own choice covers the sign-in page.
  if (userLocale && /^ru/i.test(userLocale)) return 'ru';
  if (userLocale && /^en/i.test(userLocale)) return 'en';
  const saved = localStorage.getItem('sb.lang');
  if (saved === 'ru' || saved === 'en') return saved;
  const asks = navigator.languages?.length ? navigator.languages : [navigator.language || 'en'];
  for (const l of asks) {
    if (/^ru/i.test(l)) return 'ru';
    if (/^en/i.test(l)) return 'en';
  }
  return 'en';
}

export function setLanguage(l) {
  lang = STRINGS[l] ? l : 'en';
  document.documentElement.lang = lang;
}

export function saveLanguage(l) {
  localStorage.setItem('sb.lang', l);
  setLanguage(l);
}

export const getLanguage = () => lang;

// A page module (reports.js, campaigns.js, …) brings its own strings, so the inbox's table
// above stays the inbox's: addStrings({ en: {…}, ru: {…} }) at the module's top level.
export function addStrings(more) {
  for (const [l, table] of Object.entries(more)) Object.assign((STRINGS[l] ||= {}), table);
}

export function t(key, vars) {
  let s = STRINGS[lang][key] ?? STRINGS.en[key] ?? key;
  if (vars) for (const [k, v] of Object.entries(vars)) s = s.replace(`{${k}}`, v);
  return s;
}
