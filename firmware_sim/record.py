"""Record a district's traffic to a file, much faster than real time (pure: no network).

The same `Engine` that `eldercare sim run` drives against a broker is advanced here as fast
as it can compute, and every publish it would make is written as one line::

    offset_ms <TAB> qos <TAB> retain <TAB> topic <TAB> payload <LF>

- `offset_ms`: simulated milliseconds since the recording's `start_ms` (non-decreasing);
- `qos`: 0 or 1, as the device publishes it; `retain`: 1 for statuses and Last Wills, else 0;
- `topic`: the contract §1 topic, with the recording's prefix (usually none: a replayer puts
  its own prefix in front);
- `payload`: the contract §1 JSON payload, byte for byte (compact JSON never holds a raw TAB or
  LF, and a payload that did would be refused).

A device that goes offline without DISCONNECT (battery dead, watchdog reset) appears as the
Last Will the broker would publish for it (retained, QoS 1), at the moment the device drops,
exactly as the simulator's pooled mode publishes it. Connections themselves are not recorded.

The same fleet, seed, `start_ms`, duration, rate scale and injections give identical bytes. The
ground truth (every incident and nuisance, `firmware_sim.incidents.Incident` JSONL) goes to a
file beside it. `bench/bench_district.py` replays such a file with a C publisher
(`bench/replay_pub.c`) at a multiple of real time.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from firmware_sim.device import ActionKind
from firmware_sim.engine import Engine
from firmware_sim.scenario import Injection
from gateway import Fleet

# Simulated time advanced per engine step; only bounds memory, never changes the output.
_STEP_MS = 10_000


@dataclass(frozen=True, slots=True)
class RecordStats:
    """What `record` wrote: message and incident counts, bytes, the simulated span."""

    messages: int
    incidents: int
    bytes: int
    start_ms: int
    duration_ms: int


def record(
    fleet: Fleet,
    out: str | Path,
    *,
    duration_s: float,
    start_ms: int,
    seed: int = 0,
    prefix: str = "",
    rate_scale: float = 1.0,
    injections: Iterable[Injection] = (),
    ground_truth: str | Path | None = None,
    warmup_s: float = 0.0,
) -> RecordStats:
    """Write `duration_s` simulated seconds of the fleet's traffic to `out` (format above).

    Args:
        fleet: the devices to simulate.
        out: the recording, overwritten.
        duration_s: simulated seconds to record (> 0).
        start_ms: the simulated clock (Unix ms) at offset 0; device `ts` values follow it.
        seed: same seed (with the other arguments) gives identical bytes.
        prefix: topic namespace put before `eldercare/v1/...`.
        rate_scale: multiplies the rates of spontaneous incidents.
        injections: incidents to inject, at simulated seconds after the start.
        ground_truth: JSONL file receiving every incident (default: `out` + `.truth.jsonl`).
        warmup_s: simulated seconds the fleet runs before `start_ms` without being recorded
            (the boot of every device, whose statuses all come in its first 5 s, then falls
            outside the recording; injections still count from `start_ms`).

    Raises:
        ValueError: for a non-positive duration, a negative warm-up, an injection the fleet
            cannot show, or a payload holding a TAB or LF.
        OSError: when a file cannot be written.
    """
    if duration_s <= 0:
        raise ValueError("duration must be > 0")
    if warmup_s < 0:
        raise ValueError("warm-up must be >= 0")
    boot_ms = start_ms - int(warmup_s * 1000)
    out = Path(out)
    truth = Path(ground_truth) if ground_truth else out.with_name(out.name + ".truth.jsonl")
    engine = Engine(
        fleet,
        seed=seed,
        start_ms=boot_ms,
        prefix=prefix,
        rate_scale=rate_scale,
        injections=[replace(i, at_s=i.at_s + warmup_s) for i in injections],
    )
    end_ms = start_ms + int(duration_s * 1000)
    messages = incidents = size = 0
    with open(out, "wb") as fh, open(truth, "w", encoding="utf-8") as gt:
        engine.advance(start_ms - 1)  # the warm-up, not recorded
        engine.take_incidents()
        t, last = start_ms - 1, end_ms - 1  # offsets 0 .. duration - 1 ms
        while t < last:
            t = min(t + _STEP_MS, last)
            lines = []
            for o in engine.advance(t):
                if o.wire is not None:
                    topic, payload, qos, retain = (
                        o.wire.topic,
                        o.wire.payload,
                        o.wire.qos,
                        o.wire.retain,
                    )
                elif o.kind is ActionKind.KILL:
                    (topic, payload), qos, retain = engine.wills[o.device], 1, True
                else:
                    continue  # CONNECT: a replayer's connections are its own
                if b"\t" in payload or b"\n" in payload:
                    raise ValueError(f"payload on {topic} holds a TAB or LF")
                head = f"{o.at_ms - start_ms}\t{qos}\t{int(retain)}\t{topic}\t".encode()
                lines.append(head + payload + b"\n")
            chunk = b"".join(lines)
            fh.write(chunk)
            messages += len(lines)
            size += len(chunk)
            fresh = engine.take_incidents()
            gt.write("".join(f"{inc.to_json()}\n" for inc in fresh))
            incidents += len(fresh)
    return RecordStats(messages, incidents, size, start_ms, end_ms - start_ms)


def read_recording(path: str | Path) -> list[tuple[int, int, bool, str, bytes]]:
    """Parse a recording into `(offset_ms, qos, retain, topic, payload)` tuples (small files).

    Raises:
        ValueError: on a line that does not have the five fields.
    """
    out = []
    with open(path, "rb") as fh:
        for n, line in enumerate(fh, 1):
            fields = line.rstrip(b"\n").split(b"\t")
            if len(fields) != 5:
                raise ValueError(f"{path}:{n}: expected 5 TAB-separated fields")
            off, qos, retain, topic, payload = fields
            out.append((int(off), int(qos), retain == b"1", topic.decode(), payload))
    return out
