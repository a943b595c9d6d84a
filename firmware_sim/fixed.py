"""Models of the fixed devices: the panic button and the smoke sensor (pure)."""

from __future__ import annotations

import numpy as np

from firmware_sim.device import NEVER, Action, ActionKind, DeviceModel, ModelContext
from firmware_sim.routine import DAY_MS, HOUR_MS, LOCAL_OFFSET_MS
from firmware_sim.scenario import Injection
from firmware_sim.smoke import (
    ALARM_THRESHOLD_DB_M,
    FAST_REPORT_DB_M,
    SmokeSource,
    ambient_temp_c,
    make_source,
    reading,
)
from gateway import Device, SmokeTelemetry

# Spontaneous rates per elder-day. Real emergencies are rare; cancelled presses (pressed
# by mistake) are several times more frequent than real ones.
SOS_PER_DAY = 0.005
CANCELLED_PER_DAY = 0.02
FIRE_PER_DAY = 1e-5
# Meals (local hour, chance of cooking) and shower times near bathroom-side sensors.
MEALS = ((7.0, 0.5), (12.0, 0.7), (18.0, 0.8))
SHOWERS = ((7.5, 0.3), (20.5, 0.4))
_HYSTERESIS = 0.7


class ButtonModel(DeviceModel):
    """A wearable panic button: presses, long presses and presses cancelled by the wearer."""

    def __init__(self, device: Device, ctx: ModelContext, rng: np.random.Generator) -> None:
        """Draw the first spontaneous presses."""
        super().__init__(device, ctx, rng)
        self.next_sos_ms = self._after(ctx.start_ms, SOS_PER_DAY)
        self.next_mistake_ms = self._after(ctx.start_ms, CANCELLED_PER_DAY)
        self.cancel_ms = NEVER

    def _press(self, now_ms: int, mode: str) -> list[Action]:
        if mode == "cancel":
            self.record("sos", False, now_ms, "cancelled")
            # The wearer notices the mistake and cancels within seconds.
            self.cancel_ms = now_ms + int(self.rng.uniform(2_000, 8_000))
            return [self._event(now_ms, "press")]
        name = (
            mode
            if mode in ("press", "long_press")
            else ("long_press" if self.rng.random() < 0.4 else "press")
        )
        self.record("sos", True, now_ms, name)
        return [self._event(now_ms, name)]

    def _sense(self, now_ms: int) -> tuple[list[Action], int]:
        out: list[Action] = []
        if now_ms >= self.cancel_ms:
            self.cancel_ms = NEVER
            out.append(self._event(now_ms, "cancel"))
        if now_ms >= self.next_sos_ms:
            self.next_sos_ms = self._after(now_ms, SOS_PER_DAY)
            out += self._press(now_ms, "real")
        if now_ms >= self.next_mistake_ms:
            self.next_mistake_ms = self._after(now_ms, CANCELLED_PER_DAY)
            out += self._press(now_ms, "cancel")
        return out, min(self.cancel_ms, self.next_sos_ms, self.next_mistake_ms)

    def _inject(self, inj: Injection, now_ms: int) -> list[Action]:
        mode = {"sos": "real", "long_press": "long_press", "cancel": "cancel"}.get(inj.kind)
        if mode is None:
            return super()._inject(inj, now_ms)
        return self._press(now_ms, mode)


