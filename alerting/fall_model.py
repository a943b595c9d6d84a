"""Loading the shipped fall classifier: a skops artefact checked against its JSON card.

The artefact is a skops file (no pickle: only the types listed in TRUSTED_TYPES may be
built, whatever the file says). It loads only when its card sits beside it, the file's
SHA-256 equals the card's, the card's features are the ones this code computes, and the
scikit-learn release series it was built with is the one installed: a tree ensemble built by
another release may predict differently (scikit-learn model persistence guide, "security
and maintainability limitations"). Anything else raises `ModelMismatchError` with what differs
and how to rebuild (`python -m evaluation.fall_training train`).
"""

from __future__ import annotations

import hashlib
import json
import platform
from dataclasses import dataclass
from importlib import metadata, resources
from pathlib import Path
from typing import Any

import skops.io

from alerting.detectors.fall import FallClassifier
from alerting.fall_features import FEATURE_NAMES

MODEL_NAME = "fall_v2"
ARTEFACT_SUFFIX = ".skops"
FORMAT = "skops"
# The only non-builtin, non-numpy type the artefact may contain besides the estimator
# classes skops trusts by default.
TRUSTED_TYPES = ("sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",)
_VERSIONED = ("scikit-learn", "numpy", "skops")


class ModelMismatchError(RuntimeError):
    """The artefact is not the one its card describes, or was built for other libraries."""


@dataclass(frozen=True, slots=True)
class FallModel:
    """A loaded classifier and its card."""

    classifier: FallClassifier
    threshold: float
    card: dict[str, Any]


def library_versions() -> dict[str, str]:
    """Versions of the libraries an artefact depends on (and Python's), as installed."""
    out = {name: metadata.version(name) for name in _VERSIONED}
    out["python"] = platform.python_version()
    return out


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def default_model_path() -> Path:
    """Where the shipped artefact lives (alerting/models/fall_v2.skops)."""
    files = resources.files("alerting.models")
    return Path(str(files.joinpath(f"{MODEL_NAME}{ARTEFACT_SUFFIX}")))


def _series(version: str) -> str:
    return ".".join(version.split(".")[:2])


def check_card(model_path: Path, card: dict[str, Any]) -> None:
    """Refuse an artefact that its card does not vouch for, or built for other libraries.

    Raises:
        ModelMismatchError: with what differs.
    """
    rebuild = "rebuild it with `python -m evaluation.fall_training train`"
    if card.get("format") != FORMAT:
        raise ModelMismatchError(f"{model_path}: card format {card.get('format')!r}, not {FORMAT}")
    digest = sha256_file(model_path)
    if card.get("artefact_sha256") != digest:
        raise ModelMismatchError(
            f"{model_path}: SHA-256 {digest} is not the card's {card.get('artefact_sha256')}; "
            f"the file was changed or belongs to another card: {rebuild}"
        )
    if tuple(card.get("features", ())) != FEATURE_NAMES:
        raise ModelMismatchError(
            f"{model_path} was trained on features {card.get('features')}, this code computes "
            f"{list(FEATURE_NAMES)}: {rebuild}"
        )
    built = card.get("libraries", {}).get("scikit-learn", "?")
    here = library_versions()["scikit-learn"]
    if _series(built) != _series(here):
        raise ModelMismatchError(
            f"{model_path} was built with scikit-learn {built}, {here} is installed: "
            f"install scikit-learn {_series(built)}.x or {rebuild}"
        )


def load_fall_model(path: str | Path | None = None) -> FallModel:
    """Load an artefact after checking it against the card beside it (`<name>.json`).

    Args:
        path: the artefact; the shipped one by default.

    Raises:
        ModelMismatchError: no card, a card that does not match, or other library versions.
    """
    model_path = Path(path) if path else default_model_path()
    card_path = model_path.with_suffix(".json")
    if not model_path.is_file() or not card_path.is_file():
        raise ModelMismatchError(
            f"{model_path}: an artefact loads only beside its card {card_path}"
        )
    try:
        card: dict[str, Any] = json.loads(card_path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelMismatchError(f"{card_path}: unreadable card ({exc})") from exc
    check_card(model_path, card)
    try:
        bundle = skops.io.load(model_path, trusted=list(TRUSTED_TYPES))
    except Exception as exc:  # skops raises several types for untrusted or broken content
        raise ModelMismatchError(f"{model_path}: refused by skops ({exc})") from exc
    if not isinstance(bundle, dict) or float(bundle.get("threshold", -1)) != card["threshold"]:
        raise ModelMismatchError(f"{model_path}: content does not match its card")
    return FallModel(bundle["model"], float(bundle["threshold"]), card)
