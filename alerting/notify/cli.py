"""`eldercare notify`: run the notification sender; `--init-keys` creates the VAPID key."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from typing import Any

from alerting.notify.settings import NotifySettings

logger = logging.getLogger(__name__)


def add_commands(sub: Any) -> None:
    """Register `notify` on the `eldercare` parser."""
    parser: argparse.ArgumentParser = sub.add_parser(
        "notify", help="send family notifications (Web Push, webhooks, voice calls)"
    )
    parser.add_argument(
        "--init-keys",
        action="store_true",
        help="create the VAPID key file if missing, print the public key and exit",
    )
    parser.add_argument("--no-migrate", action="store_true", help="do not apply migrations")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run until SIGTERM or SIGINT."""
    from alerting.notify.service import Notifier
    from alerting.notify.vapid import load_key, public_key_b64
    from ingest.migrate import apply_migrations
    from ingest.pg import connect

    settings = NotifySettings()
    if args.init_keys:
        print(public_key_b64(load_key(settings)))
        return 0
    if not args.no_migrate:
        with connect(settings.database_url, autocommit=True) as conn:
            apply_migrations(conn)
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    logger.info("notify: running")
    Notifier(settings).run(done)
    return 0
