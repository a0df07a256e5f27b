// wsd's built-in chat page, on wsd.js (the chat protocol v1 client wsd
// serves at /wsd.js). No framework, no build step: this module is inlined
// into the page and allowed by its hash in the CSP; it imports /wsd.js
// from 'self'. Every text is set with textContent, never parsed as HTML.
import { WsdClient } from "/wsd.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const roomRe = /^[A-Za-z0-9_.:-]{1,64}$/;
const canGunzip = typeof DecompressionStream === "function";
const maxLines = 500; // older lines are dropped from a room's log
const historyOnJoin = 50; // the room's recent messages, shown on join

const nameIn = $("name"), gzipIn = $("gzip"), tokenIn = $("token"), roomIn = $("room");
const stateEl = $("state"), tabsEl = $("tabs"), logsEl = $("logs"), textIn = $("text"), sendBtn = $("send");
const infoEl = $("info"), countEl = $("count"), membersEl = $("members");

const closeWhy = {
  1000: "normal closure", 1001: "going away: the server is restarting or the connection was idle",
  1002: "protocol error", 1003: "unsupported data", 1006: "connection lost or refused",
  1007: "invalid UTF-8", 1008: "policy: rate limit or too slow", 1009: "message too big",
  1011: "server error", 1013: "server busy", 4001: "replaced", 4002: "disconnected by the server",
};

