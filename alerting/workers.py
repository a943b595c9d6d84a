"""`eldercare alerting --workers N`: one alerting process per partition, supervised.

A Python process runs its detectors on one core (the GIL); N processes, each acting for one
partition of the elders (alerting.partition), use N. The parent only supervises: it starts
each worker as `eldercare alerting` with `ALERTING_PARTITIONS=N`, `ALERTING_PARTITION=k` and,
when metrics are on, `ALERTING_METRICS_PORT=<base port> + k`; restarts a worker that dies
(jittered backoff from 1 s doubling to 30 s, reset once it has run for a minute); stops them
all on SIGTERM or SIGINT; and gives up, stopping the others, when one worker dies more than
`max_restarts` times within a minute (exit code 1). A worker whose parent dies is sent
SIGTERM by the kernel (Linux `PR_SET_PDEATHSIG`), so no partition is left acting unsupervised
beside a restarted set.
"""

from __future__ import annotations

import ctypes
import logging
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from alerting.settings import AlertingSettings

logger = logging.getLogger(__name__)

_BACKOFF_S = (1.0, 30.0)
# A worker that ran this long was healthy: its next crash starts the backoff afresh.
_HEALTHY_S = 60.0
_CRASH_WINDOW_S = 60.0
_STOP_TIMEOUT_S = 20.0
_POLL_S = 0.2
_PR_SET_PDEATHSIG = 1


def worker_env(
    env: Mapping[str, str], settings: AlertingSettings, index: int, count: int
) -> dict[str, str]:
    """The environment of worker `index` of `count`: the parent's plus its partition.

    Settings given on the command line (`--prefix`) are passed through the environment too.
    """
    out = dict(env)
    out.update(
        ALERTING_PARTITIONS=str(count),
        ALERTING_PARTITION=str(index),
        ALERTING_WORKERS="1",
        ALERTING_TOPIC_PREFIX=settings.topic_prefix,
    )
    if settings.metrics_port is not None:
        out["ALERTING_METRICS_PORT"] = str(settings.metrics_port + index)
    return out


def worker_command(log_level: str, log_format: str) -> list[str]:
    """`eldercare alerting` in this interpreter, with the parent's logging options."""
    return [
        sys.executable,
        "-m",
        "eldercare",
        "--log-level",
        log_level,
        "--log-format",
        log_format,
        "alerting",
    ]


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass


@dataclass
class _Worker:
    index: int
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    started_mono: float = 0.0
    restart_at: float | None = None
    delay_s: float = _BACKOFF_S[0]
    crashes: deque[float] = field(default_factory=deque)


class Supervisor:
    """Runs one process per environment and keeps them running until `stop`.

    Args:
        command: the worker command line.
        envs: one environment per worker.
        max_restarts: deaths of one worker within a minute before the supervisor gives up.
    """

    def __init__(
        self, command: Sequence[str], envs: Sequence[dict[str, str]], max_restarts: int = 5
    ) -> None:
        self.command = list(command)
        self.workers = [_Worker(i, env) for i, env in enumerate(envs)]
        self.max_restarts = max_restarts
        self.restarts = 0

    def pids(self) -> list[int | None]:
        """The current process id of each worker (None while it waits to be restarted)."""
        return [w.proc.pid if w.proc and w.proc.poll() is None else None for w in self.workers]

    def run(self, stop: threading.Event) -> int:
        """Start every worker and supervise until `stop`; returns the exit code.

        0: stopped on request and every worker exited cleanly; 1: a worker kept dying, or
        one failed to stop.
        """
        for worker in self.workers:
            self._start(worker)
        failed = False
        while not stop.wait(_POLL_S):
            if not self._check():
                failed = True
                break
        return self._stop_all() or int(failed)

    def _start(self, worker: _Worker) -> None:
        pre = _die_with_parent if sys.platform == "linux" else None
        worker.proc = subprocess.Popen(self.command, env=worker.env, preexec_fn=pre)
        worker.started_mono = time.monotonic()
        worker.restart_at = None
        logger.info("alerting worker %d started (pid %d)", worker.index, worker.proc.pid)

    def _check(self) -> bool:
        """Restart dead workers when due; False when one keeps dying."""
        now = time.monotonic()
        for worker in self.workers:
            if worker.restart_at is not None:
                if now >= worker.restart_at:
                    self.restarts += 1
                    self._start(worker)
                continue
            assert worker.proc is not None
            code = worker.proc.poll()
            if code is None:
                continue
            if now - worker.started_mono >= _HEALTHY_S:
                worker.delay_s = _BACKOFF_S[0]
            worker.crashes.append(now)
            while worker.crashes and worker.crashes[0] < now - _CRASH_WINDOW_S:
                worker.crashes.popleft()
            if len(worker.crashes) > self.max_restarts:
                logger.error(
                    "alerting worker %d died %d times within %.0f s (exit code %d): giving up",
                    worker.index,
                    len(worker.crashes),
                    _CRASH_WINDOW_S,
                    code,
                )
                return False
            wait_s = worker.delay_s * random.uniform(0.8, 1.2)
            logger.warning(
                "alerting worker %d (pid %d) exited with code %d; restarting in %.1f s",
                worker.index,
                worker.proc.pid,
                code,
                wait_s,
            )
            worker.restart_at = now + wait_s
            worker.delay_s = min(worker.delay_s * 2, _BACKOFF_S[1])
        return True

    def _stop_all(self) -> int:
        """SIGTERM every worker, SIGKILL those still running after the timeout; 1 if any
        exited with an error (a signal the supervisor sent is not one)."""
        running = [w.proc for w in self.workers if w.proc is not None and w.proc.poll() is None]
        for proc in running:
            proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + _STOP_TIMEOUT_S
        bad = 0
        for proc in running:
            try:
                code = proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                logger.error("alerting worker pid %d did not stop: killed", proc.pid)
                proc.kill()
                proc.wait(5)
                bad = 1
                continue
            # 130: interrupted by the same Ctrl-C as the parent; -15: SIGTERM before the
            # handler was installed.
            if code not in (0, 130, -signal.SIGTERM, -signal.SIGINT):
                logger.error("alerting worker pid %d exited with code %d", proc.pid, code)
                bad = 1
        return bad


def run_workers(settings: AlertingSettings, log_level: str, log_format: str) -> int:
    """Run `settings.workers` partition processes until SIGTERM or SIGINT; the exit code.

    Returns 2 when the settings contradict themselves (ALERTING_PARTITIONS set to another
    count than the workers).
    """
    n = settings.workers
    if settings.partitions not in (1, n):
        logger.error(
            "ALERTING_WORKERS=%d with ALERTING_PARTITIONS=%d: the workers are the partitions;"
            " unset one",
            n,
            settings.partitions,
        )
        return 2
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda s, f: stop.set())
    envs = [worker_env(os.environ, settings, k, n) for k in range(n)]
    supervisor = Supervisor(worker_command(log_level, log_format), envs)
    logger.info("alerting: %d partition workers", n)
    return supervisor.run(stop)
