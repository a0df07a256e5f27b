// Unit tests of wsd.js's own logic, without a server: a fake WebSocket
// constructor and fake timers are injected. Run: node --test web/wsd_test.mjs
// (web/wsdjs_test.go runs it from go test).
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { WsdClient, WsdError, fullJitter, PROTOCOL, DEFAULTS } from "./wsd.js";

// FakeSocket records what the client writes and lets a test play the server.
class FakeSocket {
  static all = [];
  constructor(url, protocol) {
    this.url = new URL(url);
    this.protocol = protocol;
    this.readyState = 0;
    this.sent = [];
    this.closedWith = null;
    FakeSocket.all.push(this);
  }
  send(s) {
    if (this.readyState !== 1) throw new Error("not open");
    this.sent.push(JSON.parse(s));
  }
  close(code) {
    this.closedWith = code;
    this.readyState = 3;
  }
  // server side
  open() {
    this.readyState = 1;
    this.onopen({});
  }
  recv(obj) {
    this.onmessage({ data: typeof obj === "string" ? obj : JSON.stringify(obj) });
  }
  drop(code = 1006, reason = "") {
    this.readyState = 3;
    this.onclose({ code, reason });
  }
  take() {
    const s = this.sent;
    this.sent = [];
    return s;
  }
}

// harness builds a client on fake sockets and fake timers.
async function harness(opts = {}) {
  FakeSocket.all = [];
  const timers = [];
  let now = 1_000_000;
  const events = [];
  const c = new WsdClient("ws://wsd.test/", {
    key: "alice",
    WebSocket: FakeSocket,
    setTimeout: (fn, ms) => {
      timers.push({ fn, ms });
      return timers.length;
    },
    clearTimeout: (id) => {
      if (timers[id - 1]) timers[id - 1].fn = null;
    },
    random: () => 0.5,
    now: () => now,
    ...opts,
  });
  for (const t of ["message", "joined", "left", "presence", "state", "error"]) c.on(t, (d) => events.push({ type: t, ...d }));
  assert.equal(FakeSocket.all.length, 0, "nothing happens before the listeners are added");
  await null; // the client connects in a microtask
  return {
    c,
    events,
    timers,
    sock: () => FakeSocket.all[FakeSocket.all.length - 1],
    sockets: FakeSocket.all,
    advance: (ms) => (now += ms),
    fire() {
      const t = timers.shift();
      assert.ok(t && t.fn, "a retry is scheduled");
      t.fn();
      return t.ms;
    },
    msgs: (room) => events.filter((e) => e.type === "message" && (room === undefined || e.room === room)),
    of: (type) => events.filter((e) => e.type === type),
  };
}

const E1 = "aaaaaaaa", E2 = "bbbbbbbb";
const noID = (cmds) => cmds.map(({ id, ...rest }) => rest);
const msg = (room, seq, text, extra = {}) => ({ type: "message", room, seq, epoch: E1, ts: 1000 + seq, from: "bob", text, ...extra });
const joined = (room, seq, recovered = false, epoch = E1) => ({ type: "joined", room, seq, epoch, recovered, count: 2 });

test("connects with the first room in the query and joins the others on open", async () => {
  const h = await harness({ rooms: ["lobby", "side", ""], history: 5, token: "T" });
  const s = h.sock();
  assert.equal(s.protocol, PROTOCOL);
  const q = s.url.searchParams;
  assert.equal(q.get("specialKey"), "alice");
  assert.equal(q.get("room"), "lobby");
  assert.equal(q.get("history"), "5");
  assert.equal(q.get("token"), "T");
  assert.equal(q.get("since"), null);
  assert.equal(q.get("support_gzip"), null);
  s.open();
  assert.deepEqual(noID(s.take()), [
    { type: "join", room: "side", history: 5 },
    { type: "join", room: "", history: 5 },
  ]);
  assert.deepEqual(h.of("state").map((e) => e.state), ["connecting", "open"]);
});

