// The district map in SVG from local data only: outline and 1 km grid (/api/v1/map/district,
// WGS-84), centres with coverage circles and load, open alerts, a wandering elder's track.
import { t } from "./i18n.js";

const NS = "http://www.w3.org/2000/svg";
const M_PER_DEG_LAT = 111195.08; // mean Earth radius (IUGG) * pi / 180
const WIDTH = 400;

function el(name, attrs = {}, text) {
  const node = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

function isGridCell(feature) {
  const p = feature.properties || {};
  return p.kind === "cell" || p.kind === "grid" || p.kind === "grid_cell" || "row" in p;
}

function polygons(geometry) {
  if (!geometry) return [];
  if (geometry.type === "Polygon") return [geometry.coordinates];
  if (geometry.type === "MultiPolygon") return geometry.coordinates;
  return [];
}

export class DistrictMap {
  constructor(container, { onSelect }) {
    this.container = container;
    this.onSelect = onSelect;
    this.district = null;
    this.centers = [];
    this.alerts = [];
    this.selectedId = null;
    this.track = [];
    this.home = null;
    this.userCenter = null;
  }

  setDistrict(fc) { this.district = fc; this.render(); }
  setCenters(list, userCenter) { this.centers = list || []; this.userCenter = userCenter; this.render(); }
  setAlerts(list) { this.alerts = list; this.render(); }
  // A wandering track zooms the map to the walk and the home, so a 1 km walk is legible.
  setSelection(id, track, home) {
    this.selectedId = id;
    this.track = track || [];
    this.home = home || null;
    this.render();
  }

  zoomBox() {
    if (this.track.length < 2) return null;
    const pts = [...this.track, ...(this.home ? [this.home] : [])];
    const lats = pts.map((p) => p.lat), lons = pts.map((p) => p.lon);
    const pad = 0.004; // about 450 m around the walk
    return {
      south: Math.min(...lats) - pad, north: Math.max(...lats) + pad,
      west: Math.min(...lons) - pad * 1.3, east: Math.max(...lons) + pad * 1.3,
    };
  }

  projection() {
    const lats = [];
    const lons = [];
    for (const f of this.district?.features || []) {
      if (isGridCell(f)) continue;
      for (const poly of polygons(f.geometry)) for (const ring of poly) for (const [lon, lat] of ring) {
        lats.push(lat);
        lons.push(lon);
      }
    }
    for (const c of this.centers) { lats.push(c.lat); lons.push(c.lon); }
    if (!lats.length) return null;
    const pad = 0.004;
    let south = Math.min(...lats) - pad, north = Math.max(...lats) + pad;
    let west = Math.min(...lons) - pad * 1.3, east = Math.max(...lons) + pad * 1.3;
    const zoom = this.zoomBox();
    if (zoom) ({ south, north, west, east } = zoom);
    const kx = M_PER_DEG_LAT * Math.cos(((south + north) / 2) * Math.PI / 180);
    const pxPerM = WIDTH / ((east - west) * kx);
    const height = (north - south) * M_PER_DEG_LAT * pxPerM;
    return {
      height,
      pxPerM,
      xy: (lat, lon) => [(lon - west) * kx * pxPerM, (north - lat) * M_PER_DEG_LAT * pxPerM],
    };
  }

  ringPath(pj, ring) {
    return "M" + ring.map(([lon, lat]) => pj.xy(lat, lon).map((v) => v.toFixed(1)).join(",")).join("L") + "Z";
  }

  render() {
    const pj = this.projection();
    this.container.replaceChildren();
    if (!pj) return;
    const svg = el("svg", { viewBox: `0 0 ${WIDTH} ${pj.height.toFixed(0)}`, role: "img", "aria-labelledby": "map-title" });
    svg.append(el("title", { id: "map-title" }, t("map_summary", {
      centres: this.centers.length, alerts: this.alerts.length,
    })));
    svg.append(el("rect", { width: WIDTH, height: pj.height.toFixed(0), fill: "#eceff1" }));
    const land = el("g", { id: "map-district" });
    const grid = el("g", { id: "map-grid", fill: "none", stroke: "#90a4ae", "stroke-width": 0.6 });
    for (const f of this.district?.features || []) {
      const d = polygons(f.geometry).map((poly) => poly.map((r) => this.ringPath(pj, r)).join(" ")).join(" ");
      if (isGridCell(f)) grid.append(el("path", { d }));
      else land.append(el("path", { d, fill: "#ffffff", stroke: "#263238", "stroke-width": 2, "fill-rule": "evenodd" }));
    }
    svg.append(land, grid, this.renderCenters(pj), this.renderTrack(pj), this.renderHome(pj), this.renderAlerts(pj), this.renderScale(pj));
    if (this.zoomBox()) {
      svg.append(el("text", { x: 8, y: 16, "font-size": 11, fill: "#4a148c", "font-weight": 700,
        stroke: "#fff", "stroke-width": 3, "paint-order": "stroke" }, t("map_zoomed")));
    }
    this.container.append(svg);
  }

  renderCenters(pj) {
    const g = el("g", { id: "map-centres" });
    for (const c of this.centers) {
      const [x, y] = pj.xy(c.lat, c.lon);
      const r = (c.coverage_radius_m || 0) * pj.pxPerM;
      const over = c.capacity && c.open_incidents >= c.capacity;
      const mine = c.id === this.userCenter;
      g.append(el("circle", {
        cx: x.toFixed(1), cy: y.toFixed(1), r: r.toFixed(1), fill: "#1565c0", "fill-opacity": 0.07,
        stroke: c.on_duty === false ? "#9e9e9e" : "#1565c0", "stroke-dasharray": c.on_duty === false ? "3 3" : "",
      }));
      const sq = el("rect", {
        x: (x - 4).toFixed(1), y: (y - 4).toFixed(1), width: 8, height: 8,
        fill: over ? "#ad1457" : "#1565c0", stroke: mine ? "#ffbf47" : "#ffffff", "stroke-width": mine ? 2.5 : 1,
      });
      sq.append(el("title", {}, t("map_centre", {
        name: c.name, load: c.open_incidents ?? 0, capacity: c.capacity ?? "?",
        duty: c.on_duty === false ? t("off_duty") : t("on_duty"),
      })));
      g.append(sq);
      if ((c.open_incidents ?? 0) > 0) {
        g.append(el("text", { x: (x + 6).toFixed(1), y: (y - 4).toFixed(1), "font-size": 9, fill: over ? "#ad1457" : "#0d47a1", "font-weight": 700 },
          `${c.open_incidents}/${c.capacity ?? "?"}`));
      }
    }
    return g;
  }

  renderAlerts(pj) {
    const g = el("g", { id: "map-alerts" });
    for (const a of this.alerts) {
      if (typeof a.lat !== "number" || typeof a.lon !== "number") continue;
      const [x, y] = pj.xy(a.lat, a.lon);
      const selected = a.alert_id === this.selectedId;
      const colour = a.kind === "smoke" ? "#a1120a" : a.severity === "critical" ? "#b3141b" : a.severity === "high" ? "#c76b00" : "#2a6fb0";
      const shape = a.kind === "smoke"
        ? el("path", { d: `M${x},${y - 8}L${x + 7},${y + 5}L${x - 7},${y + 5}Z`, fill: colour, stroke: "#fff", "stroke-width": 1.5 })
        : el("circle", { cx: x.toFixed(1), cy: y.toFixed(1), r: selected ? 7 : 5, fill: colour, stroke: selected ? "#000" : "#fff", "stroke-width": 1.5 });
      shape.classList.add("map-alert");
      shape.dataset.alertId = a.alert_id;
      shape.style.cursor = "pointer";
      shape.append(el("title", {}, `${t("kind_" + a.kind)} · ${a.elder_name || a.elder_id}`));
      shape.addEventListener("click", () => this.onSelect(a.alert_id));
      g.append(shape);
      if (selected) g.append(el("circle", { cx: x.toFixed(1), cy: y.toFixed(1), r: 12, fill: "none", stroke: "#000", "stroke-width": 1.5, "stroke-dasharray": "3 2" }));
    }
    return g;
  }

  renderTrack(pj) {
    const g = el("g", { id: "map-track" });
    if (this.track.length < 1) return g;
    const pts = this.track.map((p) => pj.xy(p.lat, p.lon).map((v) => v.toFixed(1)).join(",")).join(" ");
    g.append(el("polyline", { points: pts, fill: "none", stroke: "#6a1b9a", "stroke-width": 2.5, "stroke-linejoin": "round" }));
    for (const p of this.track) {
      const [x, y] = pj.xy(p.lat, p.lon);
      g.append(el("circle", { cx: x.toFixed(1), cy: y.toFixed(1), r: 1.8, fill: "#6a1b9a" }));
    }
    const last = this.track[this.track.length - 1];
    const [lx, ly] = pj.xy(last.lat, last.lon);
    g.append(el("circle", { cx: lx.toFixed(1), cy: ly.toFixed(1), r: 4.5, fill: "#fff", stroke: "#6a1b9a", "stroke-width": 2.5 }));
    return g;
  }

  renderHome(pj) {
    const g = el("g", { id: "map-home" });
    if (!this.home || this.track.length < 2) return g;
    const [x, y] = pj.xy(this.home.lat, this.home.lon);
    const house = el("path", {
      d: `M${x - 6},${y + 5}V${y - 1}L${x},${y - 7}L${x + 6},${y - 1}V${y + 5}Z`,
      fill: "#ffffff", stroke: "#6a1b9a", "stroke-width": 2,
    });
    house.append(el("title", {}, t("home")));
    g.append(house);
    return g;
  }

  renderScale(pj) {
    const g = el("g", { id: "map-scale", "font-size": 10 });
    const fits = [250, 500, 1000, 2000].filter((m) => m * pj.pxPerM <= WIDTH / 3);
    const m = fits.length ? fits[fits.length - 1] : 250;
    const w = m * pj.pxPerM;
    const y = pj.height - 10;
    g.append(el("rect", { x: 8, y, width: w.toFixed(1), height: 4, fill: "#000" }));
    g.append(el("text", { x: 8, y: y - 3 }, "0"));
    g.append(el("text", { x: (8 + w).toFixed(1), y: y - 3, "text-anchor": "middle" }, m >= 1000 ? `${m / 1000} km` : `${m} m`));
    g.append(el("path", { d: `M${WIDTH - 14},8 l-5,13 l5,-3.5 l5,3.5 Z`, fill: "#000" }));
    g.append(el("text", { x: WIDTH - 14, y: 32, "text-anchor": "middle" }, t("north_short")));
    return g;
  }
}
