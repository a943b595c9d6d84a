"""Models of the wearables: the GPS wristband and the smart cane (pure)."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from firmware_sim.cane import (
    DEFAULT_RATE_HZ,
    FALL_KINDS,
    Samples,
    episode,
    rest_samples,
    walk_samples,
)
from firmware_sim.conditions import Arrhythmia, draw_arrhythmia, draw_immobility_ms
from firmware_sim.device import NEVER, Action, ActionKind, DeviceModel, ModelContext
from firmware_sim.geo import offset
from firmware_sim.routine import ON_FOOT, Routine, Segment, wander_segments
from firmware_sim.scenario import Injection
from gateway import BandTelemetry, CaneTelemetry, Device

# Per-day rates of spontaneous cane episodes while the elder is up. Older adults fall
# about once in three years on average (WHO); fall-like movements are far more common.
CANE_RATES = {
    "fall": 0.001,
    "fall_recovery": 0.001,
    "sit_hard": 0.3,
    "drop_cane": 0.1,
    "stumble": 0.2,
}
# The cane's own fall guess: sensitive but not specific (commercial detectors' figures).
SELF_DETECT = {
    "fall": 0.85,
    "fall_recovery": 0.6,
    "sit_hard": 0.08,
    "drop_cane": 0.2,
    "stumble": 0.03,
}
WALK_CADENCE_SPM = 95.0  # steps per minute, older adults
CHARGE_PCT_PER_MIN = 1.0


def gps_fix(
    rng: np.random.Generator, lat: float, lon: float, base_hacc_m: float
) -> tuple[float, float, float]:
    """A GPS fix: ~10 m in the open, tens of metres in narrow streets, clipped to 5–50 m.

    The reported accuracy is a 68 % radius; for a 2-D Gaussian that radius is 1.515 σ.
    """
    hacc_m = float(
        np.clip(base_hacc_m * rng.lognormal(0, 0.4) * (2.5 if rng.random() < 0.2 else 1), 5, 50)
    )
    east, north = rng.normal(0, hacc_m / 1.515, 2)
    fix_lat, fix_lon = offset(lat, lon, float(east), float(north))
    return round(fix_lat, 6), round(fix_lon, 6), round(hacc_m, 1)


def start_immobility(routine: Routine, now_ms: int, rng: np.random.Generator, hours: Any) -> None:
    """The elder stops moving where they are for hours (firmware_sim.conditions)."""
    end_ms = now_ms + draw_immobility_ms(rng, float(hours) if hours else None)
    detail = f"hours={(end_ms - now_ms) / 3_600_000:.2f}"
    routine.override(
        [Segment("still", now_ms, end_ms, origin=routine.local_xy(now_ms), detail=detail)]
    )


class BandModel(DeviceModel):
    """An anti-wandering wristband: GPS fixes, heart rate, steps, removal for charging."""

    def __init__(self, device: Device, ctx: ModelContext, rng: np.random.Generator) -> None:
        """Draw the band's GPS quality."""
        super().__init__(device, ctx, rng)
        self.base_hacc_m = float(rng.lognormal(np.log(10.0), 0.3))
        self.worn = True
        self.last_fix_ms = ctx.start_ms
        self.logged: set[int] = set()
        # Conditions draw from a stream of their own, so the band's other draws do not move.
        self.cond_rng = np.random.default_rng(rng.bit_generator.seed_seq.spawn(1)[0])  # type: ignore[attr-defined]
        self.arrhythmia: Arrhythmia | None = None
        self.next_arrhythmia_ms = self._cond_after(ctx.start_ms)

    def _cond_after(self, now_ms: int) -> int:
        rate = self.ctx.anomaly_per_day * self.ctx.rate_scale
        if rate <= 0:
            return NEVER
        return now_ms + int(self.cond_rng.exponential(86_400_000 / rate))

    def _start_arrhythmia(self, now_ms: int, kind: str | None = None) -> None:
        self.arrhythmia = draw_arrhythmia(self.cond_rng, now_ms, kind)
        self.record("anomaly", True, now_ms, self.arrhythmia.detail)

    def _sense(self, now_ms: int) -> tuple[list[Action], int]:
        routine = self.ctx.routine
        seg = routine.segment_at(now_ms)
        out: list[Action] = []
        if now_ms >= self.next_arrhythmia_ms:
            self.next_arrhythmia_ms = self._cond_after(now_ms)
            self._start_arrhythmia(now_ms)
        if seg.kind == "still" and routine.claim(seg):
            self.record("inactivity", True, seg.start_ms, seg.detail)
        want_worn = not (routine.profile.charges_nightly and seg.kind == "sleep")
        if want_worn != self.worn:
            self.worn = want_worn
            out.append(self._event(now_ms, "worn" if want_worn else "removed"))
        if not self.worn:
            # On the charger overnight.
            gained = CHARGE_PCT_PER_MIN * (now_ms - self.last_fix_ms) / 60_000
            self.battery_pct = min(100.0, self.battery_pct + gained)
            if self.battery_pct > 20:
                self.low_sent = False
        if seg.kind == "wander" and seg.start_ms not in self.logged:
            self.logged.add(seg.start_ms)
            self.record("wandering", True, seg.start_ms, seg.detail)
        out.append(self._fix(now_ms, seg))
        interval = 30_000 if seg.moving else 300_000
        nxt = min(now_ms + interval, max(routine.next_change_ms(now_ms), now_ms + 1000))
        return out, min(nxt, self.next_arrhythmia_ms)

    def _fix(self, now_ms: int, seg: Segment) -> Action:
        routine = self.ctx.routine
        lat, lon = routine.position(now_ms)
        fix_lat, fix_lon, hacc_m = gps_fix(self.rng, lat, lon, self.base_hacc_m)
        minutes = (now_ms - self.last_fix_ms) / 60_000
        # Steps since the previous fix were taken in the segment that just ended when this fix
        # falls on a change (a fix comes at every change, so one segment covers the interval).
        walked = routine.segment_at(now_ms - 1) if now_ms > self.last_fix_ms else seg
        self.last_fix_ms = now_ms
        if walked.kind in ON_FOOT:
            steps = round(WALK_CADENCE_SPM * minutes * float(self.rng.uniform(0.9, 1.1)))
        else:
            steps = int(self.rng.poisson(3 * minutes)) if walked.kind == "home" else 0
        return Action(
            ActionKind.PUBLISH,
            BandTelemetry(
                device_id=self.device.id,
                type=self.device.type,
                seq=self._next_seq(),
                ts=now_ms,
                battery_pct=round(self.battery_pct, 1),
                lat=fix_lat,
                lon=fix_lon,
                hacc_m=hacc_m,
                hr_bpm=self._heart_rate(now_ms) if self.worn else None,
                steps=steps if self.worn else 0,
                worn=self.worn,
            ),
            qos=0,
        )

    def _heart_rate(self, now_ms: int) -> int:
        if self.arrhythmia is not None and self.arrhythmia.active(now_ms):
            return self.arrhythmia.heart_rate(self.cond_rng)
        return self.ctx.routine.heart_rate(now_ms, self.rng)

    def _inject(self, inj: Injection, now_ms: int) -> list[Action]:
        if inj.kind == "sos":
            self.record("sos", True, now_ms, "band")
            return [self._event(now_ms, "sos")]
        if inj.kind == "anomaly":
            rhythm = inj.params.get("rhythm")
            self._start_arrhythmia(now_ms, str(rhythm) if rhythm else None)
            return []
        if inj.kind == "inactivity":
            start_immobility(self.ctx.routine, now_ms, self.cond_rng, inj.params.get("hours"))
            return []
        if inj.kind != "wander":
            return super()._inject(inj, now_ms)
        routine = self.ctx.routine
        distance = inj.params.get("distance_m")
        segments = wander_segments(
            now_ms,
            routine.local_xy(now_ms),
            routine.profile.walk_speed_m_s * 0.9,
            self.rng,
            pattern=inj.params.get("pattern"),
            distance_m=float(distance) if distance else None,
        )
        routine.override(segments)
        return []


