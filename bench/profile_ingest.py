"""Where ingest spends its time under bench_ingest's load: cProfile in every thread.

Runs the ingest service in this process on a fresh schema and a Mosquitto started here, with
a `cProfile.Profile` in each thread (the paho network thread, whose callback decodes nothing
but stamps and queues, and the consumer thread that decodes, builds rows and COPYs), while
bench_ingest's C publisher (replay_pub, unpaced) sends its stream (bands, smoke, 100-sample
cane windows). Prints the top functions per thread by own time and by cumulative time.
Profiling slows Python code down (roughly 1.5-2x), so the shares matter, not the absolute
rates.

Usage: python bench/profile_ingest.py [-n 20000] [--devices 60] [--top 25]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]
import psycopg
from bench_ingest import DATABASE_URL, make_stream, schema
from ceiling import StreamPublisher

from eldercare.broker import free_port, start_mosquitto, stop
from ingest.service import IngestService
from ingest.settings import IngestSettings

_profiles: dict[str, cProfile.Profile] = {}
_lock = threading.Lock()


def _start_thread_profile(frame: Any, event: str, arg: Any) -> None:
    """threading.setprofile hook: on a new thread's first call, put a profiler in its place
    (ingest's threads only, not the publishers' waiting threads)."""
    name = threading.current_thread().name
    if name != "consumer" and not name.startswith("paho"):
        sys.setprofile(None)
        return
    prof = cProfile.Profile()
    with _lock:
        _profiles[f"{threading.current_thread().name}-{len(_profiles)}"] = prof
    prof.enable()


def _thread_cpu() -> dict[str, float]:
    """CPU seconds (user + system) of each live thread of this process, by thread name."""
    by_id = {t.native_id: t.name for t in threading.enumerate()}
    out: dict[str, float] = {}
    for t in psutil.Process().threads():
        name = by_id.get(t.id, "other")
        name = "paho" if name.startswith("paho") else name
        out[name] = out.get(name, 0.0) + t.user_time + t.system_time
    return out


def run(
    settings: IngestSettings, pub: StreamPublisher, stream: list[tuple[str, bytes]], profiled: bool
) -> tuple[float, dict[str, float]]:
    """Ingest `stream` once; (messages/s, CPU seconds of the consumer and paho threads)."""
    service = IngestService(settings)
    stop_event = threading.Event()
    if profiled:
        threading.setprofile(_start_thread_profile)
    thread = threading.Thread(target=service.run, args=(stop_event,), name="consumer")
    thread.start()
    assert service.wait_subscribed(30)
    cpu0 = _thread_cpu()
    started = pub.publish(stream)
    stored = service.metrics.stored
    kinds = ("band_telemetry", "smoke_telemetry", "cane_telemetry")
    while sum(stored.labels(k)._value.get() for k in kinds) < len(stream):
        time.sleep(0.005)
    elapsed = time.perf_counter() - started
    cpu1 = _thread_cpu()
    pub.wait()
    stop_event.set()
    thread.join(30)
    threading.setprofile(None)
    cpu: dict[str, float] = {
        k: cpu1[k] - cpu0.get(k, 0.0) for k in ("consumer", "paho") if k in cpu1
    }
    return len(stream) / elapsed, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=20000)
    parser.add_argument("--devices", type=int, default=60)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    port = free_port()
    broker = start_mosquitto(port, Path(tempfile.mkdtemp(prefix="prof-mosq-")))
    names: list[str] = []
    try:
        pub = StreamPublisher(port)
        for profiled in (False, True):
            # A prefix per run: the first run's persistent session keeps its share of the
            # shared subscription, which would split the second run's messages.
            prefix = f"prof{int(profiled)}/"
            fleet, stream = make_stream(args.n, args.devices, prefix)
            name, url = schema(DATABASE_URL, fleet)
            names.append(name)
            settings = IngestSettings(
                database_url=url,
                mqtt_url=f"mqtt://127.0.0.1:{port}",
                topic_prefix=prefix,
                client_id=f"prof-{uuid.uuid4().hex[:6]}",
            )
            rate, cpu = run(settings, pub, stream, profiled)
            label = "profiled" if profiled else "not profiled"
            print(
                f"{len(stream)} messages: {rate:.0f} msg/s ({label}); CPU per thread: "
                + ", ".join(f"{k} {v * 1e6 / len(stream):.0f} us/msg" for k, v in cpu.items())
            )
        for thread_name, prof in _profiles.items():
            prof.disable()
            out = io.StringIO()
            stats = pstats.Stats(prof, stream=out)
            if not stats.stats:  # type: ignore[attr-defined]
                continue
            total = sum(v[2] for v in stats.stats.values())  # type: ignore[attr-defined]
            if total < 0.2:
                continue
            print(f"\n=== thread {thread_name}: {total:.2f} s own time in Python-visible calls")
            stats.sort_stats("tottime").print_stats(args.top)
            stats.sort_stats("cumulative").print_stats(args.top)
            print(out.getvalue())
    finally:
        stop(broker)
        with psycopg.connect(DATABASE_URL, autocommit=True) as conn:
            for name in names:
                conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


if __name__ == "__main__":
    main()
