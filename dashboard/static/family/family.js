/* The family page: sign in, the linked elders' alerts live over the feed websocket, "I'm
   going" in two taps, devices, position during an open alert, push subscription, settings. */
"use strict";

const KINDS = ["sos", "fall", "wandering", "smoke", "inactivity", "device_offline", "low_battery", "anomaly"];
const ACTIVE = new Set(["open", "acknowledged", "escalated"]);
const state = { me: null, csrf: "", lang: "zh-CN", cat: {}, alerts: new Map(), going: new Map(),
                centres: {}, lastEvent: 0, ws: null, retryMs: 500, delivery: new Map(), connKey: "" };
const $ = (id) => document.getElementById(id);

function t(key, vars) {
  const table = state.cat[state.lang] || {};
  let text = table[key] || key;
  for (const [k, v] of Object.entries(vars || {})) text = text.replace(`{${k}}`, v);
  return text;
}

function hhmm(ms) {
  return new Date(ms).toLocaleTimeString(state.lang, { hour: "2-digit", minute: "2-digit" });
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v; else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c);
  return node;
}

async function api(method, path, body) {
  const opts = { method, credentials: "same-origin", headers: {} };
  if (body !== undefined) { opts.headers["Content-Type"] = "application/json"; opts.body = JSON.stringify(body); }
  if (method !== "GET") opts.headers["X-CSRF-Token"] = state.csrf;
  const resp = await fetch(path, opts);
  if (resp.status === 401 && path !== "/api/v1/auth/login") { showLogin(); throw new Error("401"); }
  return resp;
}

function applyLanguage() {
  document.documentElement.lang = state.lang;
  for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  $("lang").textContent = t("lang_other");
  $("conn").textContent = state.connKey ? t(state.connKey) : "";
  renderKinds(); renderAlerts(); renderPushState();
}

/* -- sign in ------------------------------------------------------------------------------- */

function showLogin() {
  $("app").hidden = true; $("login").hidden = false; $("username").focus();
}

async function signIn(ev) {
  ev.preventDefault();
  const resp = await api("POST", "/api/v1/auth/login", { username: $("username").value, password: $("password").value });
  if (!resp.ok) { $("login-error").textContent = t(resp.status === 429 ? "too_many" : "login_failed"); return; }
  const body = await resp.json();
  await start(body.user, body.csrf_token);
}

async function start(user, csrf) {
  state.me = user; state.csrf = csrf; state.lang = user.language || state.lang;
  $("login").hidden = true; $("app").hidden = false;
  applyLanguage();
  await Promise.all([loadElders(), loadAlerts(), loadPrefs()]);
  connect();
  setUpPush();
}

/* -- alerts -------------------------------------------------------------------------------- */

async function loadAlerts() {
  const resp = await api("GET", "/api/v1/alerts?limit=30");
  const body = await resp.json();
  for (const a of body.items.reverse()) state.alerts.set(a.alert_id, a);
  await Promise.all([...state.alerts.values()].filter((a) => ACTIVE.has(a.status)).map(loadHistory));
  renderAlerts();
}

async function loadHistory(alert) {
  const resp = await api("GET", `/api/v1/alerts/${encodeURIComponent(alert.alert_id)}`);
  if (!resp.ok) return;
  for (const h of (await resp.json()).history) noteGoing(alert.alert_id, h.actor, h.note, h.at_ts);
}

function noteGoing(alertId, actor, note, atTs) {
  if (note !== "going") return;
  const list = state.going.get(alertId) || [];
  if (!list.some((g) => g.who === actor)) list.push({ who: actor, at: atTs });
  state.going.set(alertId, list);
}

function statusText(a) {
  const centre = state.centres[a.center_id] || a.center_id;
  if (a.status === "acknowledged") return t("st_acknowledged", { centre, time: hhmm(a.acked_ts || a.updated_ts) });
  if (a.status === "resolved" || a.status === "cancelled") return t(`st_${a.status}`, { time: hhmm(a.closed_ts || a.updated_ts) });
  return t(`st_${a.status}`);
}

