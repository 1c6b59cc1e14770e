// signaling.js: one WebSocket to a router (docs/signaling.md), JSON messages in and out.

/** Close codes the router uses for fatal join errors (docs/signaling.md). */
export const CLOSE_CODES = Object.freeze({
  4001: "token_invalid", 4002: "token_expired", 4003: "wrong_router", 4004: "room_full",
  4005: "router_full", 4006: "draining", 4007: "mode_mismatch", 4008: "join_timeout",
  4009: "replaced", 4010: "transport_closed",
});

const FATAL = new Set(Object.values(CLOSE_CODES));
const JOIN_TIMEOUT_MS = 10000;
const PING_EVERY_MS = 10000;
const PONG_WITHIN_MS = 8000;

export class SignalingError extends Error {
  constructor(code, message, closeCode = null) {
    super(message || code);
    this.name = "SignalingError";
    this.code = code;
    this.closeCode = closeCode;
  }
}

/**
 * `open(token)` resolves with the router's `joined` message or rejects with a SignalingError
 * naming the refusal. Afterwards messages go to `on(type, handler)` handlers, and `onlost(code)`
 * is called once if the connection ends without `close()` having been called.
 */
export class Signaling {
  constructor(url) {
    this.url = url;
    this.ws = null;
    this.handlers = new Map();
    this.onlost = null;
    this.closing = false;
    this.fatal = null;
    this.pingTimer = null;
    this.pongDeadline = null;
    this.pingId = 0;
    /** Pongs received: each one proves the router handled everything sent before its ping. */
    this.pongs = 0;
  }

  on(type, handler) {
    this.handlers.set(type, handler);
  }

  open(token, roomOptions) {
    return new Promise((resolve, reject) => {
      let joined = false;
      let ws;
      try {
        ws = new WebSocket(this.url);
      } catch (err) {
        reject(new SignalingError("signaling_lost", String(err)));
        return;
      }
      this.ws = ws;
      const timer = setTimeout(() => {
        if (!joined) {
          reject(new SignalingError("join_timeout", "the router did not answer the join"));
          ws.close();
        }
      }, JOIN_TIMEOUT_MS);
      ws.onopen = () => {
        const join = { type: "join", token };
        if (roomOptions) join.room_options = roomOptions;
        this.send(join);
      };
      ws.onmessage = (event) => {
        let msg;
        try {
          msg = JSON.parse(event.data);
        } catch {
          return;
        }
        if (!msg || typeof msg !== "object") return;
        if (msg.type === "error" && FATAL.has(msg.code)) this.fatal = msg;
        if (msg.type === "pong") {
          this.pongDeadline = null;
          this.pongs += 1;
          return;
        }
        if (!joined) {
          if (msg.type === "joined") {
            joined = true;
            clearTimeout(timer);
            this.startPings();
            resolve(msg);
          }
          return;
        }
        const handler = this.handlers.get(msg.type);
        if (handler) handler(msg);
      };
      ws.onclose = (event) => {
        clearTimeout(timer);
        this.stopPings();
        const code = this.fatal?.code ?? CLOSE_CODES[event.code] ?? "signaling_lost";
        if (!joined) {
          reject(new SignalingError(code, this.fatal?.message, event.code));
        } else if (!this.closing && this.onlost) {
          const lost = this.onlost;
          this.onlost = null;
          lost(code, event.code);
        }
      };
      ws.onerror = () => {};
    });
  }

  send(message) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify(message));
      return true;
    }
    return false;
  }

  startPings() {
    this.pingTimer = setInterval(() => {
      if (this.pongDeadline !== null && performance.now() > this.pongDeadline) {
        this.ws?.close(4000, "no pong");
        return;
      }
      if (this.pongDeadline === null) this.pongDeadline = performance.now() + PONG_WITHIN_MS;
      this.send({ type: "ping", id: String(++this.pingId) });
    }, PING_EVERY_MS);
  }

  stopPings() {
    clearInterval(this.pingTimer);
    this.pingTimer = null;
  }

  /** Leave politely (when `leave` is set) and close; no `onlost` afterwards. */
  close(leave = false) {
    this.closing = true;
    this.stopPings();
    if (leave) this.send({ type: "leave" });
    const ws = this.ws;
    if (ws && ws.readyState <= WebSocket.OPEN) {
      if (leave) setTimeout(() => ws.close(1000, "left"), 300);
      else ws.close(1000, "closing");
    }
  }
}
