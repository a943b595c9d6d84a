/* Service worker of the family page: shows pushed alerts on a locked phone, reports them
   delivered and read, and asks the page to subscribe again when the subscription changes. */
"use strict";

const TEXT = {
  "zh-CN": { sos: "紧急呼叫", fall: "跌倒", wandering: "走失", smoke: "烟雾", inactivity: "长时间未活动",
    device_offline: "设备离线", low_battery: "电量低", anomaly: "生命体征异常",
    open: "请留意，照护中心正在处理", escalated: "已转给其他照护中心", acknowledged: "照护中心已接警",
    resolved: "已解除", cancelled: "已取消", going: "{who} 正在赶去" },
  en: { sos: "SOS call", fall: "Fall", wandering: "Left safe zone", smoke: "Smoke", inactivity: "No activity",
    device_offline: "Device offline", low_battery: "Low battery", anomaly: "Unusual vital signs",
    open: "The care centre is on it", escalated: "Passed to another care centre", acknowledged: "Taken by the care centre",
    resolved: "All clear", cancelled: "Cancelled", going: "{who} is on the way" },
};

function lang() { return (self.navigator.language || "zh-CN").startsWith("zh") ? "zh-CN" : "en"; }

function receipt(data, state) {
  return fetch("/api/v1/push/receipts", {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ delivery_id: data.delivery_id, receipt: data.receipt, state }),
  }).catch(() => {});
}

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

self.addEventListener("push", (event) => {
  const data = event.data ? event.data.json() : {};
  const text = TEXT[lang()];
  const base = data.state && data.state.startsWith("going:") ? "going" : data.status;
  const body = (text[base] || data.status || "").replace("{who}", data.by || "");
  const urgent = data.severity === "critical";
  event.waitUntil(Promise.all([
    // One notification per alert (tag), replaced as its state changes; urgent ones stay up.
    self.registration.showNotification(`${text[data.kind] || data.kind} · ${data.elder_name || ""}`, {
      body, tag: data.alert_id, renotify: true, requireInteraction: urgent,
      icon: "/family/icon-192.png", badge: "/family/icon-192.png", data,
    }),
    receipt(data, "delivered"),
  ]));
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const data = event.notification.data || {};
  event.waitUntil(Promise.all([
    receipt(data, "read"),
    self.clients.matchAll({ type: "window" }).then((list) => {
      for (const c of list) if (c.url.includes("/family")) return c.focus();
      return self.clients.openWindow(`/family#alert-${data.alert_id || ""}`);
    }),
  ]));
});

self.addEventListener("pushsubscriptionchange", (event) => {
  event.waitUntil(self.clients.matchAll({ type: "window" }).then((list) => {
    for (const c of list) c.postMessage("resubscribe");
  }));
});