class CaneModel(DeviceModel):
    """A smart cane: 2 s accelerometer windows while moving, a short one every 60 s at rest."""

    def __init__(self, device: Device, ctx: ModelContext, rng: np.random.Generator) -> None:
        """Draw the first spontaneous episodes."""
        super().__init__(device, ctx, rng)
        self.rate_hz = DEFAULT_RATE_HZ
        self.window = 2 * self.rate_hz
        self.queue: list[Samples] = []
        self.detect_at = -1
        self.sent = 0
        self.rest_dir: npt.NDArray[np.float64] | None = None
        self.phase = 0.0
        self.next_episode = {k: self._after(ctx.start_ms, r) for k, r in CANE_RATES.items()}

    def _window(self, now_ms: int, samples: Samples, with_fix: bool, qos: int) -> Action:
        accel = tuple((x, y, z) for x, y, z in np.round(samples, 3).tolist())
        lat = lon = hacc = None
        if with_fix:
            lat, lon = self.ctx.routine.position(now_ms)
            lat, lon, hacc = gps_fix(self.rng, lat, lon, 12.0)
        return Action(
            ActionKind.PUBLISH,
            CaneTelemetry(
                device_id=self.device.id,
                type=self.device.type,
                seq=self._next_seq(),
                ts=now_ms,
                battery_pct=round(self.battery_pct, 1),
                rate_hz=self.rate_hz,
                accel_g=accel,
                lat=lat,
                lon=lon,
                hacc_m=hacc,
            ),
            qos=qos,
        )

    def _start(self, kind: str, now_ms: int, real: bool) -> None:
        ep = episode(kind, self.rng, self.rate_hz)
        self.queue = [
            ep.samples[i : i + self.window] for i in range(0, len(ep.samples), self.window)
        ]
        i = ep.onset_index
        onset_ms = now_ms + (i // self.window) * 2000 - (self.window - 1 - i % self.window) * 20
        self.record("fall" if real else kind, real, onset_ms, f"episode={kind}")
        guess = self.rng.random() < SELF_DETECT[kind]
        # The cane guesses after ~10 s of post-impact behaviour.
        self.detect_at = (i + 10 * self.rate_hz) // self.window if guess else -1
        self.sent = 0
        last = ep.samples[-1]
        self.rest_dir = last / np.linalg.norm(last)
        if kind == "fall":
            xy = self.ctx.routine.local_xy(now_ms)
            self.ctx.routine.override([Segment("fallen", onset_ms, onset_ms + 600_000, origin=xy)])

    def _due_episode(self, now_ms: int) -> str | None:
        for kind, at in self.next_episode.items():
            if now_ms >= at:
                self.next_episode[kind] = self._after(now_ms, CANE_RATES[kind])
                if self.ctx.routine.segment_at(now_ms).kind in ("home", "walk"):
                    return kind
        return None

    def _sense(self, now_ms: int) -> tuple[list[Action], int]:
        seg = self.ctx.routine.segment_at(now_ms)
        if seg.kind == "still" and self.ctx.routine.claim(seg):
            self.record("inactivity", True, seg.start_ms, seg.detail)
        if not self.queue:
            kind = self._due_episode(now_ms)
            if kind is not None:
                self._start(kind, now_ms, kind in FALL_KINDS)
        if self.queue:
            out = [self._window(now_ms, self.queue.pop(0), True, 1)]
            if self.detect_at == self.sent:
                out.append(self._event(now_ms, "fall_detected"))
            self.sent += 1
            return out, now_ms + 2000
        if seg.moving:
            self.rest_dir = None
            samples = walk_samples(self.window, self.rng, self.rate_hz, self.phase)
            self.phase += 2.0 * 0.9
            return [self._window(now_ms, samples, True, 0)], now_ms + 2000
        short = rest_samples(self.rate_hz // 2, self.rng, self.rest_dir)
        nxt = min(
            now_ms + 60_000,
            max(self.ctx.routine.next_change_ms(now_ms), now_ms + 1000),
            *self.next_episode.values(),
        )
        return [self._window(now_ms, short, False, 0)], nxt

    def _inject(self, inj: Injection, now_ms: int) -> list[Action]:
        if inj.kind == "sos":
            self.record("sos", True, now_ms, "cane")
            return [self._event(now_ms, "sos")]
        if inj.kind == "inactivity":
            start_immobility(self.ctx.routine, now_ms, self.rng, inj.params.get("hours"))
            return []
        if inj.kind not in CANE_RATES:
            return super()._inject(inj, now_ms)
        self._start(inj.kind, now_ms, inj.kind in FALL_KINDS)
        return []
