"""Servers and processes a system test owns and breaks on purpose: its own Mosquitto, its own
PostgreSQL cluster, the platform's services as subprocesses, and an independent MQTT witness.

Nothing here touches the shared broker or database.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from eldercare.broker import free_port, start_mosquitto
from eldercare.database import server_bin_dir
from tests.system.checks import Seen

ROOT = Path(__file__).resolve().parents[2]
PG_BIN = server_bin_dir()
ELDERCARE = ROOT / ".venv" / "bin" / "eldercare"


def eldercare_argv(*args: str) -> list[str]:
    """The `eldercare` command line, as an operator runs it."""
    if ELDERCARE.exists():
        return [str(ELDERCARE), *args]
    return [sys.executable, "-m", "eldercare", *args]


def process_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a platform process: this tree's packages on PYTHONPATH (including
    any added since the install), then `extra`."""
    return {**os.environ, "PYTHONPATH": str(ROOT), **(extra or {})}


def _alive(pid: int) -> bool:
    """Whether `pid` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (children first-level, then theirs), from /proc."""
    parent_of: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        parent_of[int(entry.name)] = int(fields[1])
    out: list[int] = []
    frontier = [pid]
    while frontier:
        kids = [p for p, pp in parent_of.items() if pp in frontier]
        out += kids
        frontier = kids
    return out


class PgCluster:
    """A throwaway PostgreSQL cluster (initdb in a temp dir, its own port) that can be broken."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="eldercare-sys-pg-"))
        self.port = free_port()
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_user:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run(PG_BIN / "initdb", "-D", self.dir / "data", "-A", "trust", "-U", "postgres")
        self.start()

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: object, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [*self.as_user, *map(str, args)], check=check, capture_output=True, timeout=120
        )

    def start(self, timeout_s: float = 90.0) -> None:
        """Start it; after a SIGKILL the orphaned backends may need a moment to exit first."""
        # fsync off: the faults here kill processes, not the machine, so the page cache survives.
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        deadline = time.monotonic() + timeout_s
        while True:
            res = self._run(
                PG_BIN / "pg_ctl",
                "-D",
                self.dir / "data",
                "-l",
                self.dir / "log",
                "-w",
                "-o",
                opts,
                "start",
                check=False,
            )
            if res.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"postgres did not start: {res.stderr.decode()[-500:]}")
            time.sleep(1.0)

    def postmaster_pid(self) -> int:
        return int((self.dir / "data" / "postmaster.pid").read_text().split()[0])

    def kill_postmaster(self) -> None:
        """SIGKILL the postmaster only, as a crash would; its backends then exit on their own."""
        pid = self.postmaster_pid()
        children = descendants(pid)
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while any(_alive(p) for p in [pid, *children]) and time.monotonic() < deadline:
            time.sleep(0.2)
        for p in children:
            if _alive(p):
                os.kill(p, signal.SIGKILL)

    def freeze(self) -> list[int]:
        """SIGSTOP the postmaster and every backend: to its clients, a silent network."""
        pids = [self.postmaster_pid()]
        pids += descendants(pids[0])
        for p in pids:
            os.kill(p, signal.SIGSTOP)
        return pids

    @staticmethod
    def thaw(pids: list[int]) -> None:
        for p in reversed(pids):
            try:
                os.kill(p, signal.SIGCONT)
            except ProcessLookupError:
                continue

    def stop(self) -> None:
        self._run(PG_BIN / "pg_ctl", "-D", self.dir / "data", "-m", "immediate", "-w", "stop")

    def remove(self) -> None:
        try:
            self.stop()
        except subprocess.CalledProcessError:
            pass
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def pg_cluster() -> Iterator[PgCluster]:
    cluster = PgCluster()
    yield cluster
    cluster.remove()


class OwnBroker:
    """A Mosquitto with the shipped configuration on a free port, killed and restarted at will."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir, self.port = data_dir, free_port()
        self.proc = start_mosquitto(self.port, data_dir)

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def kill(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)
        self.proc.wait(30)

    def restart(self) -> None:
        self.proc = start_mosquitto(self.port, self.data_dir, wait_s=30)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)


@pytest.fixture
def run_dir(request: pytest.FixtureRequest) -> Iterator[Path]:
    """Logs, witness file and summary of this run; kept when the test fails, for evidence
    (pytest's own tmp_path rotates away while other test runs share the machine)."""
    path = Path(tempfile.mkdtemp(prefix="eldercare-system-"))
    failed_before = request.session.testsfailed
    yield path
    if request.session.testsfailed == failed_before:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def own_mosquitto(run_dir: Path) -> Iterator[OwnBroker]:
    broker = OwnBroker(run_dir / "mosquitto")
    yield broker
    broker.close()


class Service:
    """One platform process (`eldercare ingest`, `eldercare alerting` ...) with its log file."""

    def __init__(self, name: str, argv: list[str], env: Mapping[str, str], log_dir: Path) -> None:
        self.name, self.argv, self.env = name, argv, process_env(env)
        self.log = log_dir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        with self.log.open("ab") as log:
            log.write(f"=== start {self.starts} at {time.time():.3f}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.argv, env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
            )
        self.starts += 1

    def kill(self, sig: signal.Signals = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(60)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after a grace period."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(30)


class Witness:
    """`mosquitto_sub` with a persistent QoS 1 session, writing every message to a file.

    It is independent of the platform's code: the C client, its own session, its own
    reconnects. What it saw is what the broker distributed.
    """

    def __init__(self, port: int, topics: list[str], path: Path, client_id: str) -> None:
        self.path = path
        argv = ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-c", "-i", client_id]
        argv += ["-q", "1", "-k", "10", "-F", "%U %r %q %t %p"]
        for topic in topics:
            argv += ["-t", topic]
        self._out = path.open("wb")
        self.proc = subprocess.Popen(argv, stdout=self._out, stderr=subprocess.STDOUT)

    def messages(self) -> list[Seen]:
        out = []
        for line in self.path.read_text(encoding="utf-8", errors="replace").splitlines():
            parts = line.split(" ", 4)
            if len(parts) != 5 or parts[1] not in ("0", "1") or not parts[2].isdigit():
                continue
            try:
                at_s = float(parts[0])
                payload = json.loads(parts[4])
            except ValueError:
                continue
            if isinstance(payload, dict):
                out.append(Seen(at_s, parts[1] == "1", int(parts[2]), parts[3], payload))
        return out

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self._out.close()


def wait_until(predicate: Callable[[], bool], timeout_s: float, every_s: float = 1.0) -> bool:
    """Poll `predicate()` until true or `timeout_s` passes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every_s)
    return False
