// wsd.js: a client for wsd's chat protocol v1 (docs/protocol.md), served
// by wsd itself at /wsd.js. One ES module, no build step, no dependency;
// it runs in browsers and in Node (18+). It never builds HTML: every text
// it hands the application is a string to show with textContent.
//
//   import { WsdClient } from "/wsd.js";
//   const c = new WsdClient("ws://127.0.0.1:8888/", { key: "alice", rooms: ["lobby"] });
//   c.addEventListener("message", (e) => console.log(e.detail.from, e.detail.text));
//   const ack = await c.send("lobby", "hello"); // {seq, epoch, ts, duplicate}
//
// What it does so the application need not: reconnects with full-jitter
// exponential back-off (not after 4001 replaced, nor after a backend's
// 4000-4999 disconnect); keeps each room's seq and epoch and rejoins every
// room with since+epoch after a reconnect; resends unacked sends with the
// same id (the server's dedup answers a repeat with the original ack); sees
// a gap in a room's seq while connected and rejoins with since to fill it;
// drops a message it already has (seq not above the last seen); says
// recovered:false when the server could not replay what was missed;
// inflates gzip frames with DecompressionStream in arrival order.

/** The subprotocol that selects chat protocol v1. */
export const PROTOCOL = "wsd.v1";

/** Defaults, in milliseconds. */
export const DEFAULTS = Object.freeze({
  backoffBase: 500, // the first retry waits 0..backoffBase
  backoffCap: 15000, // no retry waits longer than this
  // A send first written more than this long ago is not resent after a
  // reconnect: the server's dedup window (-dedup-window, at least 2 min)
  // may have forgotten its id, and a resend could double it. It fails.
  resendWithin: 110000,
});

/** The event every WsdClient event is: its data is in detail. */
export class WsdEvent extends Event {
  constructor(type, detail) {
    super(type);
    this.detail = detail;
  }
}

/** A refused command (the server's error envelope) or a send that failed. */
export class WsdError extends Error {
  constructor(code, reason, room) {
    super(reason);
    this.name = "WsdError";
    this.code = code; // the protocol's number, or a string of this module's: "closed", "replaced", "left", "unconfirmed", "stale"
    this.room = room;
  }
}

/**
 * fullJitter is the delay before retry number attempt (0-based): uniform in
 * [0, min(cap, base·2^attempt)).
 */
export function fullJitter(attempt, base, cap, random = Math.random) {
  return Math.floor(random() * Math.min(cap, base * 2 ** Math.min(attempt, 30)));
}

const closeStops = (code) => code >= 4000 && code <= 4999; // replaced, or a backend's disconnect

let idPrefix = null;
function newPrefix() {
  const b = new Uint8Array(6);
  if (globalThis.crypto && globalThis.crypto.getRandomValues) globalThis.crypto.getRandomValues(b);
  else for (let i = 0; i < b.length; i++) b[i] = Math.floor(Math.random() * 256); // Node 18 has no global crypto
  return Array.from(b, (x) => x.toString(36).padStart(2, "0")).join("");
}

/**
 * A connection to wsd speaking chat protocol v1, kept up across drops.
 * Events (WsdEvent, data in detail): message, joined, left, presence,
 * state, error. See wsd.d.ts for their shapes.
 */
export class WsdClient extends EventTarget {
  /**
   * @param {string} url ws:// or wss:// URL of wsd's endpoint (its query is kept)
   * @param {object} opts key (required), token, gzip, rooms, history,
   *   and for tests WebSocket, setTimeout, clearTimeout, random, now
   */
  constructor(url, opts = {}) {
    super();
    if (typeof opts.key !== "string" || opts.key === "") throw new TypeError("WsdClient: opts.key is required");
    this.url = url;
    this.key = opts.key;
    this.token = opts.token || "";
    this.gzip = !!opts.gzip && typeof DecompressionStream === "function";
    this.state = "connecting";
    this.backoffBase = opts.backoffBase ?? DEFAULTS.backoffBase;
    this.backoffCap = opts.backoffCap ?? DEFAULTS.backoffCap;
    this.resendWithin = opts.resendWithin ?? DEFAULTS.resendWithin;
    this._WS = opts.WebSocket || globalThis.WebSocket;
    this._setTimeout = opts.setTimeout || globalThis.setTimeout.bind(globalThis);
    this._clearTimeout = opts.clearTimeout || globalThis.clearTimeout.bind(globalThis);
    this._random = opts.random || Math.random;
    this._now = opts.now || Date.now;
    if (idPrefix === null) idPrefix = newPrefix();
    this._prefix = idPrefix + "-" + Math.floor(this._random() * 1e9).toString(36);
    this._n = 0;

    this._rooms = new Map(); // room -> roomState, in join order
    this._sends = new Map(); // id -> pending send, in send order
    this._requests = new Map(); // id -> pending members/leave request
    this._ws = null;
    this._attempt = 0; // failed connects since the last one that joined
    this._timer = 0;
    this._stopped = false;
    this._chain = Promise.resolve(); // inflates and handles frames in arrival order
    this._inflight = 0;

    const hist = opts.history ?? 0;
    for (const r of opts.rooms && opts.rooms.length ? opts.rooms : [""]) this._room(r, hist);
    // As with WebSocket, nothing is dispatched before the constructor's
    // caller has added its listeners.
    queueMicrotask(() => this._connect());
  }

