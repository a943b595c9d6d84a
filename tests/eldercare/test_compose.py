"""The production compose file and image: pinned, healthy, no default secrets, nothing public
without TLS, and every `eldercare` command in it accepted by the real command line."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from psycopg.conninfo import conninfo_to_dict

from eldercare.cli import build_parser
from ingest.roles import SERVICES, login_name

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
# A pinned tag names a full release (major.minor.patch), not a moving `latest` or `2`.
PINNED = re.compile(r"^[\w./-]+:\d+\.\d+\.\d+[\w.-]*$")
ENV_FOR_CONFIG = {
    "POSTGRES_PASSWORD": "check",
    "BROKER_HOSTNAME": "broker.example",
    "NOTIFY_VAPID_SUBJECT": "mailto:noc@example.org",
    "ELDERCARE_DB_PASSWORD_INGEST": "check1",
    "ELDERCARE_DB_PASSWORD_ALERTING": "check2",
    "ELDERCARE_DB_PASSWORD_DASHBOARD": "check3",
    "ELDERCARE_DB_PASSWORD_NOTIFY": "check4",
}
PLATFORM_IMAGE = "eldercare/platform"
# Long-running platform services and the least-privilege role each logs in as (ingest/roles.py).
ROLE_OF = {
    "ingest": "ingest",
    "alerting": "alerting",
    "alerting-standby": "alerting",
    "dashboard": "dashboard",
    "notify": "notify",
}
# Kept on the owner login: retention drops partitions, broker-acl reads the MQTT password
# hashes (no service role may), the optional simulator imports its district into the registry.
OWNER_LOGIN = {"retention", "broker-acl", "simulator"}


def _compose() -> dict[str, Any]:
    doc = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(doc, dict)
    return doc


def _services() -> dict[str, dict[str, Any]]:
    services = _compose()["services"]
    assert isinstance(services, dict)
    return services


def test_every_image_is_pinned_to_a_release() -> None:
    for name, svc in _services().items():
        assert PINNED.match(svc["image"]), f"{name}: {svc['image']} is not a pinned release"
    bases = re.findall(r"^FROM\s+(\S+)", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    assert len(bases) >= 2, "the image is built in stages"
    assert all(PINNED.match(b) for b in bases), bases


def test_every_service_has_a_health_check_and_waits_on_health() -> None:
    for name, svc in _services().items():
        assert svc.get("healthcheck", {}).get("test"), f"{name} has no health check"
        for dep, cond in (svc.get("depends_on") or {}).items():
            assert cond["condition"] in ("service_healthy", "service_completed_successfully"), (
                f"{name} starts before {dep} is healthy"
            )


def test_no_secret_has_a_default_and_none_is_written_in_the_file() -> None:
    text = COMPOSE.read_text(encoding="utf-8")
    for var in re.findall(r"\$\{(\w*(?:PASSWORD|SECRET|TOKEN|KEY)\w*)([^}]*)\}", text):
        name, rest = var
        assert rest.startswith(":?"), f"${{{name}}} must be required (:?), not defaulted"
    for name, svc in _services().items():
        env = svc.get("environment") or {}
        for key, value in env.items():
            if re.search("PASSWORD|SECRET|TOKEN", key):
                assert "${" in str(value), f"{name}: {key} is written in the file"


def test_nothing_is_published_in_the_clear_except_on_loopback() -> None:
    published = []
    for name, svc in _services().items():
        for port in svc.get("ports") or []:
            published.append((name, str(port)))
    assert published, "the broker's TLS port is published"
    for name, port in published:
        host_side = port.rsplit(":", 1)[0]
        assert port.startswith("127.0.0.1:") or host_side.endswith("8883"), (
            f"{name} publishes {port} without TLS"
        )
    assert not any(p.endswith("1883") for _, p in published)


def test_metrics_listen_on_the_compose_network_and_are_never_published() -> None:
    # Outside compose the listeners default to 127.0.0.1; a Prometheus in another container
    # needs them on the container's network address, and its health check (run inside the
    # container) still reaches them on 127.0.0.1.
    services = _services()
    served = {"ingest": ("INGEST_METRICS_HOST", "9100")}
    served |= {n: ("ALERTING_METRICS_HOST", "9101") for n in ("alerting", "alerting-standby")}
    served["notify"] = ("NOTIFY_METRICS_HOST", "9102")
    for name, (var, port) in served.items():
        svc = services[name]
        assert svc["environment"].get(var) == "0.0.0.0", f"{name}: {var} not set for scraping"
        assert not any(str(p).endswith(port) for p in svc.get("ports") or []), name
        assert f"127.0.0.1:{port}" in str(svc["healthcheck"]["test"]), name


def test_simulator_only_in_its_profile_and_nothing_installed_at_start() -> None:
    services = _services()
    assert services["simulator"]["profiles"] == ["sim"]
    for name, svc in services.items():
        if name != "simulator":
            assert not svc.get("profiles"), f"{name} is optional"
        assert "pip install" not in str(svc.get("command", "")), f"{name} installs at start"


def test_one_process_per_service_with_replicas_and_a_standby() -> None:
    services = _services()
    assert services["ingest"]["deploy"]["replicas"] >= 2
    ids = {
        services[s]["environment"]["ALERTING_CLIENT_ID"] for s in ("alerting", "alerting-standby")
    }
    # alerting.leader: only the lock holder connects, and the process that takes over resumes
    # the same persistent session, so what was queued for the dead active is not lost.
    assert len(ids) == 1, "active and standby share one MQTT session"
    for wanted in ("ingest", "alerting", "notify", "dashboard", "timescaledb", "mosquitto"):
        assert wanted in services
    assert "allow_anonymous" not in COMPOSE.read_text()  # the generated auth config is used


def _eldercare_argv(cmd: Any) -> list[list[str]]:
    if isinstance(cmd, list) and cmd and cmd[0] == "eldercare":
        return [cmd[1:]]
    if isinstance(cmd, list) and cmd[:2] == ["sh", "-c"]:
        out = []
        for part in re.split(r"&&|;", cmd[2]):
            # A shell variable stands for a number here (the district size).
            words = re.sub(r'"?\$\$[A-Z_]+"?', "1", part).replace("exec ", "").split()
            if words and words[0] == "eldercare":
                out.append([w.strip('"') for w in words[1:]])
        return out
    return []


def test_every_eldercare_command_in_the_file_parses() -> None:
    parser = build_parser()
    seen = 0
    for svc in _services().values():
        for field in ("command",):
            for argv in _eldercare_argv(svc.get(field)):
                parser.parse_args(argv)
                seen += 1
        for argv in _eldercare_argv(svc.get("healthcheck", {}).get("test", [])[1:]):
            parser.parse_args(argv)
            seen += 1
    assert seen >= 8


def test_deploy_scripts_are_valid_shell() -> None:
    for script in ("deploy/setup.sh", "deploy/service.sh"):
        done = subprocess.run(["sh", "-n", str(ROOT / script)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert f"COPY {script}".split()[1] in (ROOT / "Dockerfile").read_text()


def _compose_cli() -> list[str] | None:
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


@pytest.mark.skipif(_compose_cli() is None, reason="no docker compose client here")
def test_docker_compose_accepts_the_file() -> None:
    cli = _compose_cli()
    assert cli is not None
    env = {"PATH": "/usr/bin:/bin:/usr/local/bin", **ENV_FOR_CONFIG}
    done = subprocess.run(
        [*cli, "-f", str(COMPOSE), "config", "--quiet"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    unset = subprocess.run(
        [*cli, "-f", str(COMPOSE), "config", "--quiet"],
        env={"PATH": env["PATH"]},
        capture_output=True,
        text=True,
    )
    assert unset.returncode != 0 and "POSTGRES_PASSWORD" in unset.stderr


def _url_info(url: str) -> dict[str, Any]:
    """The URL's parts, each `${VAR...}` standing for a value compose fills in."""
    return conninfo_to_dict(re.sub(r"\$\{[^}]*\}", "x", url))