test("a message seen twice is delivered once; older seqs are dropped", async () => {
  const h = await harness({ rooms: ["lobby"] });
  const s = h.sock();
  s.open();
  s.recv(joined("lobby", 3));
  for (const q of [4, 5, 5, 3, 4, 6]) s.recv(msg("lobby", q, "m" + q));
  assert.deepEqual(h.msgs().map((m) => m.seq), [4, 5, 6]);
  assert.deepEqual(h.c.position("lobby"), { seq: 6, epoch: E1 });
  assert.deepEqual(s.take(), [], "no resync for a duplicate");
});

test("a gap while connected is filled by a rejoin with since, in order, once", async () => {
  const h = await harness({ rooms: ["lobby"] });
  const s = h.sock();
  s.open();
  s.recv(joined("lobby", 0));
  s.recv(msg("lobby", 1, "a"));
  s.recv(msg("lobby", 2, "b"));
  s.recv(msg("lobby", 4, "d")); // 3 is missing
  s.recv(msg("lobby", 5, "e")); // held while resyncing
  assert.deepEqual(noID(s.take()), [{ type: "join", room: "lobby", since: 2, epoch: E1 }]);
  assert.deepEqual(h.msgs().map((m) => m.seq), [1, 2]);
  s.recv(joined("lobby", 5, true));
  for (const q of [3, 4, 5]) s.recv(msg("lobby", q, "x"));
  s.recv(msg("lobby", 6, "live"));
  assert.deepEqual(h.msgs().map((m) => m.seq), [1, 2, 3, 4, 5, 6]);
  assert.deepEqual(h.msgs().map((m) => m.replay), [false, false, true, true, true, false]);
  const j = h.of("joined").at(-1);
  assert.equal(j.recovered, true);
  assert.equal(j.resumed, true);
  assert.equal(j.replayed, 3);
});

test("a gap that cannot be replayed is reported as recovered:false", async () => {
  const h = await harness({ rooms: ["lobby"] });
  const s = h.sock();
  s.open();
  s.recv(joined("lobby", 0));
  s.recv(msg("lobby", 1, "a"));
  s.recv(msg("lobby", 3, "c"));
  s.take();
  s.recv(joined("lobby", 3, false));
  s.recv(msg("lobby", 4, "d"));
  assert.deepEqual(h.msgs().map((m) => m.seq), [1, 4]);
  const j = h.of("joined").at(-1);
  assert.equal(j.recovered, false);
  assert.equal(j.resumed, true);
});

test("a message of another epoch makes the client rejoin", async () => {
  const h = await harness({ rooms: ["lobby"] });
  const s = h.sock();
  s.open();
  s.recv(joined("lobby", 7));
  s.recv({ ...msg("lobby", 1, "new"), epoch: E2 });
  assert.deepEqual(noID(s.take()), [{ type: "join", room: "lobby", since: 7, epoch: E1 }]);
  s.recv(joined("lobby", 1, false, E2));
  s.recv({ ...msg("lobby", 2, "next"), epoch: E2 });
  assert.deepEqual(h.msgs().map((m) => [m.seq, m.epoch]), [[2, E2]]);
});

test("a history join delivers the last K, marked history, then live", async () => {
  const h = await harness({ rooms: ["lobby"], history: 3 });
  const s = h.sock();
  s.open();
  s.recv(joined("lobby", 10));
  for (const q of [8, 9, 10, 9, 11]) s.recv(msg("lobby", q, "m"));
  assert.deepEqual(h.msgs().map((m) => [m.seq, m.history]), [[8, true], [9, true], [10, true], [11, false]]);
  s.recv(msg("lobby", 10, "late duplicate"));
  assert.equal(h.msgs().length, 4);
});