  /** Rooms joined or being joined, in join order. */
  get rooms() {
    return Array.from(this._rooms.keys());
  }

  /** The last seq and epoch seen in a room, or undefined. */
  position(room) {
    const r = this._rooms.get(room);
    return r && r.epoch ? { seq: r.seq, epoch: r.epoch } : undefined;
  }

  /**
   * join adds a room on this connection (and every later one). history: the
   * last K messages to replay the first time. Resolves with the joined detail.
   */
  join(room, { history = 0 } = {}) {
    let r = this._rooms.get(room);
    if (!r) {
      r = this._room(room, history);
      if (this._isOpen()) this._sendJoin(r);
    } else if (r.live && r.waiters.length === 0) {
      return Promise.resolve(r.lastJoined);
    }
    return new Promise((resolve, reject) => r.waiters.push({ resolve, reject }));
  }

  /** leave drops a room; its unsent messages fail. Resolves when the server says left. */
  leave(room) {
    const r = this._rooms.get(room);
    if (!r) return Promise.resolve({ room });
    this._rooms.delete(room);
    this._fail(new WsdError("left", "left the room", room), r.waiters.splice(0));
    for (const [id, s] of this._sends) {
      if (s.room === room && !s.written) {
        this._sends.delete(id);
        s.reject(new WsdError("left", "left the room before the message was sent", room));
      }
    }
    if (!this._isOpen()) return Promise.resolve({ room });
    const id = this._id("l");
    return new Promise((resolve, reject) => {
      this._requests.set(id, { cmd: { type: "leave", room, id }, resolve, reject, once: true });
      this._write({ type: "leave", room, id });
    });
  }

  /**
   * send posts text to a room the client has joined. Resolves with the ack
   * {seq, epoch, ts, duplicate} once wsd has it, across reconnects; rejects
   * with a WsdError when it is refused or cannot be confirmed. The
   * promise's id is the send's id, which its message event carries.
   */
  send(room, text) {
    if (this._stopped) return Promise.reject(new WsdError(this.state, "the client is " + this.state, room));
    const r = this._rooms.get(room);
    if (!r) return Promise.reject(new WsdError(112, "not a member of this room: join it first", room));
    const id = this._id("s");
    const p = new Promise((resolve, reject) => {
      const s = { id, room, text: String(text), resolve, reject, written: 0, epoch: "" };
      this._sends.set(id, s);
      if (r.live && this._isOpen()) this._writeSend(s, r);
    });
    p.id = id; // the id its message will carry: an app matches its "sending…" bubble with it
    return p;
  }

  /** members asks who is in a room: resolves with {count, members, truncated}. */
  members(room) {
    const id = this._id("m");
    return new Promise((resolve, reject) => {
      this._requests.set(id, { cmd: { type: "members", room, id }, resolve, reject });
      if (this._isOpen()) this._write({ type: "members", room, id });
    });
  }

  /** close ends the connection for good; pending sends fail with "closed". */
  close() {
    this._stop("closed", 1000, "");
    if (this._ws) {
      const ws = this._ws;
      this._ws = null;
      try {
        ws.close(1000);
      } catch (_) {
        /* already closing */
      }
    }
  }

  /** on(type, fn) is addEventListener with fn(detail); it returns the remover. */
  on(type, fn) {
    const l = (e) => fn(e.detail);
    this.addEventListener(type, l);
    return () => this.removeEventListener(type, l);
  }

