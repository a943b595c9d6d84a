// Dispatcher console: sign-in, live queue, detail, actions, map and KPIs over one websocket.
import { ApiError, get, post, setCsrf } from "./api.js";
import { renderChart } from "./chart.js";
import {
  emergencyNumber, procedureFor, renderDevices, renderElder, renderHistory, renderProcedure, stateLine,
} from "./detail.js";
import { Feed } from "./feed.js";
import { applyTo, formatAge, language, loadLanguage, pickLanguage, t } from "./i18n.js";
import { DistrictMap } from "./map.js";
import { ACTIVE, needsCue, queueCompare } from "./order.js";
import * as sound from "./sound.js";

const OUTCOMES = ["false_alarm", "handled_by_phone", "visit", "ambulance", "fire_service",
  "no_answer_escalated", "nuisance", "device_fault"];
const CUE_EVERY_MS = 4000;
const DAY_MS = 86400000;

const $ = (id) => document.getElementById(id);
const state = {
  user: null, alerts: new Map(), selectedId: null, detail: null, telemetry: null,
  connected: false, feed: null, map: null, lastCueAt: 0, timers: {}, cues: [],
};

function debounce(name, ms, fn) {
  clearTimeout(state.timers[name]);
  state.timers[name] = setTimeout(fn, ms);
}

function toast(message) {
  const box = $("toast");
  box.textContent = message;
  box.classList.add("show");
  debounce("toast", 4000, () => box.classList.remove("show"));
}

function errorText(err) {
  if (err instanceof ApiError) {
    if (err.status === 401) return t("err_401");
    if (err.status === 403) return t("err_403");
    if (err.status === 409) return err.detail.startsWith("taken by") ? t("taken_by", { user: err.detail.slice(9) }) : err.detail;
    if (err.status === 429) return t("err_429");
    return err.detail;
  }
  return t("err_network");
}

const mine = (a) => state.user && (state.user.role === "admin" || a.center_id === state.user.center_id);
const selected = () => state.alerts.get(state.selectedId) || null;
const canAct = (a) => a && mine(a) && ACTIVE.has(a.status) && a.taken_by === state.user.username;

// ---------------------------------------------------------------- sign-in / sign-out

function showLogin(message = "") {
  state.feed?.stop();
  state.user = null;
  $("console-view").hidden = true;
  $("login-view").hidden = false;
  $("login-error").textContent = message;
  if (location.pathname !== "/login") history.replaceState(null, "", "/login");
  $("login-user").focus();
}

async function onLogin(ev) {
  ev.preventDefault();
  sound.arm(); // inside the press: the browser allows audio from a user gesture only
  $("login-error").textContent = "";
  $("login-submit").disabled = true;
  try {
    const session = await post("/api/v1/auth/login", {
      username: $("login-user").value.trim(), password: $("login-pass").value,
    });
    $("login-pass").value = "";
    setCsrf(session.csrf_token);
    history.pushState(null, "", "/");
    await startConsole(session.user);
  } catch (err) {
    $("login-error").textContent = err instanceof ApiError && err.status === 401 ? t("login_failed") : errorText(err);
  } finally {
    $("login-submit").disabled = false;
  }
}

async function logout(handoverTo = null) {
  try {
    await post("/api/v1/auth/logout", { handover_to: handoverTo });
  } catch (err) {
    if (err instanceof ApiError && err.status === 409) {
      const held = (err.body && err.body.held) || [];
      $("handover-held").textContent = t("handover_held", { n: held.length, ids: held.join(", ") });
      $("handover-error").textContent = handoverTo ? err.detail : "";
      if (!$("handover-dialog").open) $("handover-dialog").showModal();
      return;
    }
    if (!(err instanceof ApiError && err.status === 401)) {
      toast(errorText(err));
      return;
    }
  }
  if ($("handover-dialog").open) $("handover-dialog").close();
  state.alerts.clear();
  state.selectedId = null;
  showLogin();
}

// ---------------------------------------------------------------- console

async function startConsole(user) {
  state.user = user;
  $("login-view").hidden = true;
  $("console-view").hidden = false;
  $("who").textContent = `${user.display_name || user.username} · ${t("role_" + user.role)}${user.center_id ? " · " + user.center_id : ""}`;
  sound.probe();
  state.map = state.map || new DistrictMap($("map"), { onSelect: (id) => select(id, true) });
  state.feed = new Feed({ onEvent, onState: onFeedState, onAuthLost: () => showLogin(t("err_401")) });
  state.feed.start();
  loadMap();
  loadCenters();
  loadKpi();
  renderQueue();
  renderDetail();
  $("queue-list").focus();
  state.focusFirst = true;
}

