"""Fleet import: whole-file validation, idempotent, one transaction; the registry loaders."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from gateway import DeviceType, Fleet, fleet_to_dict
from ingest.db import connect
from ingest.registry import import_fleet, load_centers, load_elders, load_fleet, load_registry

ROOT = Path(__file__).resolve().parents[2]


def _cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"DATABASE_URL": url, "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-m", "eldercare", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
    )


def _snapshot(conn: psycopg.Connection[tuple[object, ...]]) -> list[object]:
    out: list[object] = []
    for table in ("care_centers", "elders", "families", "elder_families", "devices"):
        out.append(conn.execute(f"SELECT *, xmin::text FROM {table} ORDER BY 1, 2").fetchall())
    return out


def test_import_is_idempotent_and_loaders_read_it_back(migrated_url: str, fleet: Fleet) -> None:
    with connect(migrated_url) as conn:
        first = import_fleet(conn, fleet)
        before = _snapshot(conn)
        again = import_fleet(conn, fleet)
        after = _snapshot(conn)
        registry = load_registry(conn)
        assert load_fleet(conn) == Fleet(
            fleet.care_centers, fleet.elders, tuple(sorted(fleet.devices, key=lambda d: d.id))
        )
        assert set(load_elders(conn)) == {e.id for e in fleet.elders}
        assert set(load_centers(conn)) == {c.id for c in fleet.care_centers}
    assert first.changed == 1 + 2 + 2 + 2 + 8
    assert again.changed == 0
    assert before == after  # not even xmin moved
    assert registry == {d.id: d.type for d in fleet.devices}


def test_reimport_with_changes_updates_only_changed_rows(migrated_url: str, fleet: Fleet) -> None:
    doc = fleet_to_dict(fleet)
    doc["devices"][0]["heartbeat_s"] = 999
    doc["elders"][0]["families"] = []
    with connect(migrated_url) as conn:
        import_fleet(conn, fleet)
        from gateway import parse_fleet

        result = import_fleet(conn, parse_fleet(doc))
        hb = conn.execute(
            "SELECT heartbeat_s FROM devices WHERE id = %s", (doc["devices"][0]["id"],)
        ).fetchone()
    assert (result.devices, result.elder_families, result.elders) == (1, 1, 0)
    assert hb == (999,)


def test_cli_refuses_a_bad_file_whole_listing_every_error(
    migrated_url: str, fleet: Fleet, tmp_path: Path
) -> None:
    doc = fleet_to_dict(fleet)
    doc["devices"][0]["type"] = "toaster"
    doc["devices"][1]["elder_id"] = "el-nobody"
    doc["care_centers"][0]["lat"] = 123
    path = tmp_path / "fleet.json"
    path.write_text(json.dumps(doc))
    proc = _cli(migrated_url, "registry", "import", str(path))
    assert proc.returncode == 1
    assert "3 error(s)" in proc.stderr
    for needle in ("toaster", "el-nobody", "care_centers[0].lat"):
        assert needle in proc.stderr
    with connect(migrated_url) as conn:
        assert conn.execute("SELECT count(*) FROM devices").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM elders").fetchone() == (0,)


def test_cli_import_twice_changes_nothing(migrated_url: str, fleet: Fleet, tmp_path: Path) -> None:
    path = tmp_path / "fleet.json"
    path.write_text(json.dumps(fleet_to_dict(fleet)))
    first = _cli(migrated_url, "registry", "import", str(path))
    second = _cli(migrated_url, "registry", "import", str(path))
    assert first.returncode == 0, first.stderr
    assert "15 row(s) changed" in first.stdout
    assert "0 row(s) changed" in second.stdout


def test_import_is_one_transaction(migrated_url: str, fleet: Fleet) -> None:
    with connect(migrated_url) as conn:
        # A device id the table's CHECK refuses makes the last statement fail.
        bad = Fleet(
            fleet.care_centers,
            fleet.elders,
            (*fleet.devices[:1], type(fleet.devices[0])("X", DeviceType.BAND, fleet.elders[0].id)),
        )
        with pytest.raises(psycopg.errors.CheckViolation):
            import_fleet(conn, bad)
        assert conn.execute("SELECT count(*) FROM care_centers").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM elders").fetchone() == (0,)
