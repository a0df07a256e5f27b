"use strict";
// wsd's built-in chat page. No framework, no build step: this file is
// inlined into the page and allowed by its hash in the CSP.
(() => {
  const $ = (id) => document.getElementById(id);
  const params = new URLSearchParams(location.search);
  const roomRe = /^[A-Za-z0-9_.:-]{1,64}$/;
  const canGunzip = typeof DecompressionStream === "function";
  const maxLines = 500; // older lines are dropped from the page
  const backoffBase = 500, backoffCap = 15000; // ms; full jitter

  const nameIn = $("name"), roomIn = $("room"), gzipIn = $("gzip"), tokenIn = $("token");
  const stateEl = $("state"), logEl = $("log"), textIn = $("text"), sendBtn = $("send"), infoEl = $("info");

  const closeWhy = {
    1000: "normal closure", 1001: "going away: the server is restarting or the connection was idle",
    1002: "protocol error", 1003: "unsupported data", 1006: "connection lost or refused",
    1007: "invalid UTF-8", 1008: "policy: rate limit or too slow", 1009: "message too big",
    1011: "server error", 4001: "replaced",
  };

  function randomName() {
    const b = new Uint8Array(3);
    crypto.getRandomValues(b);
    return "guest-" + Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  }

  nameIn.value = params.get("name") || params.get("specialKey") || randomName();
  roomIn.value = params.get("room") || "";
  gzipIn.checked = canGunzip && !["0", "false", "off"].includes(params.get("gzip") || "");
  gzipIn.disabled = !canGunzip;
  tokenIn.value = params.get("token") || "";
  if (document.body.dataset.jwt === "1" || tokenIn.value) $("token-field").hidden = false;

  let ws = null;      // the current socket, if any
  let cur = null;     // settings it was opened with
  let want = false;   // keep a connection up (false after Disconnect or 4001)
  let attempt = 0;    // reconnects since the last successful open
  let timer = 0;
  let chain = Promise.resolve(); // keeps gzip'd and plain messages in arrival order

  function setState(state, text) {
    stateEl.dataset.state = state;
    stateEl.textContent = text;
    sendBtn.disabled = state !== "open";
  }

  function clock() {
    return new Date().toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
  }

  // line appends one entry. Everything is set with textContent: a message
  // is never parsed as HTML.
  function line(cls, from, text, enc) {
    const stick = logEl.scrollTop + logEl.clientHeight >= logEl.scrollHeight - 8;
    const li = document.createElement("li");
    li.className = cls;
    if (enc) li.dataset.enc = enc;
    const t = document.createElement("time");
    t.textContent = clock();
    const f = document.createElement("span");
    f.className = "from" + (from === null ? " anon" : "");
    f.textContent = from === null ? "—" : from;
    const x = document.createElement("span");
    x.className = "text";
    x.textContent = text;
    li.append(t, f, x);
    logEl.append(li);
    while (logEl.childElementCount > maxLines) logEl.firstElementChild.remove();
    if (stick) logEl.scrollTop = logEl.scrollHeight;
  }

  const sys = (text) => line("sys", "", text);

  // show renders a received message: {"from":..,"text":..} (what this page
  // sends) with its sender, anything else as plain text from an unknown sender.
  function show(data, enc) {
    let from = null, text = data;
    if (data.startsWith("{")) {
      try {
        const m = JSON.parse(data);
        if (m && typeof m.from === "string" && typeof m.text === "string") {
          from = m.from;
          text = m.text;
        }
      } catch (_) { /* plain text that starts with a brace */ }
    }
    line(cur && from === cur.name ? "msg me" : "msg", from, text, enc);
  }

  async function gunzip(buf) {
    const s = new Blob([buf]).stream().pipeThrough(new DecompressionStream("gzip"));
    return new Response(s).text();
  }

  function wsURL(s) {
    const q = new URLSearchParams();
    q.set("specialKey", s.name);
    if (s.gzip) q.set("support_gzip", "1");
    if (s.room) q.set("room", s.room);
    if (s.token) q.set("token", s.token);
    return (location.protocol === "https:" ? "wss:" : "ws:") + "//" + location.host + "/?" + q;
  }

  function describe(e) {
    return e.code + " " + (e.reason || closeWhy[e.code] || "");
  }

  function connect() {
    clearTimeout(timer);
    const s = cur;
    setState("connecting", "connecting…");
    let sock;
    try {
      sock = new WebSocket(wsURL(s));
    } catch (err) {
      want = false;
      setState("error", "cannot connect: " + err.message);
      return;
    }
    sock.binaryType = "arraybuffer";
    ws = sock;
    let opened = false;
    sock.onopen = () => {
      if (ws !== sock) return;
      opened = true;
      attempt = 0;
      const where = s.room ? "room " + s.room : "the global room";
      setState("open", "connected as " + s.name + " in " + where + (s.gzip ? " · gzip" : ""));
      infoEl.textContent = "WebSocket extensions: " + (sock.extensions || "none") + " · messages are plain text to everyone in the room";
      sys("connected as " + s.name + " in " + where);
    };
    sock.onmessage = (e) => {
      if (ws !== sock) return;
      const gz = typeof e.data !== "string";
      chain = chain
        .then(() => (gz ? gunzip(e.data) : e.data))
        .then((text) => show(text, gz ? "gzip" : "text"), (err) => sys("undecodable binary message: " + err));
    };
    sock.onclose = (e) => {
      if (ws !== sock) return;
      ws = null;
      stateEl.dataset.lastClose = String(e.code);
      if (e.code === 4001) {
        want = false;
        setState("replaced", "replaced: another connection took the name " + s.name + " (4001). Press Connect to take it back.");
        sys("closed 4001 replaced: another connection uses the name " + s.name + "; not reconnecting");
        return;
      }
      if (!want) {
        setState("closed", "disconnected");
        return;
      }
      const delay = Math.round(Math.random() * Math.min(backoffCap, backoffBase * 2 ** attempt));
      attempt++;
      let why = describe(e);
      if (!opened && e.code === 1006) why = "could not connect" + (document.body.dataset.jwt === "1" ? " (is the token valid for this name and room?)" : "");
      if (opened) sys("closed " + why + "; reconnecting");
      setState("waiting", "closed " + why + "; retry " + attempt + " in " + (delay / 1000).toFixed(1) + " s");
      timer = setTimeout(connect, delay);
    };
  }

  function readSettings() {
    const s = { name: nameIn.value, room: roomIn.value.trim(), gzip: gzipIn.checked, token: tokenIn.value.trim() };
    roomIn.setCustomValidity(s.room === "" || roomRe.test(s.room) ? "" : "1-64 of A-Z a-z 0-9 _ - . :");
    nameIn.setCustomValidity(new TextEncoder().encode(s.name).length > 256 ? "at most 256 bytes" : "");
    return s;
  }

  function start() {
    const s = readSettings();
    if (!$("settings").reportValidity()) return;
    cur = s;
    want = true;
    attempt = 0;
    const q = new URLSearchParams();
    q.set("name", s.name);
    if (s.room) q.set("room", s.room);
    if (!s.gzip) q.set("gzip", "0");
    history.replaceState(null, "", "/?" + q); // a reload keeps name and room, never the token
    stop();
    want = true;
    connect();
  }

  function stop() {
    want = false;
    clearTimeout(timer);
    if (ws) {
      const old = ws;
      ws = null;
      old.close(1000);
    }
    setState("closed", "disconnected");
  }

  $("settings").addEventListener("submit", (e) => {
    e.preventDefault();
    start();
  });
  $("disconnect").addEventListener("click", () => {
    if (ws || want) sys("disconnected");
    stop();
  });
  $("composer").addEventListener("submit", (e) => {
    e.preventDefault();
    if (!ws || ws.readyState !== WebSocket.OPEN || textIn.value === "") return;
    ws.send(JSON.stringify({ from: cur.name, text: textIn.value }));
    textIn.value = "";
    textIn.focus();
  });

  start();
  textIn.focus();
})();