function onFeedState({ connected }) {
  state.connected = connected;
  renderLive();
  // After (re)connecting, one read of the queue brings alerts that left or changed while the
  // feed was down; the feed's own backlog then keeps it exact.
  if (connected) loadQueue();
}

async function loadQueue() {
  try {
    const { items } = await get("/api/v1/alerts/queue");
    const fresh = new Map(items.map((a) => [a.alert_id, a]));
    for (const [id, a] of state.alerts) if (!fresh.has(id) && a.updated_ts <= Math.max(0, ...items.map((x) => x.updated_ts))) state.alerts.delete(id);
    for (const a of items) upsert(a);
    renderQueue();
    if (state.focusFirst) {
      state.focusFirst = false;
      $("queue-list").querySelector(".q-item")?.focus();
    }
    if (state.selectedId && !state.detail) select(state.selectedId);
  } catch (err) {
    toast(errorText(err));
  }
}

function upsert(alert) {
  const known = state.alerts.get(alert.alert_id);
  if (known && known.updated_ts > alert.updated_ts) return false;
  if (ACTIVE.has(alert.status)) state.alerts.set(alert.alert_id, alert);
  else if (known && state.selectedId === alert.alert_id) state.alerts.set(alert.alert_id, alert);
  else state.alerts.delete(alert.alert_id);
  return true;
}

function onEvent(event) {
  const { alert } = event;
  const before = state.alerts.get(alert.alert_id);
  if (!upsert(alert)) return;
  renderQueue();
  renderLive();
  if (alert.alert_id === state.selectedId) {
    // Refresh the open detail, unless the dispatcher has moved on meanwhile.
    debounce("detail", 250, () => { if (state.selectedId === alert.alert_id) select(alert.alert_id); });
  }
  if (!before && needsCue(alert) && mine(alert)) cue(true);
  debounce("centres", 2000, loadCenters);
  if (event.transition && event.transition.to_status !== "open") debounce("kpi", 3000, loadKpi);
}

function queueItems() {
  return [...state.alerts.values()].filter((a) => ACTIVE.has(a.status)).sort(queueCompare);
}

function renderQueue() {
  const list = $("queue-list");
  const items = queueItems();
  const focusedId = document.activeElement?.closest?.(".q-item")?.dataset.id;
  const now = Date.now();
  list.replaceChildren(...items.map((a) => queueRow(a, now)));
  $("queue-count").textContent = `(${items.length})`;
  $("queue-empty").hidden = items.length > 0;
  if (focusedId) list.querySelector(`.q-item[data-id="${CSS.escape(focusedId)}"]`)?.focus();
  state.map?.setAlerts(items);
  renderCriticalBanner(items, now);
  // Nothing chosen yet: open the head of the queue (without moving the keyboard focus).
  if (!state.selectedId && items.length) select(items[0].alert_id);
}

function queueRow(a, now) {
  const li = document.createElement("li");
  const b = document.createElement("button");
  b.type = "button";
  b.className = `q-item sev-${a.severity} kind-${a.kind}${a.taken_by ? "" : " untaken"}`;
  b.dataset.id = a.alert_id;
  b.setAttribute("aria-current", String(a.alert_id === state.selectedId));
  const tags = document.createElement("span");
  if (a.kind === "smoke") tags.append(tag(t("fire_tag"), "fire"));
  tags.append(tag(t("sev_" + a.severity), a.severity));
  const title = document.createElement("span");
  title.className = "k";
  title.append(tags, `${t("kind_" + a.kind)} · ${a.elder_name || a.elder_id}`);
  const age = document.createElement("span");
  age.className = "age";
  age.dataset.raised = a.raised_ts;
  age.textContent = formatAge(now - a.raised_ts);
  const st = document.createElement("span");
  st.className = "st";
  st.textContent = (a.taken_by ? t("taken_by", { user: a.taken_by }) : t("status_" + a.status)) +
    ` · ${a.center_id}` + (a.escalations ? ` · ${t("escalations_n", { n: a.escalations })}` : "");
  const extra = document.createElement("span");
  extra.className = "who";
  extra.textContent = mine(a) ? (a.kind === "smoke" ? t("press_f") : "") : t("read_only");
  b.append(title, age, st, extra);
  b.addEventListener("click", () => select(a.alert_id));
  b.addEventListener("focus", () => { if (state.selectedId !== a.alert_id) select(a.alert_id); });
  li.append(b);
  return li;
}