function goingButton(a) {
  const mine = (state.going.get(a.alert_id) || []).some((g) => g.who === state.me.username);
  if (!ACTIVE.has(a.status) || mine) return null;
  const box = el("div", { class: "going-box" });
  const first = el("button", { type: "button", class: "going", "data-alert": a.alert_id }, t("going"));
  first.addEventListener("click", () => {
    const confirm = el("button", { type: "button", class: "confirm" }, t("going_confirm"));
    const cancel = el("button", { type: "button", class: "link" }, t("cancel"));
    confirm.addEventListener("click", async () => {
      confirm.disabled = true;
      const resp = await api("POST", `/api/v1/alerts/${encodeURIComponent(a.alert_id)}/going`);
      if (resp.ok) { noteGoing(a.alert_id, state.me.username, "going", Date.now()); renderAlerts(); }
      else confirm.disabled = false;
    });
    cancel.addEventListener("click", () => renderAlerts());
    box.replaceChildren(confirm, cancel);
    confirm.focus();
  });
  box.append(first);
  return box;
}

function renderAlerts() {
  const list = $("alerts");
  if (!list || !state.me) return;
  const items = [...state.alerts.values()].sort((x, y) =>
    (ACTIVE.has(y.status) - ACTIVE.has(x.status)) || (y.raised_ts - x.raised_ts));
  $("no-alerts").hidden = items.length > 0;
  list.replaceChildren(...items.map((a) => {
    const active = ACTIVE.has(a.status);
    const cls = `alert ${active ? "active" : "closed"}${a.status === "acknowledged" ? " taken" : ""}`;
    const going = (state.going.get(a.alert_id) || []).map((g) =>
      el("li", {}, g.who === state.me.username ? t("going_you", { time: hhmm(g.at) }) : t("going_by", { who: g.who, time: hhmm(g.at) })));
    const deliv = state.delivery.get(a.alert_id);
    return el("li", { class: cls, id: `alert-${a.alert_id}`, "data-status": a.status },
      el("h3", {}, `${t(`k_${a.kind}`)} · ${a.elder_name || a.elder_id}`),
      el("div", { class: "muted" }, t("raised", { time: hhmm(a.raised_ts) })),
      el("div", { class: "state" }, statusText(a)),
      going.length ? el("ul", { class: "going-list" }, ...going) : null,
      deliv ? el("div", { class: "muted delivery" }, deliv) : null,
      goingButton(a));
  }));
}

async function loadDelivery(alertId) {
  const resp = await api("GET", `/api/v1/alerts/${encodeURIComponent(alertId)}/deliveries`);
  if (!resp.ok) return;
  const items = (await resp.json()).items;
  if (!items.length) return;
  state.delivery.set(alertId, t("delivery", { states: items.map((d) => `${t(`ch_${d.channel}`)} ${t(`ds_${d.state}`)}`).join(", ") }));
  renderAlerts();
}

/* -- the live feed -------------------------------------------------------------------------- */

function connect() {
  const proto = location.protocol === "https:" ? "wss" : "ws";
  const after = state.lastEvent ? `?after=${state.lastEvent}` : "";
  const ws = new WebSocket(`${proto}://${location.host}/api/v1/feed${after}`);
  state.ws = ws;
  ws.onopen = () => { setConn("live"); state.retryMs = 500; };
  ws.onmessage = (msg) => {
    const ev = JSON.parse(msg.data);
    state.lastEvent = Math.max(state.lastEvent, ev.event_id);
    state.alerts.set(ev.alert.alert_id, ev.alert);
    noteGoing(ev.alert.alert_id, ev.transition.actor, ev.transition.note, ev.transition.at_ts);
    renderAlerts();
    if (ACTIVE.has(ev.alert.status) && document.visibilityState === "visible") markRead(ev.alert.alert_id);
    if (ev.transition.from_status !== ev.transition.to_status) loadElders();
    setTimeout(() => loadDelivery(ev.alert.alert_id), 1500);
  };
  ws.onclose = (e) => {
    setConn("offline");
    if (e.code === 4401) { showLogin(); return; }
    setTimeout(connect, state.retryMs);
    state.retryMs = Math.min(state.retryMs * 2, 15000);
  };
}

