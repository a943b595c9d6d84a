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

import numpy as np
import skops.io
from numpy.typing import NDArray

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


class TreeEnsemble:
    """The loaded gradient-boosted trees, evaluated with numpy.

    scikit-learn predicts through OpenMP threads per tree, which costs a thread hand-off per
    tree and call: ~0.4 s for one candidate on a busy two-core host, against well under a
    millisecond here. Same arithmetic as its `TreePredictor` (numeric splits: value <=
    threshold goes left, NaN follows `missing_go_to_left`; logistic link for two classes).

    The trees are stored as one flat node table (node ids offset by each tree's start) whose
    leaves lead to themselves, so a row walks all trees at once, one level per step, with a
    few `take`s per level: one candidate in ~50 us (2-D fancy indexing per tree took ~135).
    """

    def __init__(self, model: Any) -> None:
        trees = [predictors[0].nodes for predictors in model._predictors]
        if len(model._predictors[0]) != 1 or any(t["is_categorical"].any() for t in trees):
            raise ModelMismatchError("only binary models over numeric features are supported")
        starts = np.cumsum([0] + [len(t) for t in trees])[:-1]
        nodes = np.concatenate(trees)
        base = np.repeat(starts, [len(t) for t in trees]).astype(np.int64)
        own = np.arange(len(nodes), dtype=np.int64)
        leaf = nodes["is_leaf"].astype(bool)
        self._value = nodes["value"].astype(np.float64)
        self._feature = np.where(leaf, 0, nodes["feature_idx"]).astype(np.int64)
        self._threshold = nodes["num_threshold"].astype(np.float64)
        self._missing_left = nodes["missing_go_to_left"].astype(bool)
        self._left = np.where(leaf, own, base + nodes["left"]).astype(np.int64)
        self._right = np.where(leaf, own, base + nodes["right"]).astype(np.int64)
        self._roots = starts.astype(np.int64)
        self._depth = int(max(t["depth"].max() for t in trees))
        self._baseline = float(np.asarray(model._baseline_prediction).ravel()[0])

    def predict_proba(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        """(n, 2) probabilities of not-fall and fall."""
        x = np.atleast_2d(np.asarray(x, dtype=np.float64))
        node = np.broadcast_to(self._roots, (len(x), len(self._roots)))
        offsets = (np.arange(len(x), dtype=np.int64) * x.shape[1])[:, None]
        flat = x.ravel()
        missing = bool(np.isnan(flat).any())
        for _ in range(self._depth):
            v = flat.take(offsets + self._feature.take(node))
            left = v <= self._threshold.take(node)
            if missing:
                left = np.where(np.isnan(v), self._missing_left.take(node), left)
            node = np.where(left, self._left.take(node), self._right.take(node))
        raw = self._baseline + self._value.take(node).sum(axis=1)
        p = 1.0 / (1.0 + np.exp(-raw))
        out: NDArray[np.float64] = np.column_stack([1.0 - p, p])
        return out


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
    return FallModel(TreeEnsemble(bundle["model"]), float(bundle["threshold"]), card)