function tag(label, cls) {
  const s = document.createElement("span");
  s.className = `tag ${cls}`;
  s.textContent = label;
  return s;
}

function renderCriticalBanner(items, now) {
  const waiting = items.filter((a) => needsCue(a) && mine(a));
  const banner = $("critical-banner");
  banner.hidden = waiting.length === 0;
  if (waiting.length) {
    const oldest = Math.min(...waiting.map((a) => a.raised_ts));
    banner.textContent = t("critical_waiting", { n: waiting.length, age: formatAge(now - oldest) });
  }
  document.title = (waiting.length ? `(${waiting.length}) ⚠ ` : "") + t("page_title");
}

// The audible cue repeats until every critical alert of this centre is taken.
function cue(now = false) {
  const waiting = queueItems().filter((a) => needsCue(a) && mine(a));
  if (!waiting.length) return;
  if (!now && Date.now() - state.lastCueAt < CUE_EVERY_MS) return;
  state.lastCueAt = Date.now();
  const fire = waiting.some((a) => a.kind === "smoke");
  const played = fire ? sound.smokeCue() : sound.criticalCue();
  // The last cues, for the status of the sound (and the browser test).
  state.cues = [...state.cues.slice(-49), { at: state.lastCueAt, sound: fire ? "fire" : "critical", played }];
}

function renderLive() {
  const box = $("live");
  const at = state.feed?.lastEventAt;
  const ago = at ? formatAge(Date.now() - at) : null;
  box.className = `live ${state.connected ? "ok" : "down"}`;
  $("live-text").textContent = state.connected
    ? (ago ? t("live_last", { age: ago }) : t("live_no_event"))
    : (ago ? t("offline_last", { age: ago }) : t("offline"));
}

function tick() {
  if (!state.user) return;
  const now = Date.now();
  renderLive();
  for (const span of document.querySelectorAll(".q-item .age")) span.textContent = formatAge(now - Number(span.dataset.raised));
  const a = selected();
  if (a) $("d-state").textContent = stateLine(a, state.user, now);
  renderCriticalBanner(queueItems(), now);
  cue();
}

// ---------------------------------------------------------------- selection and detail

async function select(id, focusDetail = false) {
  const changed = state.selectedId !== id;
  state.selectedId = id;
  if (changed) {
    state.detail = null;
    state.telemetry = null;
    for (const b of document.querySelectorAll(".q-item")) b.setAttribute("aria-current", String(b.dataset.id === id));
  }
  renderDetail();
  if (focusDetail) $("detail").focus();
  try {
    const detail = await get(`/api/v1/alerts/${encodeURIComponent(id)}`);
    // The registry's full card (address, key-holders, devices; the access code only for the
    // dispatcher holding the alert) completes the alert's own summary of the elder.
    const card = await get(`/api/v1/elders/${encodeURIComponent(detail.alert.elder_id)}`).catch(() => null);
    if (state.selectedId !== id) return;
    detail.elder = { ...(detail.elder || {}), ...(card || {}) };
    state.detail = detail;
    upsert(detail.alert);
    if (!state.alerts.has(id)) state.alerts.set(id, detail.alert);
    renderDetail();
  } catch (err) {
    toast(errorText(err));
  }
  if (changed || !state.telemetry) loadTelemetry(id);
}

async function loadTelemetry(id) {
  try {
    const data = await get(`/api/v1/alerts/${encodeURIComponent(id)}/telemetry`);
    if (state.selectedId !== id) return;
    state.telemetry = data;
  } catch {
    state.telemetry = null;
  }
  renderTelemetry();
}

function renderTelemetry() {
  const a = selected();
  if (!a) return;
  const elder = state.detail?.elder;
  const home = elder && elder.home_lat != null ? { lat: elder.home_lat, lon: elder.home_lon } : null;
  renderChart($("chart"), state.telemetry, a.event_ts, home);
  state.map?.setSelection(a.alert_id, state.telemetry?.track || [], home);
}