function randomName() {
  const b = new Uint8Array(3);
  crypto.getRandomValues(b);
  return "guest-" + Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

const roomLabel = (room) => (room === "" ? "everyone" : room);

// The rooms asked for: ?rooms=a,b (",," or a leading "," is the global
// room), else ?room=a, else the global room (where seed clients are).
function initialRooms() {
  const list = params.has("rooms") ? params.get("rooms").split(",") : [params.get("room") || ""];
  const out = [];
  for (const r of list) if ((r === "" || roomRe.test(r)) && !out.includes(r)) out.push(r);
  return out.length ? out : [""];
}

nameIn.value = params.get("name") || params.get("specialKey") || randomName();
gzipIn.checked = canGunzip && !["0", "false", "off"].includes(params.get("gzip") || "");
gzipIn.disabled = !canGunzip;
tokenIn.value = params.get("token") || "";
if (document.body.dataset.jwt === "1" || tokenIn.value) $("token-field").hidden = false;

let client = null; // the WsdClient, if connected or connecting
let key = "";
let active = null; // the room shown
let opened = false; // the current attempt reached open
const rooms = new Map(); // room -> {tab, pick, log, members:Set, count, unread, epoch}
const pending = new Map(); // send id -> its bubble

function setState(state, text) {
  stateEl.dataset.state = state;
  stateEl.textContent = text;
  sendBtn.disabled = client === null || active === null;
}

function clock(ts) {
  const d = ts ? new Date(ts) : new Date();
  return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
}

// addLine appends an entry to a room's log (li carries its data).
function addLine(r, li, ts, from, text, mark) {
  const stick = r.log.scrollTop + r.log.clientHeight >= r.log.scrollHeight - 8;
  const t = document.createElement("time");
  t.textContent = clock(ts);
  const f = document.createElement("span");
  f.className = "from";
  f.textContent = from;
  const x = document.createElement("span");
  x.className = "text";
  x.textContent = text;
  const m = document.createElement("span");
  m.className = "mark";
  m.textContent = mark || "";
  li.append(t, f, x, m);
  r.log.append(li);
  while (r.log.childElementCount > maxLines) r.log.firstElementChild.remove();
  if (stick) r.log.scrollTop = r.log.scrollHeight;
  if (r.room !== active && li.classList.contains("msg") && !li.classList.contains("history")) {
    r.unread++;
    r.pick.dataset.unread = String(r.unread);
  }
}

function sys(r, text, warn) {
  const li = document.createElement("li");
  li.className = warn ? "sys warn" : "sys";
  addLine(r, li, 0, "", text);
}

const sysAll = (text, warn) => rooms.forEach((r) => sys(r, text, warn));

function showMessage(m) {
  const r = rooms.get(m.room);
  if (!r) return;
  const bubble = m.own && m.id !== undefined ? pending.get(m.id) : undefined;
  if (bubble) {
    pending.delete(m.id);
    bubble.remove(); // the message takes its place in the room's order
  }
  const li = document.createElement("li");
  li.className = "msg" + (m.own ? " me" : "") + (m.history ? " history" : "");
  li.dataset.seq = String(m.seq);
  li.dataset.from = m.from;
  if (m.own) li.dataset.status = "acked";
  addLine(r, li, m.ts, m.from === "" ? "(server)" : m.from, m.text, m.own ? "✓" : "");
}

function renderPeople() {
  membersEl.replaceChildren();
  const r = active !== null && rooms.get(active);
  if (!r) {
    countEl.textContent = "0";
    return;
  }
  countEl.textContent = String(r.count);
  for (const k of Array.from(r.members).sort()) {
    const li = document.createElement("li");
    li.textContent = k;
    if (k === key) li.className = "me";
    membersEl.append(li);
  }
}

function select(room) {
  if (!rooms.has(room)) room = rooms.size ? rooms.keys().next().value : null;
  active = room;
  for (const r of rooms.values()) {
    const on = r.room === room;
    r.tab.setAttribute("aria-selected", on ? "true" : "false");
    r.log.hidden = !on;
    if (on) {
      r.unread = 0;
      r.pick.dataset.unread = "0";
      r.log.scrollTop = r.log.scrollHeight;
    }
  }
  sendBtn.disabled = client === null || active === null;
  textIn.placeholder = room === null ? "Join a room" : "Message " + roomLabel(room);
  renderPeople();
}

function addRoom(room) {
  if (rooms.has(room)) return rooms.get(room);
  const tab = document.createElement("div");
  tab.className = "tab";
  tab.dataset.room = room;
  tab.setAttribute("role", "tab");
  const pick = document.createElement("button");
  pick.type = "button";
  pick.className = "pick";
  pick.textContent = roomLabel(room);
  pick.addEventListener("click", () => select(room));
  const close = document.createElement("button");
  close.type = "button";
  close.className = "close";
  close.title = "Leave " + roomLabel(room);
  close.textContent = "×";
  close.addEventListener("click", () => leaveRoom(room));
  tab.append(pick, close);
  tabsEl.append(tab);
  const log = document.createElement("ol");
  log.className = "log";
  log.dataset.room = room;
  log.setAttribute("aria-live", "polite");
  logsEl.append(log);
  const r = { room, tab, pick, log, members: new Set(), count: 0, unread: 0, epoch: "" };
  rooms.set(room, r);
  return r;
}

function leaveRoom(room) {
  const r = rooms.get(room);
  if (!r) return;
  rooms.delete(room);
  r.tab.remove();
  r.log.remove();
  if (client) client.leave(room).catch(() => {});
  for (const [id, li] of pending) if (li.closest(".log") === r.log) pending.delete(id);
  if (active === room) select(null);
  saveAddress();
}

function joinRoom(room) {
  if (!rooms.has(room)) {
    addRoom(room);
    if (client) client.join(room, { history: historyOnJoin }).catch(() => {});
  }
  select(room);
  saveAddress();
}

async function refreshMembers(room) {
  try {
    const m = await client.members(room);
    const r = rooms.get(room);
    if (!r) return;
    r.members = new Set(m.members);
    r.count = m.count;
    if (room === active) renderPeople();
  } catch (_) {
    /* closed meanwhile: the next joined asks again */
  }
}

function onJoined(j) {
  const r = rooms.get(j.room);
  if (!r) return;
  r.count = j.count;
  if (j.resumed) {
    if (j.recovered) {
      sys(r, j.replayed === 1 ? "1 message recovered" : j.replayed + " messages recovered");
    } else if (r.epoch !== "" && j.epoch !== r.epoch) {
      sys(r, "recovery not possible: the room's history restarted (new epoch " + j.epoch + "); messages sent while you were away are not shown", true);
    } else {
      sys(r, "recovery not possible: the messages you missed are no longer kept", true);
    }
  }
  r.epoch = j.epoch;
  refreshMembers(j.room);
  if (j.room === active) renderPeople();
}

function onPresence(p) {
  const r = rooms.get(p.room);
  if (!r) return;
  r.count = p.count;
  if (p.joined) for (const k of p.joined) r.members.add(k);
  if (p.left) for (const k of p.left) r.members.delete(k);
  if (p.room === active) renderPeople();
}

function describe(code, reason) {
  return code + " " + (reason || closeWhy[code] || "");
}

function onState(s) {
  if (s.state === "connecting") {
    opened = false;
    setState("connecting", "connecting…");
  } else if (s.state === "open") {
    opened = true;
    setState("open", "connected as " + key + (client.gzip ? " · gzip" : ""));
    infoEl.textContent = "WebSocket extensions: " + (s.extensions || "none") + " · protocol " + (s.protocol || "?") +
      " · senders are stamped by the server, text stays text";
    sysAll("connected as " + key);
  } else if (s.state === "replaced") {
    client = null;
    stateEl.dataset.lastClose = String(s.code);
    setState("replaced", "replaced: another connection took the name " + key + " (4001). Press Connect to take it back.");
    sysAll("closed 4001 replaced: another connection uses the name " + key + "; not reconnecting", true);
    failPending("replaced");
  } else if (s.state === "closed") {
    stateEl.dataset.lastClose = String(s.code);
    if (s.retryIn === null) {
      setState("closed", s.code && s.code !== 1000 ? "closed " + describe(s.code, s.reason) : "disconnected");
      if (s.code && s.code !== 1000) sysAll("closed " + describe(s.code, s.reason) + "; not reconnecting", true);
      return;
    }
    let why = describe(s.code, s.reason);
    if (!opened && s.code === 1006) why = "could not connect" + (document.body.dataset.jwt === "1" ? " (is the token valid for this name and rooms?)" : "");
    if (opened) sysAll("closed " + why + "; reconnecting");
    setState("waiting", "closed " + why + "; retry " + (s.attempt) + " in " + (s.retryIn / 1000).toFixed(1) + " s");
  }
}

function failPending(why) {
  for (const li of pending.values()) {
    li.dataset.status = "failed";
    li.querySelector(".mark").textContent = "not sent: " + why;
  }
  pending.clear();
}

function post(room, text) {
  const r = rooms.get(room);
  if (!client || !r) return;
  const p = client.send(room, text);
  const li = document.createElement("li");
  li.className = "msg me pending";
  li.dataset.from = key;
  li.dataset.status = "pending";
  li.dataset.id = p.id;
  addLine(r, li, 0, key, text, "sending…");
  pending.set(p.id, li);
  p.then(
    (ack) => {
      // Acked before its message came back (or a duplicate whose message
      // came on an earlier connection): the bubble stays where it is.
      if (!pending.has(p.id)) return;
      li.dataset.status = "acked";
      li.dataset.seq = String(ack.seq);
      li.classList.remove("pending");
      li.querySelector(".mark").textContent = "✓";
    },
    (err) => {
      pending.delete(p.id);
      li.dataset.status = "failed";
      li.classList.remove("pending");
      li.querySelector(".mark").textContent = "not sent: " + (err.code === "unconfirmed" ? "unconfirmed (server restarted)" : err.message);
      li.title = err.message;
    },
  );
}

function saveAddress() {
  const q = new URLSearchParams();
  q.set("name", key || nameIn.value);
  q.set("rooms", Array.from(rooms.keys()).join(","));
  if (!gzipIn.checked) q.set("gzip", "0");
  history.replaceState(null, "", "/?" + q); // a reload keeps name and rooms, never the token
}

function wsURL() {
  return (location.protocol === "https:" ? "wss:" : "ws:") + "//" + location.host + "/";
}

function start() {
  const name = nameIn.value;
  nameIn.setCustomValidity(new TextEncoder().encode(name).length > 256 ? "at most 256 bytes" : "");
  if (!$("settings").reportValidity()) return;
  stop();
  key = name;
  for (const r of rooms.values()) {
    r.log.replaceChildren();
    r.members.clear();
    r.epoch = "";
  }
  pending.clear();
  const c = new WsdClient(wsURL(), {
    key, token: tokenIn.value.trim(), gzip: gzipIn.checked, rooms: Array.from(rooms.keys()), history: historyOnJoin,
  });
  client = c;
  const mine = (fn) => (d) => {
    if (client === c) fn(d);
  };
  c.on("state", mine(onState));
  c.on("joined", mine(onJoined));
  c.on("message", mine((m) => {
    if (m.room === null) {
      if (active !== null) sys(rooms.get(active), "direct message: " + m.text);
      return;
    }
    showMessage(m);
  }));
  c.on("presence", mine(onPresence));
  c.on("error", mine((e) => {
    const r = rooms.get(e.room) || rooms.get(active);
    if (r) sys(r, "error " + e.code + ": " + e.reason, true);
  }));
  saveAddress();
}

function stop() {
  if (client) {
    const c = client;
    client = null;
    c.close();
  }
  failPending("disconnected");
  setState("closed", "disconnected");
}

$("settings").addEventListener("submit", (e) => {
  e.preventDefault();
  start();
});
$("disconnect").addEventListener("click", () => {
  if (client) sysAll("disconnected");
  stop();
});
$("joiner").addEventListener("submit", (e) => {
  e.preventDefault();
  const room = roomIn.value.trim();
  roomIn.setCustomValidity(roomRe.test(room) ? "" : "1-64 of A-Z a-z 0-9 _ - . :");
  if (!$("joiner").reportValidity()) return;
  roomIn.value = "";
  joinRoom(room);
});
$("composer").addEventListener("submit", (e) => {
  e.preventDefault();
  // While reconnecting too: wsd.js sends it once the room is joined again.
  if (!client || active === null || textIn.value === "") return;
  post(active, textIn.value);
  textIn.value = "";
  textIn.focus();
});

for (const r of initialRooms()) addRoom(r);
select(rooms.keys().next().value);
start();
textIn.focus();