function setConn(key) {
  state.connKey = key;
  $("conn").textContent = t(key);
  $("conn").dataset.state = key;
}

function markRead(alertId) {
  api("POST", `/api/v1/alerts/${encodeURIComponent(alertId)}/read`).catch(() => {});
}

/* -- elders, devices, position --------------------------------------------------------------- */

function positionMap(e) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "-100 -50 200 100");
  svg.setAttribute("role", "img");
  const p = e.position;
  // Equirectangular offsets from home in metres, scaled so the farther point sits near the edge.
  const dx = (p.lon - e.home_lon) * 111320 * Math.cos((e.home_lat * Math.PI) / 180);
  const dy = (p.lat - e.home_lat) * 110540;
  const dist = Math.round(Math.hypot(dx, dy));
  const scale = 40 / Math.max(Math.abs(dx), Math.abs(dy), 50);
  svg.setAttribute("aria-label", `${t("position", { time: hhmm(p.position_ts || Date.now()) })}: ${dist} m`);
  const dot = (x, y, r, fill) => {
    const c = document.createElementNS(ns, "circle");
    c.setAttribute("cx", x); c.setAttribute("cy", y); c.setAttribute("r", r); c.setAttribute("fill", fill);
    return c;
  };
  const label = (x, y, text) => {
    const s = document.createElementNS(ns, "text");
    s.setAttribute("x", x); s.setAttribute("y", y); s.setAttribute("font-size", "9"); s.textContent = text;
    return s;
  };
  svg.append(dot(0, 0, 4, "#1e6b34"), label(6, 3, t("home")),
             dot(dx * scale, -dy * scale, 6, "#b3261e"), label(dx * scale + 8, -dy * scale + 3, `${dist} m`));
  return svg;
}

async function loadElders() {
  const resp = await api("GET", "/api/v1/family/elders");
  if (!resp.ok) return;
  const body = await resp.json();
  state.centres = body.centers;
  $("elders").replaceChildren(...body.elders.map((e) => el("div", { class: "card elder", id: `elder-${e.id}` },
    el("h3", {}, e.name),
    el("ul", { class: "devices" }, ...e.devices.map((d) => el("li", {},
      el("span", {}, t(`d_${d.type}`)),
      el("span", { class: d.online ? "online" : "offline" },
        `${t(d.online ? "online" : "offline_dev")}${d.battery_pct == null ? "" : " · " + t("battery", { pct: Math.round(d.battery_pct) })}`)))),
    e.position
      ? el("div", { class: "pos" }, el("div", {}, `${t("position", { time: hhmm(e.position.position_ts || Date.now()) })}: ${e.position.lat.toFixed(5)}, ${e.position.lon.toFixed(5)}`), positionMap(e))
      : el("p", { class: "muted" }, t("no_position")))));
  renderAlerts();
}

/* -- preferences ----------------------------------------------------------------------------- */

function renderKinds(selected) {
  const box = $("kinds");
  const chosen = selected || new Set([...box.querySelectorAll("input:checked")].map((i) => i.value));
  box.replaceChildren(...KINDS.map((k) => {
    const input = el("input", { type: "checkbox", value: k, id: `kind-${k}` });
    input.checked = chosen.has(k);
    return el("label", { for: `kind-${k}` }, input, t(`k_${k}`));
  }));
}

async function loadPrefs() {
  const p = await (await api("GET", "/api/v1/me/preferences")).json();
  renderKinds(new Set(p.kinds));
  $("quiet-from").value = p.quiet_from || ""; $("quiet-to").value = p.quiet_to || ""; $("tz").value = p.time_zone;
}