function renderDetail() {
  const a = selected();
  $("detail-empty").hidden = Boolean(a);
  $("detail-body").hidden = !a;
  if (!a) return;
  $("d-title").textContent = `${t("kind_" + a.kind)} · ${t("sev_" + a.severity)} · ${a.elder_name || a.elder_id}`;
  $("d-state").textContent = stateLine(a, state.user, Date.now());
  const active = ACTIVE.has(a.status);
  $("act-take").disabled = !(mine(a) && active && a.taken_by !== state.user.username);
  $("act-close").disabled = !canAct(a);
  $("act-note").disabled = !mine(a);
  $("act-119").hidden = a.kind !== "smoke";
  const steps = state.detail?.steps || [];
  renderProcedure($("procedure"), a, steps, canAct(a), logStep);
  renderElder($("elder-card"), state.detail?.elder, a);
  renderDevices($("devices"), state.detail?.elder, Date.now());
  renderHistory($("history"), state.detail?.history || []);
  renderTelemetry();
}

// ---------------------------------------------------------------- actions

async function take() {
  const a = selected();
  if (!a) return;
  try {
    const { alert } = await post(`/api/v1/alerts/${encodeURIComponent(a.alert_id)}/ack`);
    upsert(alert);
    toast(t("taken_ok"));
    renderQueue();
    await select(a.alert_id);
  } catch (err) {
    toast(errorText(err));
    select(a.alert_id);
  }
}

function openOutcome() {
  const a = selected();
  if (!canAct(a)) {
    toast(a ? t("take_first") : t("choose_first"));
    return;
  }
  $("outcome-error").textContent = "";
  $("outcome-note").value = "";
  for (const r of document.querySelectorAll("#outcome-options input")) r.checked = false;
  $("outcome-dialog").showModal();
  document.querySelector("#outcome-options input").focus();
}

async function submitOutcome(ev) {
  ev.preventDefault();
  const a = selected();
  const choice = document.querySelector("#outcome-options input:checked");
  if (!choice) {
    $("outcome-error").textContent = t("outcome_missing");
    document.querySelector("#outcome-options input").focus();
    return;
  }
  try {
    const { alert } = await post(`/api/v1/alerts/${encodeURIComponent(a.alert_id)}/resolve`, {
      outcome: choice.value, note: $("outcome-note").value,
    });
    $("outcome-dialog").close();
    upsert(alert);
    toast(t("closed_ok", { outcome: t("outcome_" + choice.value) }));
    const next = queueItems()[0];
    state.selectedId = null;
    renderQueue();
    if (next) select(next.alert_id);
    else renderDetail();
    $("queue-list").querySelector(".q-item")?.focus() || $("queue-list").focus();
  } catch (err) {
    $("outcome-error").textContent = errorText(err);
  }
}

function openNote() {
  if (!selected()) return;
  $("note-text").value = "";
  $("note-dialog").showModal();
  $("note-text").focus();
}

async function submitNote(ev) {
  ev.preventDefault();
  const note = $("note-text").value.trim();
  if (!note) return;
  try {
    await post(`/api/v1/alerts/${encodeURIComponent(state.selectedId)}/notes`, { note });
    $("note-dialog").close();
    toast(t("note_ok"));
    select(state.selectedId);
  } catch (err) {
    toast(errorText(err));
  }
}

async function logStep(step, result) {
  const a = selected();
  if (!canAct(a)) {
    toast(t("take_first"));
    return;
  }
  try {
    await post(`/api/v1/alerts/${encodeURIComponent(a.alert_id)}/steps`, { step, result });
    toast(t("step_ok"));
    await select(a.alert_id);
  } catch (err) {
    toast(errorText(err));
  }
}

// The card opens at once (a fire does not wait for a network round trip) and fills in the
// address, access notes and key-holders as soon as the elder's card arrives.
async function openFireCard() {
  let a = selected();
  if (!a || a.kind !== "smoke") a = queueItems().find((x) => x.kind === "smoke");
  if (!a) {
    toast(t("no_fire"));
    return;
  }
  const loaded = () => state.detail && state.detail.alert.alert_id === a.alert_id;
  renderFireCard(a, loaded() ? state.detail.elder : null);
  $("fire-dialog").showModal();
  $("fire-called").focus();
  if (!loaded()) {
    await select(a.alert_id);
    if ($("fire-dialog").open && loaded()) renderFireCard(a, state.detail.elder);
  }
}

