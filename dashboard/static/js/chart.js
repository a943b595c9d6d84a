// SVG line charts of the telemetry around an alert (accelerometer g, smoke and temperature,
// a wandering track's distance from home), with the alert's instant marked.
import { t, formatTime } from "./i18n.js";

const NS = "http://www.w3.org/2000/svg";
const W = 360, H = 92, L = 40, R = 8, T = 8, B = 18;

function el(name, attrs = {}, text) {
  const node = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

function distanceM(lat1, lon1, lat2, lon2) {
  const rad = Math.PI / 180, r = 6371008.8;
  const dp = (lat2 - lat1) * rad, dl = (lon2 - lon1) * rad;
  const h = Math.sin(dp / 2) ** 2 + Math.cos(lat1 * rad) * Math.cos(lat2 * rad) * Math.sin(dl / 2) ** 2;
  return 2 * r * Math.asin(Math.min(1, Math.sqrt(h)));
}

// [{field, unit, points:[[ts, value]]}] from any of the telemetry shapes.
export function seriesOf(data, home) {
  if (!data) return [];
  if (Array.isArray(data.track) && data.track.length) {
    const origin = home || data.track[0];
    return [{
      field: "distance_home_m", unit: "m",
      points: data.track.map((p) => [p.ts, distanceM(origin.lat, origin.lon, p.lat, p.lon)]),
    }];
  }
  const rows = data.series || data.points || [];
  const fields = new Set();
  for (const row of rows) for (const [k, v] of Object.entries(row)) if (k !== "ts" && typeof v === "number") fields.add(k);
  return [...fields].slice(0, 3).map((field) => ({
    field,
    unit: field.endsWith("_db_m") ? "dB/m" : field.endsWith("_c") ? "°C" : field === "g" ? "g" : field.endsWith("_pct") ? "%" : field.endsWith("_bpm") ? "bpm" : "",
    points: rows.filter((r) => typeof r[field] === "number").map((r) => [r.ts, r[field]]),
  }));
}

function panel(s, alertTs) {
  const xs = s.points.map((p) => p[0]);
  const ys = s.points.map((p) => p[1]);
  const x0 = Math.min(...xs, alertTs ?? Infinity), x1 = Math.max(...xs, alertTs ?? -Infinity);
  let y0 = Math.min(...ys), y1 = Math.max(...ys);
  if (y0 === y1) { y0 -= 1; y1 += 1; }
  const sx = (x) => L + ((x - x0) / Math.max(1, x1 - x0)) * (W - L - R);
  const sy = (y) => T + (1 - (y - y0) / (y1 - y0)) * (H - T - B);
  const name = t("field_" + s.field);
  const label = `${name.startsWith("field_") ? s.field : name}${s.unit ? ` (${s.unit})` : ""}`;
  const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, role: "img",
    "aria-label": t("chart_summary", { field: label, min: y0.toFixed(2), max: y1.toFixed(2), n: s.points.length }) });
  svg.append(el("rect", { x: L, y: T, width: W - L - R, height: H - T - B, fill: "#f7f9fb", stroke: "#c9d1d9" }));
  svg.append(el("text", { x: L + 4, y: T + 11, "font-size": 10, fill: "#1b1f24" }, label));
  svg.append(el("text", { x: L - 3, y: T + 8, "font-size": 9, "text-anchor": "end", fill: "#4a5560" }, y1.toFixed(y1 < 10 ? 2 : 0)));
  svg.append(el("text", { x: L - 3, y: H - B, "font-size": 9, "text-anchor": "end", fill: "#4a5560" }, y0.toFixed(y0 < 10 ? 2 : 0)));
  svg.append(el("text", { x: L, y: H - 5, "font-size": 9, fill: "#4a5560" }, formatTime(x0)));
  svg.append(el("text", { x: W - R, y: H - 5, "font-size": 9, "text-anchor": "end", fill: "#4a5560" }, formatTime(x1)));
  if (alertTs) {
    const ax = sx(alertTs);
    svg.append(el("line", { x1: ax, x2: ax, y1: T, y2: H - B, stroke: "#b3141b", "stroke-dasharray": "3 2" }));
    const right = ax > W - R - 40; // near the right edge: label on the line's left
    svg.append(el("text", { x: right ? ax - 3 : ax + 3, y: H - B - 3, "font-size": 9, fill: "#b3141b",
      "text-anchor": right ? "end" : "start" }, t("alert_mark")));
  }
  const d = s.points.map((p, i) => `${i ? "L" : "M"}${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`).join("");
  svg.append(el("path", { d, fill: "none", stroke: "#0b5cad", "stroke-width": 1.5 }));
  return svg;
}

export function renderChart(container, data, alertTs, home) {
  container.replaceChildren();
  const all = seriesOf(data, home).filter((s) => s.points.length);
  if (!all.length) {
    const p = document.createElement("p");
    p.className = "none";
    p.textContent = t("no_telemetry");
    container.append(p);
    return;
  }
  for (const s of all) container.append(panel(s, alertTs));
}