  // --- internals ---

  _room(room, history) {
    // seq/epoch: the last message accounted for. live: joined on this socket.
    // resync: a join with since is in flight to fill a gap; held: messages
    // that arrived meanwhile. histLast: the last history message delivered.
    const r = { room, seq: 0, epoch: "", history, live: false, resync: false, held: [], histLast: 0, replayTo: 0, waiters: [], lastJoined: null };
    this._rooms.set(room, r);
    return r;
  }

  _id(kind) {
    return this._prefix + "-" + kind + (++this._n).toString(36);
  }

  _emit(type, detail) {
    this.dispatchEvent(new WsdEvent(type, detail));
  }

  _setState(state, extra = {}) {
    this.state = state;
    this._emit("state", { state, code: 0, reason: "", retryIn: null, attempt: this._attempt, ...extra });
  }

  _isOpen() {
    return this._ws !== null && this._ws.readyState === 1 && !this._stopped;
  }

  _write(cmd) {
    try {
      this._ws.send(JSON.stringify(cmd));
      return true;
    } catch (_) {
      return false; // the close event follows
    }
  }

  _writeSend(s, r) {
    if (!s.written) s.written = this._now();
    s.epoch = r.epoch;
    this._write({ type: "send", room: s.room, id: s.id, text: s.text });
  }

  _sendJoin(r) {
    r.joinId = this._id("j");
    const cmd = { type: "join", room: r.room, id: r.joinId };
    if (r.epoch) {
      cmd.since = r.seq;
      cmd.epoch = r.epoch;
    } else if (r.history > 0) {
      cmd.history = r.history;
    }
    r.asked = cmd;
    this._write(cmd);
  }

  _wsURL(first) {
    const u = new URL(this.url);
    const q = u.searchParams;
    q.set("specialKey", this.key);
    if (this.gzip) q.set("support_gzip", "1");
    if (first) {
      if (first.room !== "") q.set("room", first.room);
      if (first.epoch) {
        q.set("since", String(first.seq));
        q.set("epoch", first.epoch);
      } else if (first.history > 0) {
        q.set("history", String(first.history));
      }
      first.asked = first.epoch ? { since: first.seq, epoch: first.epoch } : { history: first.history };
    }
    if (this.token) q.set("token", this.token);
    return u.toString();
  }

  _connect() {
    this._timer = 0;
    if (this._stopped) return;
    for (const r of this._rooms.values()) {
      r.live = false;
      r.resync = false;
      r.held = [];
    }
    // With no room wanted the connection still has a first room: the
    // global one, left as soon as it is joined.
    this._noRoom = this._rooms.size === 0;
    const first = this._noRoom ? null : this._rooms.values().next().value;
    this._first = first;
    this._setState("connecting");
    let ws;
    try {
      ws = new this._WS(this._wsURL(first), PROTOCOL);
    } catch (err) {
      this._stop("closed", 0, "cannot connect: " + err.message);
      this._emit("error", { code: "connect", reason: String(err.message), room: undefined });
      return;
    }
    ws.binaryType = "arraybuffer";
    this._ws = ws;
    ws.onopen = () => {
      if (this._ws !== ws) return;
      this._setState("open", { extensions: ws.extensions || "", protocol: ws.protocol || "" });
      if (this._noRoom) this._write({ type: "leave", room: "" });
      for (const r of this._rooms.values()) if (r !== first) this._sendJoin(r);
      for (const q of this._requests.values()) if (!q.once) this._write(q.cmd);
    };
    ws.onmessage = (e) => {
      if (this._ws !== ws) return;
      this._frame(e.data, ws);
    };
    ws.onclose = (e) => {
      if (this._ws !== ws) return;
      this._ws = null;
      this._closed(e.code, e.reason || "");
    };
    ws.onerror = () => {}; // a close event always follows
  }

  // _frame handles one frame in arrival order: a binary (gzip) frame is
  // inflated first, and text frames behind it wait for it.
  _frame(data, ws) {
    if (typeof data === "string" && this._inflight === 0) {
      this._text(data);
      return;
    }
    this._inflight++;
    const text = typeof data === "string" ? Promise.resolve(data) : gunzip(data);
    text.catch(() => {}); // handled in the chain, in its turn
    this._chain = this._chain
      .then(() => text)
      .then(
        (t) => {
          if (this._ws === ws) this._text(t);
        },
        (err) => {
          if (this._ws === ws) this._emit("error", { code: "decode", reason: "undecodable binary frame: " + err });
        },
      )
      .finally(() => this._inflight--);
  }