function renderFireCard(a, elder) {
  const body = $("fire-body");
  body.replaceChildren();
  const p = (txt, cls) => { const n = document.createElement("p"); n.textContent = txt; if (cls) n.className = cls; body.append(n); };
  p(t("fire_call", { number: emergencyNumber("smoke") }), "big");
  p(`${t("address")}: ${elder?.address || `${a.lat.toFixed(5)}, ${a.lon.toFixed(5)}`}`, "big");
  p(`${t("name")}: ${a.elder_name || a.elder_id}${elder?.phone ? " · " + elder.phone : ""}`);
  p(`${t("access_notes")}: ${elder ? elder.notes || t("none") : "…"}`);
  if (elder?.access_code) p(`${t("access_code")}: ${elder.access_code}`, "secret");
  const kh = (elder?.families || []).filter((f) => f.key_holder).map((f) => `${f.name} ${f.phone || ""}`);
  p(`${t("key_holders")}: ${elder ? kh.join("; ") || t("none") : "…"}`);
}

// ---------------------------------------------------------------- map, centres, KPIs

async function loadMap() {
  try {
    state.map.setDistrict(await get("/api/v1/map/district"));
  } catch {
    $("map-legend").textContent = t("map_unavailable");
  }
}

async function loadCenters() {
  try {
    const centers = await get("/api/v1/centers");
    state.map.setCenters(Array.isArray(centers) ? centers : centers.items || [], state.user?.center_id);
    $("map-legend").textContent = t("map_legend");
  } catch {
    /* the map still shows the outline and alerts */
  }
}

async function loadKpi() {
  const table = $("kpi-table");
  try {
    const kpi = await get(`/api/v1/kpi?since_ts=${Date.now() - DAY_MS}`);
    const rows = [kpi.overall, ...(kpi.centers || [])];
    const head = document.createElement("tr");
    for (const h of ["kpi_centre", "kpi_answered", "kpi_60", "kpi_180", "kpi_median"]) {
      const th = document.createElement("th");
      th.scope = "col";
      th.textContent = t(h);
      head.append(th);
    }
    const pct = (v) => (v == null ? "–" : `${(100 * v).toFixed(1)} %`);
    const body = rows.map((k) => {
      const tr = document.createElement("tr");
      if (k.center_id && k.center_id === state.user?.center_id) tr.className = "mine";
      const cells = [k.center_id || t("kpi_all"), k.answered, pct(k.share_60s), pct(k.share_180s),
        k.median_answer_s == null ? "–" : `${Math.round(k.median_answer_s)} s`];
      cells.forEach((v, i) => {
        const td = document.createElement(i === 0 ? "th" : "td");
        if (i === 0) td.scope = "row";
        td.textContent = String(v);
        // Telecare targets: 97.5 % answered within 60 s, 99 % within 180 s (TEC Quality standard).
        if ((i === 2 && k.share_60s != null && k.share_60s < 0.975) || (i === 3 && k.share_180s != null && k.share_180s < 0.99)) td.className = "below";
        tr.append(td);
      });
      return tr;
    });
    table.replaceChildren(head, ...body);
  } catch {
    table.replaceChildren();
  }
}

// ---------------------------------------------------------------- keyboard

const SHORTCUTS = [
  ["↑ ↓ / J K", "key_move"], ["Enter", "key_open"], ["T", "key_take"], ["1–5", "key_step"],
  ["Shift+1–5", "key_step_no"], ["O", "key_close"], ["N", "key_note"], ["F", "key_fire"],
  ["Q", "key_queue"], ["M", "key_map"], ["S", "key_sound"], ["?", "key_help"], ["Esc", "key_esc"],
];

function moveSelection(delta) {
  const items = queueItems();
  if (!items.length) return;
  let i = items.findIndex((a) => a.alert_id === state.selectedId);
  i = i < 0 ? 0 : Math.min(items.length - 1, Math.max(0, i + delta));
  select(items[i].alert_id);
  $("queue-list").querySelector(`.q-item[data-id="${CSS.escape(items[i].alert_id)}"]`)?.focus();
}

