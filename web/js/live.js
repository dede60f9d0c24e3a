// The /ws connection: resume from the last event id seen (kept in sessionStorage, so a
// reload of the tab misses nothing either), reconnect with backoff after any drop.
const KEY = 'sb.lastEventId';

export class Live {
  constructor({ onEvent, onTyping, onResync, onState }) {
    this.onEvent = onEvent;
    this.onTyping = onTyping;
    this.onResync = onResync;
    this.onState = onState;
    this.ws = null;
    this.attempt = 0;
    this.stopped = false;
    this.view = null;
    this.timer = null;
    this.pinger = null;
    this.lastId = Number(sessionStorage.getItem(KEY)) || 0;
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    clearInterval(this.pinger);
    if (this.ws) this.ws.close(1000);
    this.ws = null;
  }

  connect() {
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(`${proto}//${location.host}/ws`, 'switchboard.v1');
    this.ws = ws;
    ws.onopen = () => {
      const again = this.opened;
      this.opened = true;
      this.attempt = 0;
      // Resume first: the server holds live events until it, so order is kept. A tab with
      // no id yet starts from now (the lists it loads are the past).
      if (this.lastId > 0) this.send({ type: 'resume', after: this.lastId });
      else {
        this.send({ type: 'ping' });
        // Dropped before any event arrived: no id to resume from, so reload what is shown.
        if (again) this.onResync();
      }
      if (this.view !== null) this.send({ type: 'view', conversation_id: this.view });
      this.onState(true);
      clearInterval(this.pinger);
      this.pinger = setInterval(() => this.send({ type: 'ping' }), 25000);
    };
    ws.onmessage = (m) => {
      let msg;
      try { msg = JSON.parse(m.data); } catch { return; }
      if (msg.type === 'event') {
        if (msg.id <= this.lastId) return; // already seen (a resume overlapping live ones)
        this.lastId = msg.id;
        sessionStorage.setItem(KEY, String(msg.id));
        this.onEvent(msg);
      } else if (msg.type === 'typing') {
        this.onTyping(msg);
      } else if (msg.type === 'resync') {
        this.onResync();
      }
    };
    ws.onclose = () => {
      clearInterval(this.pinger);
      if (this.ws !== ws) return;
      this.ws = null;
      this.onState(false);
      if (this.stopped) return;
      // 0.5 s, 1 s, 2 s … up to 10 s, with jitter so a restarted server is not stormed.
      const base = Math.min(10000, 500 * 2 ** this.attempt++);
      this.timer = setTimeout(() => this.connect(), base / 2 + Math.random() * base / 2);
    };
    ws.onerror = () => {}; // onclose follows
  }

  send(obj) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(obj));
  }

  setView(id) {
    this.view = id;
    this.send({ type: 'view', conversation_id: id });
  }

  typing(id) {
    this.send({ type: 'typing', conversation_id: id });
  }
}