  _text(t) {
    let m;
    try {
      m = JSON.parse(t);
    } catch (_) {
      m = null;
    }
    if (!m || typeof m !== "object" || typeof m.type !== "string") {
      // A server before the direct envelope sent a backend's direct message as its bare text.
      this._emit("message", { room: null, seq: 0, epoch: "", ts: this._now(), from: "", text: t, direct: true, own: false });
      return;
    }
    switch (m.type) {
      case "message":
        return this._message(m);
      case "direct":
        // A message to this key alone: no room, no seq, nothing to recover.
        if (typeof m.text !== "string") return;
        this._emit("message", {
          room: null, seq: 0, epoch: "", ts: typeof m.ts === "number" ? m.ts : this._now(),
          from: typeof m.from === "string" ? m.from : "", text: m.text, direct: true, own: false,
        });
        return;
      case "joined":
        return this._joined(m);
      case "ack":
        return this._ack(m);
      case "left":
        return this._answer(m, { room: m.room });
      case "members":
        return this._answer(m, { room: m.room, count: m.count, members: m.members || [], truncated: !!m.truncated });
      case "presence":
        if (this._rooms.has(m.room)) {
          this._emit("presence", { room: m.room, count: m.count, joined: m.joined, left: m.left });
        }
        return;
      case "error":
        return this._error(m);
      default:
        return; // a later version's envelope
    }
  }

  _joined(m) {
    if (this._noRoom && m.room === "" && !this._rooms.has("")) return;
    const r = this._rooms.get(m.room);
    if (!r) return; // left meanwhile
    const asked = r.asked || {};
    const resumed = asked.epoch !== undefined;
    const wasLive = r.live;
    r.live = true;
    this._attempt = 0; // a server that answers: the back-off starts over
    let replayed = 0;
    if (m.recovered) {
      // Every message after since follows, then live: r.seq stays at since.
      replayed = Math.max(0, m.seq - r.seq);
    } else {
      // Nothing of the past follows but, after a history join, the last
      // few messages, seq above floor. What was held while resyncing is
      // dropped: the app is told recovered:false, the hole is its to fill.
      r.seq = m.seq;
    }
    r.held = [];
    r.replayTo = m.seq;
    r.histLast = !m.recovered && asked.history > 0 ? Math.max(0, m.seq - asked.history) : r.seq;
    r.epoch = m.epoch;
    r.resync = false;
    r.asked = null;
    const detail = {
      room: m.room, seq: m.seq, epoch: m.epoch, recovered: !!m.recovered, replayed, resumed, count: m.count,
      history: asked.history || 0,
    };
    r.lastJoined = detail;
    this._emit("joined", detail);
    for (const w of r.waiters.splice(0)) w.resolve(detail);
    // Sends waiting for this room: written now, or failed when the room's
    // history restarted since they were written (the server's dedup may
    // not know their id: a resend could double them).
    for (const s of this._sends.values()) {
      if (s.room !== m.room) continue;
      if (s.written && s.epoch !== m.epoch) {
        this._sends.delete(s.id);
        s.reject(new WsdError("unconfirmed", "the room's history restarted (new epoch): the message may or may not have been sent", s.room));
      } else if (s.written && this._now() - s.written > this.resendWithin) {
        this._sends.delete(s.id);
        s.reject(new WsdError("stale", "not acknowledged within the dedup window: the message may or may not have been sent", s.room));
      } else if (!wasLive || !s.written) {
        this._writeSend(s, r);
      }
    }
  }

  _message(m) {
    const r = this._rooms.get(m.room);
    if (!r || !r.live) return; // left, or before its joined
    if (r.resync) {
      r.held.push(m);
      return;
    }
    if (r.epoch === "" && r.seq === 0 && m.seq === 1) r.epoch = m.epoch; // no epoch yet: the first message starts one
    if (m.epoch !== r.epoch) {
      // The room's history restarted under us: rejoin to learn where it stands.
      r.held.push(m);
      this._resync(r);
      return;
    }
    if (m.seq <= r.seq) {
      // Already had it, unless it is the history a join asked for (those
      // come in seq order after joined, before anything live).
      if (m.seq > r.histLast) this._deliver(r, m, { history: true });
      return;
    }
    if (m.seq !== r.seq + 1) {
      r.held.push(m);
      this._resync(r);
      return;
    }
    r.seq = m.seq;
    r.histLast = m.seq; // once live, nothing at or below is history
    this._deliver(r, m, { replay: m.seq <= r.replayTo });
  }

