"""Subcommands contributed by `alerting`: the service and alert operations."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from typing import Any

from alerting import store
from alerting.lifecycle import AlertRow, TransitionError
from alerting.settings import AlertingSettings
from alerting.writer import publish_alert
from gateway.contract import AlertStatus
from gateway.mqtt import make_client, parse_mqtt_url
from ingest.pg import connect

logger = logging.getLogger(__name__)


def add_commands(sub: argparse._SubParsersAction[Any]) -> None:
    """Register `alerting` and `alerts`."""
    run = sub.add_parser("alerting", help="run the alerting service (detectors, lifecycle)")
    run.add_argument("--prefix", default=None, help="topic prefix (default $ALERTING_TOPIC_PREFIX)")
    run.add_argument(
        "--workers",
        type=int,
        default=None,
        help="partition processes to run and supervise, one per core (default $ALERTING_WORKERS"
        " or 1; metrics of worker k on ALERTING_METRICS_PORT + k)",
    )
    run.set_defaults(handler=_run)

    alerts = sub.add_parser("alerts", help="list, acknowledge or resolve alerts")
    ops = alerts.add_subparsers(dest="alerts_command", required=True, metavar="OP")
    for name, help_text in (("ack", "acknowledge an alert"), ("resolve", "resolve an alert")):
        op = ops.add_parser(name, help=help_text)
        op.add_argument("alert_id")
        op.add_argument("--by", required=True, help="who (a dispatcher id; never blank)")
        op.add_argument("--note", default="")
        op.add_argument("--prefix", default=None, help="topic prefix of the alert feed")
        op.set_defaults(handler=_transition, target=name)
    listing = ops.add_parser("list", help="list the newest alerts")
    listing.add_argument("--status", action="append", choices=[s.value for s in AlertStatus])
    listing.add_argument("--active", action="store_true", help="open, acknowledged, escalated")
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.set_defaults(handler=_list)


def _settings(args: argparse.Namespace) -> AlertingSettings:
    settings = AlertingSettings()
    prefix = getattr(args, "prefix", None)
    return settings.model_copy(update={"topic_prefix": prefix}) if prefix is not None else settings


def _run(args: argparse.Namespace) -> int:
    from alerting.service import run_forever
    from alerting.workers import run_workers

    settings = _settings(args)
    if args.workers is not None:
        if args.workers < 1:
            print("error: --workers needs at least 1", file=sys.stderr)
            return 2
        settings = settings.model_copy(update={"workers": args.workers})
    if settings.workers > 1:
        level = getattr(args, "log_level", "INFO")
        return run_workers(settings, level, getattr(args, "log_format", "text"))
    run_forever(settings)
    return 0


def publish_once(settings: AlertingSettings, alert: AlertRow) -> None:
    """Publish one alert state with a short-lived client, waiting for the broker's PUBACK."""
    address = parse_mqtt_url(settings.mqtt_url)
    client = make_client(address=address)
    client.connect(address.host, address.port)
    client.loop_start()
    try:
        infos = []
        publish_alert(
            lambda t, p: infos.append(client.publish(t, p, qos=1)), alert, settings.topic_prefix
        )
        for info in infos:
            info.wait_for_publish(timeout=10)
    finally:
        client.disconnect()
        client.loop_stop()


def _transition(args: argparse.Namespace) -> int:
    by = args.by.strip()
    if not by:
        # The history must say who took or closed an alert (an audit trail of nobody is none).
        print("error: --by needs a name: who acknowledges or resolves the alert", file=sys.stderr)
        return 2
    settings = _settings(args)
    target = AlertStatus.ACKNOWLEDGED if args.target == "ack" else AlertStatus.RESOLVED
    now_ms = int(time.time() * 1000)
    with connect(settings.database_url) as conn:
        try:
            alert = store.transition(conn, args.alert_id, target, by, args.note, now_ms)
        except TransitionError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    publish_once(settings, alert)
    print(f"{alert.alert_id} {alert.status.value} by {by}")
    return 0


def _list(args: argparse.Namespace) -> int:
    settings = _settings(args)
    statuses = [AlertStatus(s) for s in args.status or ()]
    if args.active:
        statuses += [AlertStatus.OPEN, AlertStatus.ACKNOWLEDGED, AlertStatus.ESCALATED]
    with connect(settings.database_url) as conn:
        alerts = store.list_alerts(conn, statuses or None, args.limit)
    for a in alerts:
        if args.json:
            msg = a.to_message()
            print(
                json.dumps(
                    {**{k: getattr(msg, k) for k in msg.__slots__}, "escalations": a.escalations},
                    default=str,
                )
            )
        else:
            print(
                f"{a.alert_id}  {a.kind.value:<14} {a.severity.value:<8} {a.status.value:<12}"
                f" {a.elder_id:<12} {a.center_id:<10} {a.distance_m:7.0f} m  {a.reason}"
            )
    return 0