def _platform_services() -> dict[str, dict[str, Any]]:
    return {
        name: svc
        for name, svc in _services().items()
        if str(svc.get("image", "")).startswith(PLATFORM_IMAGE + ":")
    }


def test_every_long_running_service_logs_in_as_its_own_role() -> None:
    platform = _platform_services()
    long_running = {n for n, svc in platform.items() if svc.get("restart") != "no"}
    assert long_running == set(ROLE_OF) | OWNER_LOGIN, "every service's database login is chosen"
    owner = _url_info(platform["retention"]["environment"]["DATABASE_URL"])["user"]
    for name, role in ROLE_OF.items():
        assert role in SERVICES
        env = platform[name]["environment"]
        info = _url_info(env["DATABASE_URL"])
        assert info["user"] == login_name(role), f"{name} logs in as {info['user']}"
        assert info["user"] not in ("postgres", owner)
        assert "password" not in info, f"{name}: a password in the URL ends up in logs"
        # libpq reads PGPASSWORD when the URL has none; the secret is required, not defaulted.
        var = f"ELDERCARE_DB_PASSWORD_{role.upper()}"
        assert re.fullmatch(rf"\$\{{{var}:\?[^}}]+\}}", env["PGPASSWORD"]), env["PGPASSWORD"]
    for name in OWNER_LOGIN:
        assert "PGPASSWORD" not in platform[name]["environment"], name


def test_setup_runs_db_roles_after_every_migrate_with_every_password() -> None:
    setup = _services()["setup"]
    assert setup["command"] == ["setup.sh", "platform"]
    assert setup["restart"] == "no"
    env = setup["environment"]
    assert _url_info(env["DATABASE_URL"])["user"] == "eldercare", "DDL runs as the owner"
    for role in set(ROLE_OF.values()):
        var = f"ELDERCARE_DB_PASSWORD_{role.upper()}"
        assert re.fullmatch(rf"\$\{{{var}:\?[^}}]+\}}", str(env.get(var))), var
    script = (ROOT / "deploy" / "setup.sh").read_text(encoding="utf-8")
    commands = [line.strip() for line in script.splitlines() if re.match(r"\s*eldercare db ", line)]
    migrates = [i for i, c in enumerate(commands) if "eldercare db migrate" in c]
    assert migrates, "setup applies the migrations"
    for i in migrates:
        # `db roles` follows on the same line (`&&`) or the next command, never before.
        same_line = re.search(r"eldercare db migrate\s*&&\s*eldercare db roles", commands[i])
        next_line = i + 1 < len(commands) and commands[i + 1].startswith("eldercare db roles")
        assert same_line or next_line, f"no `db roles` after {commands[i]!r}"
    parser = build_parser()
    parser.parse_args(["db", "migrate"])
    parser.parse_args(["db", "roles"])


def test_only_setup_runs_migrations() -> None:
    services = _platform_services()
    for name, svc in services.items():
        if name != "setup":
            assert "db migrate" not in str(svc.get("command", "")), f"{name} migrates"
    assert services["dashboard"]["environment"]["DASHBOARD_MIGRATE_ON_START"] == "false"
    assert "--no-migrate" in services["notify"]["command"]
    for name in ("alerting", "alerting-standby"):
        assert services[name]["environment"]["ALERTING_MIGRATE_ON_START"] == "false", name
