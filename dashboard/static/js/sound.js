// Alarm sounds made with WebAudio (no sound files). Browsers start an AudioContext only from a
// user gesture (autoplay policy); the sign-in button's press arms it with a test tone, and the
// console shows a red banner whenever the context is not running.
let ctx = null;
const listeners = new Set();

export function onAudioState(fn) {
  listeners.add(fn);
}

function notify() {
  for (const fn of listeners) fn(running());
}

export function running() {
  return ctx !== null && ctx.state === "running";
}

function context() {
  if (ctx === null) {
    const Ctor = window.AudioContext || window.webkitAudioContext;
    if (!Ctor) return null;
    ctx = new Ctor();
    ctx.onstatechange = notify;
  }
  return ctx;
}

// Called from a key press or click: creates/resumes the context and plays the test tone.
export async function arm() {
  const c = context();
  if (!c) {
    notify();
    return false;
  }
  try {
    await Promise.race([c.resume(), new Promise((r) => setTimeout(r, 500))]);
  } catch {
    // resume() rejects when the browser refuses; the banner says so.
  }
  if (running()) testTone();
  notify();
  return running();
}

// Without a gesture (a reload of the console): probe, and show the banner if blocked.
export function probe() {
  const c = context();
  if (c && c.state !== "running") c.resume().catch(() => {});
  setTimeout(notify, 300);
  notify();
}

function beep(freq, start, dur, type = "sine", gain = 0.25) {
  if (!running()) return;
  const osc = ctx.createOscillator();
  const amp = ctx.createGain();
  osc.type = type;
  osc.frequency.value = freq;
  const t0 = ctx.currentTime + start;
  amp.gain.setValueAtTime(0, t0);
  amp.gain.linearRampToValueAtTime(gain, t0 + 0.01);
  amp.gain.setValueAtTime(gain, t0 + dur - 0.02);
  amp.gain.linearRampToValueAtTime(0, t0 + dur);
  osc.connect(amp).connect(ctx.destination);
  osc.start(t0);
  osc.stop(t0 + dur + 0.02);
}

export function testTone() {
  beep(660, 0, 0.18);
  beep(880, 0.22, 0.18);
}

// Personal alarm: a rising three-note call, repeated by the caller every few seconds.
// Each cue returns whether it was heard (false while the browser keeps audio suspended).
export function criticalCue() {
  beep(700, 0, 0.16, "triangle");
  beep(940, 0.2, 0.16, "triangle");
  beep(1250, 0.4, 0.3, "triangle");
  return running();
}

// Fire: the temporal-three pattern of ISO 8201 / NFPA 72 (three 0.5 s tones, 0.5 s apart),
// so a smoke alert never sounds like a personal alarm.
export function smokeCue() {
  for (let i = 0; i < 3; i += 1) beep(2100, i, 0.5, "square", 0.12);
  return running();
}
