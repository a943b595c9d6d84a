// Message catalogues (static/i18n/*.json); the language is the user's choice, else the browser's.
const SUPPORTED = ["zh-CN", "en"];
const STORE_KEY = "eldercare.lang";
let messages = {};
let current = "en";

export function pickLanguage(userLanguage) {
  const stored = localStorage.getItem(STORE_KEY);
  if (stored && SUPPORTED.includes(stored)) return stored;
  for (const lang of navigator.languages || [navigator.language || "en"]) {
    if (lang.toLowerCase().startsWith("zh")) return "zh-CN";
    if (lang.toLowerCase().startsWith("en")) return "en";
  }
  return SUPPORTED.includes(userLanguage) ? userLanguage : "en";
}

export async function loadLanguage(lang, remember = false) {
  if (!SUPPORTED.includes(lang)) lang = "en";
  const resp = await fetch(`/static/i18n/${lang}.json`, { credentials: "same-origin" });
  messages = await resp.json();
  current = lang;
  if (remember) localStorage.setItem(STORE_KEY, lang);
  document.documentElement.lang = lang;
  applyTo(document);
  for (const sel of document.querySelectorAll(".lang-select")) sel.value = lang;
  return lang;
}

export function language() {
  return current;
}

// t("age_s", {n: 5}) -> "5 s"; a missing key shows itself so it is noticed.
export function t(key, params = {}) {
  const text = messages[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => (name in params ? String(params[name]) : `{${name}}`));
}

export function applyTo(root) {
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  document.title = t("page_title");
}

export function formatTime(ts) {
  return new Date(ts).toLocaleTimeString(current, { hour12: false });
}

export function formatDateTime(ts) {
  return new Date(ts).toLocaleString(current, { hour12: false });
}

export function formatAge(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return t("age_s", { s });
  const m = Math.floor(s / 60);
  if (m < 60) return t("age_m_s", { m, s: String(s % 60).padStart(2, "0") });
  return t("age_h_m", { h: Math.floor(m / 60), m: String(m % 60).padStart(2, "0") });
}
