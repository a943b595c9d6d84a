"""`python -m alerting`: run the alerting service (same as `eldercare alerting`)."""

from __future__ import annotations

import logging
import os
import sys

from alerting.service import run_forever
from alerting.settings import AlertingSettings


def main() -> int:
    """Configure logging, build the settings and run until interrupted."""
    logging.basicConfig(
        level=os.environ.get("ELDERCARE_LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    run_forever(AlertingSettings())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