async function savePrefs(ev) {
  ev.preventDefault();
  const body = { kinds: [...$("kinds").querySelectorAll("input:checked")].map((i) => i.value),
    quiet_from: $("quiet-from").value || null, quiet_to: $("quiet-to").value || null,
    time_zone: $("tz").value || "Asia/Shanghai", language: state.lang };
  const resp = await api("PUT", "/api/v1/me/preferences", body);
  $("prefs-saved").textContent = resp.ok ? t("saved") : (await resp.json()).detail.toString();
}

/* -- web push ------------------------------------------------------------------------------ */

let pushNote = "push_off";
let pushError = "";
function renderPushState() { $("push-state").textContent = t(pushNote, { error: pushError }); }

function isIos() { return /iPad|iPhone|iPod/.test(navigator.userAgent); }
function standalone() { return matchMedia("(display-mode: standalone)").matches || navigator.standalone === true; }

function keyBytes(b64) {
  const pad = "=".repeat((4 - (b64.length % 4)) % 4);
  const raw = atob((b64 + pad).replace(/-/g, "+").replace(/_/g, "/"));
  return Uint8Array.from(raw, (c) => c.charCodeAt(0));
}

async function subscribe(reg) {
  const key = (await (await api("GET", "/api/v1/push/vapid-public-key")).json()).public_key;
  const sub = await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: keyBytes(key) });
  const resp = await api("POST", "/api/v1/push/subscriptions", sub.toJSON());
  if (!resp.ok) throw new Error(`HTTP ${resp.status}`);
  pushNote = "push_on"; renderPushState();
}

async function setUpPush() {
  $("install").hidden = !(isIos() && !standalone());
  if (!("serviceWorker" in navigator) || !("PushManager" in window)) { pushNote = "push_unsupported"; renderPushState(); return; }
  const reg = await navigator.serviceWorker.register("/family/sw.js", { scope: "/family" });
  await navigator.serviceWorker.ready;
  document.body.dataset.sw = "ready";
  // A subscription the browser or the push service dropped is made again on every visit.
  if (Notification.permission === "granted") {
    const existing = await reg.pushManager.getSubscription();
    try {
      if (existing) { await api("POST", "/api/v1/push/subscriptions", existing.toJSON()); pushNote = "push_on"; }
      else await subscribe(reg);
    } catch (err) { pushNote = "push_failed"; pushError = err.message; }
  } else if (Notification.permission === "denied") pushNote = "push_denied";
  renderPushState();
  $("push-on").onclick = async () => {
    try {
      if ((await Notification.requestPermission()) !== "granted") { pushNote = "push_denied"; renderPushState(); return; }
      await subscribe(reg);
    } catch (err) { pushNote = "push_failed"; pushError = err.message; renderPushState(); }
  };
  navigator.serviceWorker.addEventListener("message", (m) => { if (m.data === "resubscribe") subscribe(reg).catch(() => {}); });
}

/* -- start ------------------------------------------------------------------------------------ */

async function boot() {
  state.cat = await (await fetch("/static/family/i18n.json")).json();
  state.lang = navigator.language && navigator.language.startsWith("zh") ? "zh-CN" : "en";
  $("login").addEventListener("submit", signIn);
  $("prefs").addEventListener("submit", savePrefs);
  $("lang").addEventListener("click", () => { state.lang = state.lang === "en" ? "zh-CN" : "en"; applyLanguage(); });
  $("logout").addEventListener("click", async () => { await api("POST", "/api/v1/auth/logout", { handover_to: null }); location.reload(); });
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") for (const a of state.alerts.values()) if (ACTIVE.has(a.status)) markRead(a.alert_id);
  });
  applyLanguage();
  const resp = await fetch("/api/v1/auth/me", { credentials: "same-origin" });
  if (!resp.ok) { showLogin(); return; }
  const body = await resp.json();
  await start(body.user, body.csrf_token);
}

boot();
