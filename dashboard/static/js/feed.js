// The one live connection: websocket /api/v1/feed, resumed with ?after=<last event id> after
// any drop, so nothing is missed and nothing repeats. No polling: the page only reconnects.
export class Feed {
  constructor({ onEvent, onState, onAuthLost }) {
    this.onEvent = onEvent;
    this.onState = onState;
    this.onAuthLost = onAuthLost;
    this.lastEventId = null;
    this.lastEventAt = null;
    this.ws = null;
    this.retryMs = 1000;
    this.stopped = false;
    this.timer = null;
  }

  url() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const after = this.lastEventId === null ? "" : `?after=${this.lastEventId}`;
    return `${scheme}://${location.host}/api/v1/feed${after}`;
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.ws) this.ws.close(1000);
  }

  connect() {
    const ws = new WebSocket(this.url());
    this.ws = ws;
    ws.onopen = () => {
      this.retryMs = 1000;
      this.onState({ connected: true, reconnected: this.lastEventId !== null });
    };
    ws.onmessage = (msg) => {
      let event;
      try {
        event = JSON.parse(msg.data);
      } catch {
        return;
      }
      if (typeof event.event_id !== "number") return;
      if (this.lastEventId !== null && event.event_id <= this.lastEventId) return;
      this.lastEventId = event.event_id;
      this.lastEventAt = Date.now();
      this.onEvent(event);
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.onState({ connected: false });
      if (ev.code === 4401 || ev.code === 4403) {
        this.onAuthLost(ev.code);
        return;
      }
      if (this.stopped) return;
      // Exponential backoff with jitter, at most 15 s (so a restarted server is not stampeded).
      const wait = this.retryMs * (0.5 + Math.random());
      this.retryMs = Math.min(this.retryMs * 2, 15000);
      this.timer = setTimeout(() => this.connect(), wait);
    };
  }
}
