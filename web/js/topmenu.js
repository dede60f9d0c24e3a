// The top bar's links (admin, campaigns, language, shortcuts, sign out) on a narrow screen:
// behind one menu button, so the bar never overflows a phone whatever the role and the
// language. On a wide screen the wrapper is display: contents and the links sit in the bar
// as before (app.css, "top bar menu").
import { h } from './dom.js';
import { t, addStrings } from './i18n.js';

addStrings({ en: { menu: 'Menu' }, ru: { menu: 'Меню' } });

let closeOpen = null; // the menu of the bar on screen; one document listener for all

function barsIcon() { // SVG: a server's browser may have no font with "☰"
  const NS = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(NS, 'svg');
  for (const [k, v] of Object.entries({ viewBox: '0 0 24 24', width: '20', height: '20', 'aria-hidden': 'true' })) svg.setAttribute(k, v);
  const path = document.createElementNS(NS, 'path');
  path.setAttribute('fill', 'currentColor');
  path.setAttribute('d', 'M3 6h18v2H3zm0 5h18v2H3zm0 5h18v2H3z');
  svg.append(path);
  return svg;
}

// [button, menu] for the header; `items` keep their ids and handlers.
export function topMenu(...items) {
  const menu = h('span', { class: 'top-menu', id: 'top-menu' }, ...items);
  const btn = h('button', {
    type: 'button', class: 'link top-menu-btn', id: 'top-menu-btn', title: t('menu'), 'aria-label': t('menu'),
    'aria-haspopup': 'true', 'aria-expanded': 'false', 'aria-controls': 'top-menu',
  }, barsIcon());
  const set = (open) => {
    menu.classList.toggle('open', open);
    btn.setAttribute('aria-expanded', String(open));
  };
  btn.addEventListener('click', (e) => { e.stopPropagation(); set(!menu.classList.contains('open')); });
  menu.addEventListener('click', () => set(false)); // a choice closes it
  menu.addEventListener('keydown', (e) => { if (e.key === 'Escape') { set(false); btn.focus(); } });
  if (!closeOpen) document.addEventListener('click', () => closeOpen?.());
  closeOpen = () => set(false);
  return [btn, menu];
}