class SmokeModel(DeviceModel):
    """An optical smoke sensor near the kitchen and sometimes the bathroom."""

    def __init__(self, device: Device, ctx: ModelContext, rng: np.random.Generator) -> None:
        """Draw the sensor's threshold, placement and background level."""
        super().__init__(device, ctx, rng)
        # Each sensor's alarm threshold within the EN 54-7 band (>= 0.05 dB/m).
        self.threshold_db_m = float(rng.uniform(ALARM_THRESHOLD_DB_M, 0.12))
        self.base_db_m = float(rng.uniform(0.001, 0.004))
        self.temp_offset_c = float(rng.normal(0, 1.0))
        self.kitchen_factor = float(rng.uniform(0.3, 1.0))
        self.near_bathroom = bool(rng.random() < 0.3)
        self.sources: list[SmokeSource] = []
        self.logged: set[tuple[str, int]] = set()
        self.planned_day = -1
        self.alarm = False
        self.hush_ms = NEVER
        self.last_report_ms = -NEVER
        self.next_fire_ms = self._after(ctx.start_ms, FIRE_PER_DAY)

    def _add(self, kind: str, start_ms: int, injected: bool = False) -> SmokeSource:
        src = make_source(kind, start_ms, self.rng)
        if kind == "cooking":
            src = SmokeSource(
                kind,
                start_ms,
                src.rise_s,
                src.hold_s,
                src.decay_s,
                src.peak_db_m * self.kitchen_factor,
                src.heat_c,
            )
        self.sources.append(src)
        # Sources too faint to cross the contract's fast-report level are not nuisances.
        if not injected and kind != "fire" and src.peak_db_m < FAST_REPORT_DB_M:
            self.logged.add((src.kind, src.start_ms))
        return src

    def _plan(self, now_ms: int) -> None:
        day = (now_ms + LOCAL_OFFSET_MS) // DAY_MS
        if day <= self.planned_day:
            return
        self.planned_day = day
        d0 = day * DAY_MS - LOCAL_OFFSET_MS
        plan = [("cooking", h, p) for h, p in MEALS]
        plan += [("steam", h, p) for h, p in SHOWERS] if self.near_bathroom else []
        for kind, hour, chance in plan:
            start_ms = d0 + int((hour + self.rng.normal(0, 0.5)) * HOUR_MS)
            happens = self.rng.random() < chance * min(self.ctx.rate_scale, 1 / chance)
            # Episodes before the run started are not part of it.
            if happens and start_ms >= self.ctx.start_ms:
                self._add(kind, start_ms)

    def _log_started(self, now_ms: int) -> None:
        for src in self.sources:
            if src.start_ms <= now_ms and (src.kind, src.start_ms) not in self.logged:
                self.logged.add((src.kind, src.start_ms))
                real = src.kind == "fire"
                detail = "source=fire" if real else f"peak_db_m={src.peak_db_m:.3f}"
                self.record("smoke" if real else src.kind, real, src.start_ms, detail)

    def _sense(self, now_ms: int) -> tuple[list[Action], int]:
        self._plan(now_ms)
        if now_ms >= self.next_fire_ms:
            self.next_fire_ms = self._after(now_ms, FIRE_PER_DAY)
            self._add("fire", now_ms)
        self._log_started(now_ms)
        self.sources = [s for s in self.sources if s.end_ms > now_ms or s.start_ms > now_ms]
        smoke, temp = reading(
            now_ms,
            self.sources,
            base_db_m=self.base_db_m,
            ambient_c=ambient_temp_c(self.ctx.routine.local_hour(now_ms), self.temp_offset_c),
        )
        smoke = max(0.0, smoke + float(self.rng.normal(0, 0.0005)))
        temp += float(self.rng.normal(0, 0.1))
        fast = smoke > FAST_REPORT_DB_M
        out: list[Action] = []
        # Contract §1: every 60 s, and every 5 s while smoke_db_m > 0.02.
        if fast or now_ms - self.last_report_ms >= 60_000:
            self.last_report_ms = now_ms
            out.append(
                Action(
                    ActionKind.PUBLISH,
                    SmokeTelemetry(
                        device_id=self.device.id,
                        type=self.device.type,
                        seq=self._next_seq(),
                        ts=now_ms,
                        battery_pct=round(self.battery_pct, 1),
                        smoke_db_m=round(smoke, 4),
                        temp_c=round(temp, 1),
                    ),
                    qos=1 if fast else 0,
                )
            )
        out += self._alarm(now_ms, smoke)
        return out, now_ms + self._interval_ms(now_ms, fast)

    def _interval_ms(self, now_ms: int, fast: bool) -> int:
        if fast:
            return 5_000
        soon = [s.start_ms for s in self.sources if s.start_ms > now_ms]
        active = any(s.start_ms <= now_ms < s.end_ms for s in self.sources)
        # The sensor samples its chamber every 10 s while anything is in the air.
        step = 10_000 if active else 60_000
        return min([step, self.hush_ms - now_ms, *(t - now_ms for t in soon)])

    def _alarm(self, now_ms: int, smoke: float) -> list[Action]:
        out: list[Action] = []
        if not self.alarm and smoke >= self.threshold_db_m:
            self.alarm = True
            out.append(self._event(now_ms, "alarm"))
            nuisance = not any(s.kind == "fire" and s.start_ms <= now_ms for s in self.sources)
            if nuisance and self.rng.random() < 0.5:
                self.hush_ms = now_ms + int(self.rng.uniform(20_000, 90_000))
        elif self.alarm and smoke < self.threshold_db_m * _HYSTERESIS:
            self.alarm = False
            self.hush_ms = NEVER
            out.append(self._event(now_ms, "clear"))
        if self.alarm and now_ms >= self.hush_ms:
            self.hush_ms = NEVER
            out.append(self._event(now_ms, "hush"))
        return out

    def _inject(self, inj: Injection, now_ms: int) -> list[Action]:
        kind = {"smoke": "fire", "cooking": "cooking", "steam": "steam"}.get(inj.kind)
        if kind is None:
            return super()._inject(inj, now_ms)
        self._add(kind, now_ms, injected=True)
        self._log_started(now_ms)
        return []