function onKey(e) {
  if (!sound.running() && state.user) sound.arm();
  if (!state.user || e.ctrlKey || e.metaKey || e.altKey) return;
  if (document.querySelector("dialog[open]")) return;
  const tgt = e.target;
  if (tgt.closest && tgt.closest("input, textarea, select, [contenteditable]")) return;
  const digit = /^Digit([1-5])$/.exec(e.code);
  if (digit) {
    const a = selected();
    const steps = a ? procedureFor(a.kind) : [];
    const step = steps[Number(digit[1]) - 1];
    if (step) logStep(step, e.shiftKey ? "no_answer" : "done");
    e.preventDefault();
    return;
  }
  const actions = {
    ArrowDown: () => moveSelection(1), j: () => moveSelection(1),
    ArrowUp: () => moveSelection(-1), k: () => moveSelection(-1),
    t: take, o: openOutcome, n: openNote, f: openFireCard,
    q: () => ($("queue-list").querySelector('.q-item[aria-current="true"]') || $("queue-list")).focus(),
    m: () => $("map").focus(), s: () => sound.arm(), "?": () => $("help-dialog").showModal(),
  };
  const fn = actions[e.key.length === 1 ? e.key.toLowerCase() : e.key];
  if (!fn) return;
  e.preventDefault();
  fn();
}

function setupDialogs() {
  const options = $("outcome-options");
  OUTCOMES.forEach((code, i) => {
    const id = `outcome-${code}`;
    const wrap = document.createElement("div");
    const input = document.createElement("input");
    Object.assign(input, { type: "radio", name: "outcome", value: code, id, required: true });
    const label = document.createElement("label");
    label.htmlFor = id;
    label.dataset.i18nOutcome = code;
    label.textContent = `${i + 1} ${t("outcome_" + code)}`;
    wrap.append(input, label);
    options.append(wrap);
  });
  $("outcome-dialog").addEventListener("keydown", (e) => {
    const n = /^Digit([1-8])$/.exec(e.code);
    if (n && e.target.tagName !== "TEXTAREA") {
      const r = options.querySelectorAll("input")[Number(n[1]) - 1];
      r.checked = true;
      r.focus();
      e.preventDefault();
    } else if (e.key === "Enter" && e.target.tagName !== "TEXTAREA" && e.target.tagName !== "BUTTON") {
      e.preventDefault();
      $("outcome-form").requestSubmit();
    }
  });
  $("outcome-form").addEventListener("submit", submitOutcome);
  $("note-form").addEventListener("submit", submitNote);
  $("handover-form").addEventListener("submit", (e) => { e.preventDefault(); logout($("handover-to").value.trim() || null); });
  $("fire-called").addEventListener("click", () => { $("fire-dialog").close(); logStep("emergency", "called_119"); });
  for (const btn of document.querySelectorAll("dialog .cancel")) btn.addEventListener("click", () => btn.closest("dialog").close());
  const help = $("help-list");
  help.replaceChildren(...SHORTCUTS.flatMap(([k, key]) => {
    const dt = document.createElement("dt");
    const kbd = document.createElement("kbd");
    kbd.textContent = k;
    dt.append(kbd);
    const dd = document.createElement("dd");
    dd.dataset.i18n = key;
    dd.textContent = t(key);
    return [dt, dd];
  }));
}

function relabel() {
  applyTo(document);
  for (const label of document.querySelectorAll("[data-i18n-outcome]")) {
    const i = OUTCOMES.indexOf(label.dataset.i18nOutcome);
    label.textContent = `${i + 1} ${t("outcome_" + label.dataset.i18nOutcome)}`;
  }
  if (state.user) {
    renderQueue();
    renderDetail();
    loadKpi();
    state.map?.render();
  }
}

// ---------------------------------------------------------------- start

async function main() {
  await loadLanguage(pickLanguage(null));
  setupDialogs();
  relabel();
  $("login-form").addEventListener("submit", onLogin);
  for (const sel of document.querySelectorAll(".lang-select")) {
    sel.addEventListener("change", async () => { await loadLanguage(sel.value, true); relabel(); });
  }
  $("logout").addEventListener("click", () => logout());
  $("sound-test").addEventListener("click", () => sound.arm());
  $("audio-enable").addEventListener("click", () => sound.arm());
  $("help-btn").addEventListener("click", () => $("help-dialog").showModal());
  $("act-take").addEventListener("click", take);
  $("act-close").addEventListener("click", openOutcome);
  $("act-note").addEventListener("click", openNote);
  $("act-119").addEventListener("click", openFireCard);
  document.addEventListener("keydown", onKey);
  sound.onAudioState((ok) => { $("audio-banner").hidden = ok || !state.user; });
  setInterval(tick, 1000);
  try {
    const me = await get("/api/v1/auth/me");
    setCsrf(me.csrf_token);
    if (location.pathname !== "/") history.replaceState(null, "", "/");
    await startConsole(me.user);
  } catch {
    showLogin();
  }
  window.eldercareConsole = { state, language }; // read by the browser test and for debugging
}

main();
