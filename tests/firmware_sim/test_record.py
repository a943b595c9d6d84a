"""`eldercare sim record`: determinism, the line format, Wills and the ground truth (no broker)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eldercare.cli import main as eldercare_main
from firmware_sim import Injection, generate_fleet, read_ground_truth
from firmware_sim.record import read_recording, record
from gateway import DeviceType, Event, Fleet, Status, decode, fleet_to_dict

START_MS = 1_764_300_000_000  # 2025-11-28, a fixed simulated start
DURATION_S = 1800.0


@pytest.fixture(scope="module")
def fleet() -> Fleet:
    return generate_fleet(40, seed=5)


def _button(fleet: Fleet) -> str:
    return next(d.id for d in fleet.devices if d.type is DeviceType.BUTTON)


def test_same_seed_same_bytes_other_seed_other_bytes(fleet: Fleet, tmp_path: Path) -> None:
    paths = [tmp_path / f"r{k}.tsv" for k in range(3)]
    for path, seed in zip(paths, (3, 3, 4), strict=True):
        record(fleet, path, duration_s=DURATION_S, start_ms=START_MS, seed=seed, warmup_s=30)
    a, b, c = (p.read_bytes() for p in paths)
    assert a and a == b and a != c
    truth = [Path(f"{p}.truth.jsonl").read_bytes() for p in paths]
    assert truth[0] == truth[1]


def test_lines_are_publishes_in_time_order(fleet: Fleet, tmp_path: Path) -> None:
    path = tmp_path / "rec.tsv"
    stats = record(fleet, path, duration_s=DURATION_S, start_ms=START_MS, seed=1, prefix="p/")
    lines = read_recording(path)
    assert len(lines) == stats.messages > len(fleet.devices)  # every device boots and reports
    assert path.stat().st_size == stats.bytes
    offsets = [off for off, *_ in lines]
    assert offsets == sorted(offsets)
    assert offsets[0] >= 0 and offsets[-1] < DURATION_S * 1000
    registry = {d.id: d.type for d in fleet.devices}
    channels = set()
    for off, qos, retain, topic, payload in lines:
        msg = decode(topic, payload, now_ms=START_MS + off, registry=registry, prefix="p/")
        channels.add(msg.channel)
        assert qos in (0, 1)
        assert retain == isinstance(msg, Status)
        if isinstance(msg, Status) and msg.online:
            assert msg.ts == START_MS + off  # payload ts is the simulated clock at the offset
    assert channels >= {"status", "telemetry"}


def test_warmup_keeps_the_boot_out(fleet: Fleet, tmp_path: Path) -> None:
    path = tmp_path / "rec.tsv"
    record(fleet, path, duration_s=60, start_ms=START_MS, seed=1, warmup_s=600)
    statuses = [t for _, _, _, t, _ in read_recording(path) if t.endswith("/status")]
    # Without the warm-up every device's boot status falls in the first 5 s.
    assert len(statuses) < len(fleet.devices) / 2


def test_injections_and_wills(fleet: Fleet, tmp_path: Path) -> None:
    button = _button(fleet)
    band = next(d.id for d in fleet.devices if d.type is DeviceType.BAND)
    path = tmp_path / "rec.tsv"
    record(
        fleet,
        path,
        duration_s=600,
        start_ms=START_MS,
        seed=1,
        warmup_s=120,
        injections=[Injection("sos", button, 100.0), Injection("offline", band, 200.0)],
    )
    lines = read_recording(path)
    registry = {d.id: d.type for d in fleet.devices}
    press = [
        (off, msg)
        for off, _, _, topic, payload in lines
        if topic.endswith(f"/{button}/events")
        and isinstance(
            msg := decode(topic, payload, now_ms=START_MS + off, registry=registry), Event
        )
    ]
    assert [(off, m.event) for off, m in press][:1] == [(100_000, "press")]
    wills = [
        (off, qos, retain)
        for off, qos, retain, topic, payload in lines
        if topic.endswith(f"/{band}/status") and json.loads(payload)["online"] is False
    ]
    assert wills == [(200_000, 1, True)]
    truth = read_ground_truth(f"{path}.truth.jsonl")
    kinds = {(i.device_id, i.kind, i.start_ts) for i in truth}
    assert (button, "sos", START_MS + 100_000) in kinds
    assert (band, "device_offline", START_MS + 200_000) in kinds
    assert all(i.start_ts >= START_MS for i in truth)  # warm-up incidents are not recorded


def test_command_line(fleet: Fleet, tmp_path: Path) -> None:
    fleet_file = tmp_path / "fleet.json"
    fleet_file.write_text(json.dumps(fleet_to_dict(fleet)), encoding="utf-8")
    out = tmp_path / "cli.tsv"
    argv = ["sim", "record", str(fleet_file), "--out", str(out), "--duration", "300"]
    argv += ["--seed", "2", "--start-ms", str(START_MS), "--sos", f"{_button(fleet)}@+60s"]
    assert eldercare_main(argv) == 0
    direct = tmp_path / "direct.tsv"
    record(
        fleet,
        direct,
        duration_s=300,
        start_ms=START_MS,
        seed=2,
        injections=[Injection("sos", _button(fleet), 60.0)],
    )
    assert out.read_bytes() == direct.read_bytes()
    assert Path(f"{out}.truth.jsonl").exists()
    assert (
        eldercare_main(["sim", "record", str(fleet_file), "--out", str(out), "--duration", "0"])
        == 2
    )
    faulty = ["sim", "record", str(fleet_file), "--out", str(out), "--duration", "60"]
    assert eldercare_main([*faulty, "--faults", "0.01"]) == 2
