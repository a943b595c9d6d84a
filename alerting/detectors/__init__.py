"""Pure detectors: typed device messages in, findings (triggers and clears) out, on device time."""

from alerting.detectors.anomaly import AnomalyDetector
from alerting.detectors.fall import FallDetector
from alerting.detectors.health import HealthDetector
from alerting.detectors.inactivity import InactivityDetector
from alerting.detectors.smoke import SmokeDetector
from alerting.detectors.sos import SosDetector
from alerting.detectors.wandering import SafeZone, WanderingDetector

__all__ = [
    "AnomalyDetector",
    "FallDetector",
    "HealthDetector",
    "InactivityDetector",
    "SafeZone",
    "SmokeDetector",
    "SosDetector",
    "WanderingDetector",
]