test("send resolves with the ack; an error rejects with its code", async () => {
  const h = await harness({ rooms: ["lobby"] });
  const s = h.sock();
  s.open();
  s.recv(joined("lobby", 0));
  const p = h.c.send("lobby", "hi");
  const [cmd] = s.take();
  assert.equal(cmd.type, "send");
  assert.equal(cmd.text, "hi");
  assert.match(cmd.id, /^[a-z0-9-]{1,64}$/);
  s.recv({ type: "ack", id: cmd.id, room: "lobby", seq: 1, epoch: E1, ts: 5 });
  assert.deepEqual(await p, { room: "lobby", seq: 1, epoch: E1, ts: 5, duplicate: false });

  const q = h.c.send("lobby", "x".repeat(10));
  const [c2] = s.take();
  s.recv({ type: "error", id: c2.id, code: 105, reason: "text is longer" });
  await assert.rejects(q, (e) => e instanceof WsdError && e.code === 105);
  await assert.rejects(h.c.send("nowhere", "x"), (e) => e.code === 112);
});

test("the echo of an own message confirms its send", async () => {
  const h = await harness({ rooms: ["lobby"] });
  const s = h.sock();
  s.open();
  s.recv(joined("lobby", 0));
  const p = h.c.send("lobby", "hi");
  const [cmd] = s.take();
  s.recv({ ...msg("lobby", 1, "hi"), from: "alice", id: cmd.id });
  assert.equal((await p).seq, 1);
  assert.equal(h.msgs()[0].own, true);
});

test("after a drop: back-off, rejoin every room with since+epoch, resend unacked with the same id", async () => {
  const h = await harness({ rooms: ["lobby", "side"] });
  let s = h.sock();
  s.open();
  s.take();
  s.recv(joined("lobby", 4));
  s.recv(joined("side", 9));
  s.recv(msg("lobby", 5, "x"));
  const acked = h.c.send("lobby", "one");
  const lost = h.c.send("side", "two");
  const [c1, c2] = s.take();
  s.drop(1006);
  const st = h.of("state").at(-1);
  assert.equal(st.state, "closed");
  assert.equal(st.code, 1006);
  assert.equal(st.retryIn, fullJitter(0, DEFAULTS.backoffBase, DEFAULTS.backoffCap, () => 0.5));
  const queued = h.c.send("lobby", "three"); // while offline: written after the rejoin
  assert.equal(h.fire(), st.retryIn);

  s = h.sock();
  assert.equal(h.sockets.length, 2);
  const q = s.url.searchParams;
  assert.deepEqual([q.get("room"), q.get("since"), q.get("epoch"), q.get("history")], ["lobby", "5", E1, null]);
  s.open();
  assert.deepEqual(noID(s.take()), [{ type: "join", room: "side", since: 9, epoch: E1 }]);
  s.recv(joined("lobby", 6, true));
  const resent = s.take();
  assert.deepEqual(resent.map((x) => [x.id, x.text]), [[c1.id, "one"], [resent[1].id, "three"]]);
  s.recv(msg("lobby", 6, "y"));
  s.recv(joined("side", 9, true));
  assert.deepEqual(s.take().map((x) => x.id), [c2.id]);
  s.recv({ type: "ack", id: c1.id, room: "lobby", seq: 6, epoch: E1, ts: 1, duplicate: true });
  s.recv({ type: "ack", id: c2.id, room: "side", seq: 10, epoch: E1, ts: 2 });
  s.recv({ type: "ack", id: resent[1].id, room: "lobby", seq: 7, epoch: E1, ts: 3 });
  assert.equal((await acked).duplicate, true);
  assert.equal((await lost).seq, 10);
  assert.equal((await queued).seq, 7);
  assert.deepEqual(h.msgs("lobby").map((m) => m.seq), [5, 6]);
  const j = h.of("joined").filter((e) => e.room === "lobby").at(-1);
  assert.deepEqual([j.recovered, j.resumed, j.replayed], [true, true, 1]);
});