  _deliver(r, m, { history = false, replay = false }) {
    if (history) r.histLast = m.seq;
    const own = m.from === this.key && m.from !== "";
    const detail = { room: m.room, seq: m.seq, epoch: m.epoch, ts: m.ts, from: m.from || "", id: m.id, text: m.text, own, history, replay };
    this._emit("message", detail);
    if (own && m.id !== undefined) {
      const s = this._sends.get(m.id);
      if (s) {
        this._sends.delete(m.id);
        s.resolve({ room: m.room, seq: m.seq, epoch: m.epoch, ts: m.ts, duplicate: false });
      }
    }
  }

  _resync(r) {
    if (r.resync) return;
    r.resync = true;
    this._sendJoin(r);
  }

  _ack(m) {
    const s = this._sends.get(m.id);
    if (!s) return;
    this._sends.delete(m.id);
    s.resolve({ room: m.room, seq: m.seq, epoch: m.epoch, ts: m.ts, duplicate: !!m.duplicate });
  }

  _answer(m, detail) {
    if (m.type === "left") this._emit("left", detail);
    const q = m.id !== undefined && this._requests.get(m.id);
    if (!q) return;
    this._requests.delete(m.id);
    q.resolve(detail);
  }

  _error(m) {
    const err = new WsdError(m.code, m.reason || "", m.room);
    if (m.id !== undefined) {
      const s = this._sends.get(m.id);
      if (s) {
        this._sends.delete(m.id);
        s.reject(err);
        return;
      }
      const q = this._requests.get(m.id);
      if (q) {
        this._requests.delete(m.id);
        q.reject(err);
        return;
      }
      for (const r of this._rooms.values()) {
        if (r.joinId === m.id) {
          // A refused join (forbidden, too many rooms): the room is not
          // joined, now or on a later connection.
          this._rooms.delete(r.room);
          err.room = r.room;
          this._fail(err, r.waiters.splice(0));
          for (const [id, s] of this._sends) {
            if (s.room === r.room) {
              this._sends.delete(id);
              s.reject(err);
            }
          }
          this._emit("error", { code: m.code, reason: m.reason || "", room: r.room });
          return;
        }
      }
    }
    this._emit("error", { code: m.code, reason: m.reason || "", room: m.room });
  }

  _closed(code, reason) {
    if (this._stopped) return;
    for (const [id, q] of this._requests) {
      if (q.once) {
        this._requests.delete(id);
        q.resolve({ room: q.cmd.room }); // a leave: no connection, no membership
      }
    }
    if (closeStops(code)) {
      this._stop(code === 4001 ? "replaced" : "closed", code, reason);
      return;
    }
    const delay = fullJitter(this._attempt, this.backoffBase, this.backoffCap, this._random);
    this._attempt++;
    this._setState("closed", { code, reason, retryIn: delay });
    this._timer = this._setTimeout(() => this._connect(), delay);
  }

  _stop(state, code, reason) {
    if (this._stopped) return;
    this._stopped = true;
    if (this._timer) this._clearTimeout(this._timer);
    this._timer = 0;
    const err = new WsdError(state, state === "replaced" ? "replaced by a newer connection with the same key" : "the client is " + state);
    const sends = Array.from(this._sends.values());
    this._sends.clear();
    const reqs = Array.from(this._requests.values());
    this._requests.clear();
    const waiters = [];
    for (const r of this._rooms.values()) waiters.push(...r.waiters.splice(0));
    this._fail(err, [...sends, ...reqs, ...waiters]);
    this._setState(state, { code, reason, retryIn: null });
  }

  _fail(err, list) {
    for (const p of list) p.reject(err);
  }
}

// gunzip inflates one gzip frame.
function gunzip(buf) {
  const ds = new DecompressionStream("gzip");
  const w = ds.writable.getWriter();
  // A frame that is not gzip errors both sides; the readable's error is
  // the one reported, the writer's is expected.
  w.write(new Uint8Array(buf)).catch(() => {});
  w.close().catch(() => {});
  return new Response(ds.readable).text();
}
