"""Subcommands contributed by `firmware_sim` to the `eldercare` command: `sim fleet`, `sim run`,
`sim record`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from firmware_sim.conditions import ANOMALY_PER_DAY, INACTIVITY_PER_DAY
from firmware_sim.scenario import FaultRates, Injection, parse_faults, parse_scenario, parse_spec

_INJECT_FLAGS = (
    "fall",
    "fall_recovery",
    "sos",
    "cancel",
    "wander",
    "smoke",
    "cooking",
    "steam",
    "offline",
    "silent",
    "low_battery",
    "reboot",
    "sit_hard",
    "drop_cane",
    "stumble",
    "inactivity",
    "anomaly",
)


def _fleet(args: argparse.Namespace) -> int:
    from firmware_sim.district import generate_fleet
    from gateway import fleet_to_dict

    fleet = generate_fleet(args.elders, args.seed, args.district)
    text = json.dumps(fleet_to_dict(fleet), ensure_ascii=False, separators=(",", ":"))
    if args.out == "-":
        sys.stdout.write(text + "\n")
    else:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    print(
        f"{len(fleet.elders)} elders, {len(fleet.devices)} devices, "
        f"{len(fleet.care_centers)} care centres -> {args.out}",
        file=sys.stderr,
    )
    return 0


def _injections(args: argparse.Namespace) -> tuple[list[Injection], FaultRates | None]:
    injections: list[Injection] = []
    faults = parse_faults(args.faults) if args.faults else None
    if args.scenario:
        scripted, scripted_faults = parse_scenario(Path(args.scenario).read_text(encoding="utf-8"))
        injections += scripted
        faults = faults or scripted_faults
    for kind in _INJECT_FLAGS:
        for spec in getattr(args, kind) or ():
            injections.append(parse_spec(kind, spec))
    return injections, faults


def _run(args: argparse.Namespace) -> int:
    from firmware_sim.settings import SimSettings
    from firmware_sim.simulation import Simulation
    from gateway import FleetError, parse_fleet

    settings = SimSettings()
    try:
        fleet = parse_fleet(Path(args.fleet).read_bytes())
        injections, faults = _injections(args)
        sim = Simulation(
            fleet,
            mqtt_url=args.mqtt_url or settings.mqtt_url,
            prefix=settings.prefix if args.prefix is None else args.prefix,
            seed=settings.seed if args.seed is None else args.seed,
            speed=settings.speed if args.speed is None else args.speed,
            duration_s=args.duration,
            start_ms=args.start_ms,
            injections=injections,
            faults=faults,
            pooled=settings.pooled if args.pooled is None else args.pooled,
            rate_scale=args.rate_scale,
            inactivity_per_day=args.inactivity_per_day,
            anomaly_per_day=args.anomaly_per_day,
            ground_truth=args.ground_truth,
            progress=lambda s: print(s.line(), file=sys.stderr, flush=True),
            progress_s=settings.progress_s,
        )
    except (OSError, ValueError, FleetError) as exc:
        print(f"eldercare sim run: {exc}", file=sys.stderr)
        return 2
    sim.run()
    return 0


def _record(args: argparse.Namespace) -> int:
    import time

    from firmware_sim.record import record
    from gateway import FleetError, parse_fleet

    if args.faults:
        print(
            "eldercare sim record: --faults is not supported (payloads stay valid)", file=sys.stderr
        )
        return 2
    start_ms = args.start_ms
    if start_ms is None:  # replayed at >= 1x right away, ts never passes the real clock
        start_ms = int(time.time() * 1000) - int(args.duration * 1000)
    try:
        fleet = parse_fleet(Path(args.fleet).read_bytes())
        injections, _ = _injections(args)
        stats = record(
            fleet,
            args.out,
            duration_s=args.duration,
            start_ms=start_ms,
            seed=args.seed,
            prefix=args.prefix,
            rate_scale=args.rate_scale,
            injections=injections,
            ground_truth=args.ground_truth,
            warmup_s=args.warmup,
        )
    except (OSError, ValueError, FleetError) as exc:
        print(f"eldercare sim record: {exc}", file=sys.stderr)
        return 2
    print(
        f"{stats.messages} messages ({stats.bytes} bytes), {stats.incidents} incidents, "
        f"start_ms {stats.start_ms}, {stats.duration_ms / 1000:g} s -> {args.out}",
        file=sys.stderr,
    )
    return 0


def _add_record(sim_sub: argparse._SubParsersAction[Any]) -> None:
    rec = sim_sub.add_parser(
        "record",
        help="write a fleet's traffic for a period to a file, faster than real time",
        description="One line per publish: offset_ms TAB qos TAB retain TAB topic TAB payload "
        "(see firmware_sim/record.py); ground truth beside it.",
    )
    rec.add_argument("fleet", help="fleet file (contract §3)")
    rec.add_argument("--out", required=True, help="the recording (overwritten)")
    rec.add_argument("--duration", type=float, required=True, help="simulated seconds")
    rec.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    rec.add_argument(
        "--start-ms",
        type=int,
        default=None,
        help="simulated clock at offset 0 (default: now minus the duration)",
    )
    rec.add_argument(
        "--warmup", type=float, default=0.0, help="simulated seconds run before, not recorded"
    )
    rec.add_argument("--prefix", default="", help="topic prefix before eldercare/v1/")
    rec.add_argument("--rate-scale", type=float, default=1.0, help="incident rates (default 1)")
    rec.add_argument(
        "--ground-truth", default=None, help="incidents JSONL (default OUT.truth.jsonl)"
    )
    rec.add_argument("--scenario", default=None, help="scenario JSON file")
    rec.add_argument("--faults", default=None, help=argparse.SUPPRESS)
    for kind in _INJECT_FLAGS:
        rec.add_argument(
            f"--{kind.replace('_', '-')}",
            dest=kind,
            action="append",
            metavar="ID@+120s",
            help=f"inject {kind} (elder or device id; repeatable)",
        )
    rec.set_defaults(handler=_record)


def add_commands(sub: argparse._SubParsersAction[Any]) -> None:
    """Register `sim fleet`, `sim run` and `sim record`."""
    sim = sub.add_parser("sim", help="device and district simulators")
    sim_sub = sim.add_subparsers(dest="sim_command", required=True, metavar="SIM_COMMAND")

    fleet = sim_sub.add_parser("fleet", help="generate a district fleet file (contract §3)")
    fleet.add_argument("--elders", type=int, required=True, help="number of elders")
    fleet.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    fleet.add_argument("--district", default="xicheng", help="district data (default xicheng)")
    fleet.add_argument("--out", required=True, help="output file, or - for stdout")
    fleet.set_defaults(handler=_fleet)

    run = sim_sub.add_parser("run", help="drive a fleet against the broker")
    run.add_argument("fleet", help="fleet file (contract §3)")
    run.add_argument("--mqtt-url", default=None, help="broker (default $MQTT_URL or local)")
    run.add_argument("--prefix", default=None, help="topic prefix before eldercare/v1/")
    run.add_argument("--speed", type=float, default=None, help="time acceleration (default 1)")
    run.add_argument("--duration", type=float, default=None, help="real seconds to run")
    run.add_argument("--seed", type=int, default=None, help="random seed (default 0)")
    run.add_argument(
        "--start-ms",
        type=int,
        default=None,
        help="simulated clock at the start (default: so ts never passes real time)",
    )
    run.add_argument("--scenario", default=None, help="scenario JSON file")
    run.add_argument("--ground-truth", default=None, help="append incidents (JSONL) here")
    run.add_argument(
        "--faults",
        default=None,
        help="fault rates: 0.01, or malformed=0.01,duplicate=0.01,late=0.005",
    )
    run.add_argument(
        "--pooled",
        type=int,
        default=None,
        help="share N connections among all devices (default: one per device)",
    )
    run.add_argument(
        "--rate-scale",
        type=float,
        default=1.0,
        help="multiply spontaneous incident rates (default 1)",
    )
    run.add_argument(
        "--inactivity-per-day",
        type=float,
        default=INACTIVITY_PER_DAY,
        help=f"immobility episodes per elder-day (default {INACTIVITY_PER_DAY:g})",
    )
    run.add_argument(
        "--anomaly-per-day",
        type=float,
        default=ANOMALY_PER_DAY,
        help=f"arrhythmia episodes per elder-day (default {ANOMALY_PER_DAY:g})",
    )
    for kind in _INJECT_FLAGS:
        run.add_argument(
            f"--{kind.replace('_', '-')}",
            dest=kind,
            action="append",
            metavar="ID@+120s",
            help=f"inject {kind} (elder or device id; repeatable)",
        )
    run.set_defaults(handler=_run)
    _add_record(sim_sub)