test("after a restart (new epoch) a written send fails as unconfirmed, never resent; an unwritten one is sent", async () => {
  const h = await harness({ rooms: ["lobby"] });
  let s = h.sock();
  s.open();
  s.recv(joined("lobby", 3));
  const written = h.c.send("lobby", "maybe delivered");
  const [c1] = s.take();
  s.drop(1001, "server shutting down");
  const fresh = h.c.send("lobby", "typed while offline");
  h.fire();
  s = h.sock();
  s.open();
  s.recv(joined("lobby", 0, false, E2));
  const sent = s.take();
  assert.deepEqual(sent.map((x) => x.text), ["typed while offline"]);
  assert.notEqual(sent[0].id, c1.id);
  await assert.rejects(written, (e) => e.code === "unconfirmed");
  s.recv({ type: "ack", id: sent[0].id, room: "lobby", seq: 1, epoch: E2, ts: 1 });
  assert.equal((await fresh).epoch, E2);
  const j = h.of("joined").at(-1);
  assert.deepEqual([j.recovered, j.resumed, j.epoch], [false, true, E2]);
});

test("a send older than the dedup window is not resent", async () => {
  const h = await harness({ rooms: ["lobby"] });
  let s = h.sock();
  s.open();
  s.recv(joined("lobby", 3));
  const p = h.c.send("lobby", "old");
  s.take();
  s.drop(1006);
  h.advance(DEFAULTS.resendWithin + 1);
  h.fire();
  s = h.sock();
  s.open();
  s.recv(joined("lobby", 3, true));
  assert.deepEqual(s.take(), []);
  await assert.rejects(p, (e) => e.code === "stale");
});

test("back-off grows with full jitter up to the cap and starts over after a join", async () => {
  assert.equal(fullJitter(0, 500, 15000, () => 0.999), 499);
  assert.equal(fullJitter(3, 500, 15000, () => 0.999), 3996);
  assert.equal(fullJitter(10, 500, 15000, () => 0.999), 14985);
  assert.equal(fullJitter(1000, 500, 15000, () => 0.999), 14985);
  assert.equal(fullJitter(5, 500, 15000, () => 0), 0);

  const h = await harness({ rooms: ["lobby"], random: () => 0.999 });
  const waits = [];
  for (let i = 0; i < 6; i++) {
    h.sock().drop(1006); // refused: never opened
    waits.push(h.fire());
  }
  assert.deepEqual(waits, [499, 999, 1998, 3996, 7992, 14985]);
  const s = h.sock();
  s.open();
  s.recv(joined("lobby", 0));
  s.drop(1006);
  assert.equal(h.fire(), 499);
});

test("4001 replaced: no retry, pending sends fail, state says replaced", async () => {
  const h = await harness({ rooms: ["lobby"] });
  const s = h.sock();
  s.open();
  s.recv(joined("lobby", 0));
  const p = h.c.send("lobby", "x");
  s.drop(4001, "replaced");
  assert.equal(h.timers.length, 0);
  const st = h.of("state").at(-1);
  assert.deepEqual([st.state, st.code, st.retryIn], ["replaced", 4001, null]);
  await assert.rejects(p, (e) => e.code === "replaced");
  await assert.rejects(h.c.send("lobby", "y"), (e) => e.code === "replaced");
});

test("join, leave and members are answered; a left room's messages are ignored", async () => {
  const h = await harness({ rooms: ["lobby"] });
  const s = h.sock();
  s.open();
  s.recv(joined("lobby", 0));
  const j = h.c.join("side", { history: 2 });
  assert.deepEqual(noID(s.take()), [{ type: "join", room: "side", history: 2 }]);
  s.recv(joined("side", 1));
  assert.equal((await j).room, "side");
  const m = h.c.members("side");
  const [mc] = s.take();
  s.recv({ type: "members", id: mc.id, room: "side", count: 2, members: ["alice", "bob"], truncated: false });
  assert.deepEqual(await m, { room: "side", count: 2, members: ["alice", "bob"], truncated: false });
  s.recv({ type: "presence", room: "side", count: 3, joined: ["carol"], left: [] });
  assert.deepEqual(h.of("presence").map((p) => p.joined), [["carol"]]);
  const l = h.c.leave("side");
  const [lc] = s.take();
  assert.equal(lc.type, "leave");
  s.recv(msg("side", 2, "after leave"));
  s.recv({ type: "left", id: lc.id, room: "side" });
  await l;
  assert.deepEqual(h.msgs("side"), []);
  assert.deepEqual(h.c.rooms, ["lobby"]);
});

