// The alert detail: state line, procedure card, elder card, devices and history.
import { t, formatTime, formatDateTime, formatAge } from "./i18n.js";

export const STEPS = ["talk", "call_back", "key_holders", "visit", "emergency"];
const NO_EMERGENCY = new Set(["device_offline", "low_battery"]);

// Telecare call handling: speak to the elder first, then call back, then key-holders, then a
// visit, then the emergency service; for a fire the fire service comes first.
export function procedureFor(kind) {
  if (kind === "smoke") return ["emergency", "talk", "call_back", "key_holders", "visit"];
  if (NO_EMERGENCY.has(kind)) return STEPS.slice(0, 4);
  return STEPS;
}

export function emergencyNumber(kind) {
  if (kind === "smoke") return "119";
  if (kind === "wandering") return "110";
  return "120";
}

function text(tag, value, cls) {
  const node = document.createElement(tag);
  node.textContent = value;
  if (cls) node.className = cls;
  return node;
}

function dl(pairs) {
  const list = document.createElement("dl");
  for (const [k, v] of pairs) {
    if (v === null || v === undefined || v === "") continue;
    list.append(text("dt", k));
    const dd = document.createElement("dd");
    if (v instanceof Node) dd.append(v);
    else dd.textContent = String(v);
    list.append(dd);
  }
  return list;
}

function minutes(hhmm) {
  const [h, m] = String(hhmm).split(":").map(Number);
  return h * 60 + (m || 0);
}

// Whether a key-holder can be called now; windows may cross midnight ("22:00"-"07:00").
export function availableNow(windows, date = new Date()) {
  if (!windows || !windows.length) return null;
  const now = date.getHours() * 60 + date.getMinutes();
  return windows.some((w) => {
    const a = minutes(w.from), b = minutes(w.to);
    return a <= b ? now >= a && now < b : now >= a || now < b;
  });
}

export function stateLine(alert, user, now) {
  const parts = [
    t("status_" + alert.status),
    t("raised_ago", { age: formatAge(now - alert.raised_ts) }),
    t("centre_is", { centre: alert.center_id }),
  ];
  if (alert.taken_by) parts.push(t("taken_by", { user: alert.taken_by }));
  if (alert.escalations) parts.push(t("escalations_n", { n: alert.escalations }));
  if (alert.outcome) parts.push(t("outcome_is", { outcome: t("outcome_" + alert.outcome) }));
  if (user.role === "dispatcher" && alert.center_id !== user.center_id) parts.push(t("read_only"));
  return parts.join(" · ");
}

export function renderProcedure(list, alert, steps, canAct, onStep) {
  list.replaceChildren();
  const base = alert.acked_ts || alert.raised_ts;
  procedureFor(alert.kind).forEach((step, i) => {
    const li = document.createElement("li");
    const label = step === "emergency" ? t("step_emergency", { number: emergencyNumber(alert.kind) }) : t("step_" + step);
    li.append(text("span", `${i + 1}. ${label}`));
    const btns = document.createElement("span");
    btns.className = "btns";
    for (const result of ["done", "no_answer"]) {
      const b = text("button", t("result_" + result));
      b.type = "button";
      b.disabled = !canAct;
      b.dataset.step = step;
      b.dataset.result = result;
      if (result === "done") b.setAttribute("aria-keyshortcuts", String(i + 1));
      b.setAttribute("aria-label", `${label}: ${t("result_" + result)}`);
      b.addEventListener("click", () => onStep(step, result));
      btns.append(b);
    }
    li.append(btns);
    const logged = steps.filter((s) => s.step === step);
    if (logged.length) {
      li.classList.add("done");
      const s = logged[logged.length - 1];
      li.append(text("span", t("step_logged", {
        result: t("result_" + s.result) === "result_" + s.result ? s.result : t("result_" + s.result),
        time: formatTime(s.at_ts), after: formatAge(s.at_ts - base), actor: s.actor,
      }), "log"));
    }
    list.append(li);
  });
}

export function renderElder(box, elder, alert) {
  box.replaceChildren();
  if (!elder) {
    box.append(text("p", alert.elder_name || alert.elder_id));
    return;
  }
  const code = elder.access_code ? text("span", elder.access_code, "secret") : null;
  box.append(dl([
    [t("name"), elder.name],
    [t("address"), elder.address],
    [t("phone"), elder.phone],
    [t("language"), elder.language],
    [t("notes"), elder.notes],
    [t("access_code"), code],
    [t("home"), elder.home_lat != null ? `${elder.home_lat.toFixed(5)}, ${elder.home_lon.toFixed(5)}` : null],
    [t("safe_radius"), elder.safe_radius_m != null ? `${elder.safe_radius_m} m` : null],
  ]));
  const fams = elder.families || [];
  box.append(text("h3", t("key_holders")));
  if (!fams.length) box.append(text("p", t("none"), "hint"));
  for (const f of fams) {
    const now = availableNow(f.available);
    const windows = (f.available || []).map((w) => `${w.from}–${w.to}`).join(", ");
    const line = `${f.key_holder ? `[${t("key_holder_tag")}] ` : ""}${f.name} (${f.relation || "-"}) ${f.phone || ""}` +
      (windows ? ` · ${windows}` : "") + (now === true ? ` · ${t("available_now")}` : now === false ? ` · ${t("not_available_now")}` : "");
    box.append(text("p", line, now ? "kh now" : "kh"));
  }
}

export function renderDevices(box, elder, now) {
  box.replaceChildren();
  const devices = (elder && elder.devices) || [];
  if (!devices.length) {
    box.append(text("p", t("none"), "hint"));
    return;
  }
  for (const d of devices) {
    box.append(dl([
      [`${t("device_" + d.type)}`, d.id],
      [t("online"), d.online ? t("yes") : t("no")],
      [t("battery"), d.battery_pct != null ? `${d.battery_pct} %` : null],
      [t("last_seen"), d.last_seen_ts ? t("ago", { age: formatAge(now - d.last_seen_ts) }) : null],
      [t("position"), d.lat != null ? `${d.lat.toFixed(5)}, ${d.lon.toFixed(5)}` : null],
    ]));
  }
}

export function renderHistory(list, history) {
  list.replaceChildren();
  for (const h of history) {
    const from = h.from_status ? t("status_" + h.from_status) : "—";
    const line = `${formatDateTime(h.at_ts)} · ${from} → ${t("status_" + h.to_status)} · ${h.actor} · ${h.center_id}` + (h.note ? ` · ${h.note}` : "");
    list.append(text("li", line));
  }
}
