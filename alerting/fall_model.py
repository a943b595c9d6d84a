"""Loading the shipped fall classifier (a versioned joblib artefact plus a JSON card)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import joblib

from alerting.detectors.fall import FallClassifier
from alerting.fall_features import FEATURE_NAMES

MODEL_NAME = "fall_v1"


@dataclass(frozen=True, slots=True)
class FallModel:
    """A loaded classifier and its card."""

    classifier: FallClassifier
    threshold: float
    card: dict[str, Any]


def default_model_path() -> Path:
    """Where the shipped artefact lives (alerting/models/fall_v1.joblib)."""
    return Path(str(resources.files("alerting.models").joinpath(f"{MODEL_NAME}.joblib")))


def load_fall_model(path: str | Path | None = None) -> FallModel:
    """Load the artefact and check it was trained on the features this code computes.

    Raises:
        ValueError: the artefact's feature list differs from FEATURE_NAMES.
    """
    model_path = Path(path) if path else default_model_path()
    bundle = joblib.load(model_path)
    card_path = model_path.with_suffix(".json")
    card: dict[str, Any] = json.loads(card_path.read_text()) if card_path.exists() else {}
    if tuple(bundle["features"]) != FEATURE_NAMES:
        raise ValueError(f"{model_path} was trained on other features: {bundle['features']}")
    return FallModel(bundle["model"], float(bundle["threshold"]), card)