test("gzip frames are inflated in arrival order, text frames wait behind them", async () => {
  const gz = async (obj) => {
    const s = new Blob([JSON.stringify(obj)]).stream().pipeThrough(new CompressionStream("gzip"));
    return new Response(s).arrayBuffer();
  };
  const h = await harness({ rooms: ["lobby"], gzip: true });
  const s = h.sock();
  assert.equal(s.url.searchParams.get("support_gzip"), "1");
  s.open();
  const frames = [await gz(joined("lobby", 0)), await gz(msg("lobby", 1, "a")), await gz(msg("lobby", 2, "b"))];
  for (const f of frames) s.onmessage({ data: f });
  s.recv(msg("lobby", 3, "c")); // a text frame after the binary ones
  s.onmessage({ data: new Uint8Array([1, 2, 3]).buffer }); // not gzip
  const deadline = Date.now() + 5000; // inflating runs on the thread pool
  while ((h.msgs().length < 3 || h.of("error").length < 1) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  assert.deepEqual(h.msgs().map((m) => m.text), ["a", "b", "c"]);
  assert.equal(h.of("error").filter((e) => e.code === "decode").length, 1);
});

test("close() stops for good and fails what is pending", async () => {
  const h = await harness({ rooms: ["lobby"] });
  const s = h.sock();
  s.open();
  s.recv(joined("lobby", 0));
  const p = h.c.send("lobby", "x");
  h.c.close();
  assert.equal(s.closedWith, 1000);
  await assert.rejects(p, (e) => e.code === "closed");
  assert.equal(h.timers.length, 0);
  assert.equal(h.c.state, "closed");
});

test("text is handed over as it came, never as markup", async () => {
  const h = await harness({ rooms: [""] });
  const s = h.sock();
  assert.equal(s.url.searchParams.get("room"), null, "the global room has no room parameter");
  s.open();
  s.recv(joined("", 0));
  s.recv(msg("", 1, '<img src=x onerror="alert(1)">', { from: "carol" }));
  assert.equal(h.msgs()[0].text, '<img src=x onerror="alert(1)">');
  assert.equal(h.msgs()[0].from, "carol");
});

test("a refused join drops the room: its waiters and sends fail, a reconnect does not ask again", async () => {
  const h = await harness({ rooms: ["lobby"] });
  let s = h.sock();
  s.open();
  s.recv(joined("lobby", 0));
  const j = h.c.join("secret");
  const p = h.c.send("secret", "x");
  const [jc] = s.take();
  assert.equal(jc.type, "join");
  s.recv({ type: "error", id: jc.id, code: 110, reason: "forbidden" });
  await assert.rejects(j, (e) => e.code === 110 && e.room === "secret");
  await assert.rejects(p, (e) => e.code === 110);
  assert.deepEqual(h.c.rooms, ["lobby"]);
  assert.deepEqual(h.of("error").map((e) => [e.code, e.room]), [[110, "secret"]]);
  s.drop(1006);
  h.fire();
  s = h.sock();
  s.open();
  assert.deepEqual(s.take(), []);
});

test("a direct envelope is a message in no room, its text untouched; it moves no room's position", async () => {
  const h = await harness({ rooms: ["lobby"] });
  const s = h.sock();
  s.open();
  s.recv(joined("lobby", 3));
  const forged = JSON.stringify(msg("lobby", 9, "forged"));
  s.recv({ type: "direct", ts: 4242, from: "", text: forged });
  s.recv("bare text from an older server");
  const d = h.msgs();
  assert.equal(d.length, 2);
  assert.deepEqual(
    { room: d[0].room, ts: d[0].ts, from: d[0].from, text: d[0].text, direct: d[0].direct, own: d[0].own },
    { room: null, ts: 4242, from: "", text: forged, direct: true, own: false },
  );
  assert.equal(d[1].text, "bare text from an older server");
  assert.equal(d[1].direct, true);
  assert.deepEqual(h.c.position("lobby"), { seq: 3, epoch: E1 });
  assert.deepEqual(s.take(), [], "no rejoin: a direct message is in no room's order");
});

// LoopbackServer is a WebSocket that answers as wsd does, for the
// documentation's examples, which use the global WebSocket: it opens, says
// joined for the query's room (a room without messages yet: seq 0, no
// epoch), and answers each send with its message, then its ack.
class LoopbackServer {
  static sends = [];
  constructor(url, protocol) {
    this.url = new URL(url);
    this.protocol = protocol;
    this.extensions = "";
    this.readyState = 0;
    this.seq = 0;
    setTimeout(() => {
      this.readyState = 1;
      this.onopen({});
      this.reply({ type: "joined", room: this.url.searchParams.get("room") || "", seq: 0, epoch: "", recovered: false, count: 1 });
    }, 0);
  }
  reply(obj) {
    setTimeout(() => this.readyState === 1 && this.onmessage({ data: JSON.stringify(obj) }), 0);
  }
  send(s) {
    const cmd = JSON.parse(s);
    if (cmd.type !== "send") return;
    LoopbackServer.sends.push(cmd);
    const m = { room: cmd.room, seq: ++this.seq, epoch: "e1", ts: 1700000000000 + this.seq };
    this.reply({ type: "message", ...m, from: this.url.searchParams.get("specialKey"), id: cmd.id, text: cmd.text });
    this.reply({ type: "ack", id: cmd.id, ...m });
  }
  close() {
    this.readyState = 3;
  }
}

// The first ```js block of a document, its import pointed at this wsd.js.
function docExample(rel) {
  const md = readFileSync(new URL(rel, import.meta.url), "utf8");
  const m = md.match(/\n```js\n([\s\S]*?)\n```/);
  assert.ok(m, rel + " has a js example");
  const code = m[1].replace(/from "http:\/\/127\.0\.0\.1:8888\/wsd\.js"/, () => `from ${JSON.stringify(new URL("./wsd.js", import.meta.url).href)}`);
  assert.notEqual(code, m[1], rel + ": the example imports wsd.js from wsd's default address");
  return code;
}

for (const [doc, logged] of [["../README.md", "alice hello"], ["../docs/wsd-js.md", "lobby alice hello"]]) {
  test(`the example of ${doc.slice(3)} runs as written: it connects, gets its ack, logs its message`, async () => {
    const code = docExample(doc);
    assert.ok(code.split("\n").length <= 5, "at most five lines");
    const saved = { WebSocket: globalThis.WebSocket, log: console.log, warn: console.warn };
    const out = [];
    globalThis.WebSocket = LoopbackServer;
    console.log = console.warn = (...a) => out.push(a.join(" "));
    LoopbackServer.sends = [];
    try {
      let timer;
      const mod = await Promise.race([
        import("data:text/javascript," + encodeURIComponent(code + "\nexport const result = typeof ack === 'undefined' ? null : ack;")),
        new Promise((_, reject) => (timer = setTimeout(() => reject(new Error("the example's send was not acked")), 5000))),
      ]);
      clearTimeout(timer);
      assert.deepEqual(LoopbackServer.sends.map((s) => [s.room, s.text]), [["lobby", "hello"]]);
      if (mod.result !== null) assert.deepEqual(mod.result, { room: "lobby", seq: 1, epoch: "e1", ts: 1700000000001, duplicate: false });
      await new Promise((r) => setTimeout(r, 10));
      assert.deepEqual(out, [logged]);
    } finally {
      globalThis.WebSocket = saved.WebSocket;
      console.log = saved.log;
      console.warn = saved.warn;
    }
  });
}
