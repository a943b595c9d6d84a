"""Train the fall classifier on simulated cane episodes: `python -m alerting.train_fall`.

Episodes come from firmware_sim's cane physics. Seeds are kept apart: training uses
TRAIN_SEEDS, the metrics in the model card come from VALIDATION_SEEDS, and the tests use
their own seeds (tests/alerting/test_fall*.py, 900_000 and up); the district evaluation
draws its episodes from the simulator's own seeded stream.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import sklearn
from numpy.typing import NDArray
from sklearn.ensemble import RandomForestClassifier

from alerting.detectors.fall import FallDetector
from alerting.fall_features import FEATURE_NAMES
from alerting.fall_model import MODEL_NAME
from firmware_sim.cane import CANE_KINDS, FALL_KINDS, cane_episode, cane_windows
from gateway.contract import DeviceType
from gateway.messages import CaneTelemetry

VERSION = "1.0.0"
TRAIN_SEEDS = range(100_000, 100_600)
VALIDATION_SEEDS = range(200_000, 200_300)
MODEL_SEED = 7
THRESHOLD = 0.5
RATES_HZ = (50, 25)
_T0_MS = 1_700_000_000_000


class _Recorder:
    """Stands in for the model while collecting the feature vectors the detector computes."""

    def __init__(self) -> None:
        self.rows: list[NDArray[np.float64]] = []

    def predict_proba(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        self.rows.extend(np.asarray(x, dtype=np.float64))
        return np.array([[1.0, 0.0]] * len(x))


def episode_features(
    samples: NDArray[np.float64], rate_hz: int, *, truncate_after_impact: int | None = None
) -> list[NDArray[np.float64]]:
    """Stream an episode through the detector exactly as a cane would send it.

    Args:
        samples: the episode.
        rate_hz: its rate.
        truncate_after_impact: stop sending this many windows after the one holding the
            first impact (a cane that stops streaming, or windows lost on the way).
    """
    recorder = _Recorder()
    detector = FallDetector(recorder)
    ts = _T0_MS
    left = truncate_after_impact
    for i, window in enumerate(cane_windows(samples, rate_hz)):
        ts = _T0_MS + int((i + 1) * len(window) * 1000 / rate_hz)
        msg = CaneTelemetry(
            device_id="cane-train",
            type=DeviceType.CANE,
            seq=i,
            ts=ts,
            rate_hz=rate_hz,
            accel_g=tuple((float(x), float(y), float(z)) for x, y, z in window),
        )
        detector.on_window(msg)
        if left is not None and (recorder.rows or detector.pending()):
            if left <= 0:
                break
            left -= 1
    detector.tick(ts + 3_600_000)
    return recorder.rows


def dataset(seeds: Iterable[int]) -> tuple[NDArray[np.float64], NDArray[np.int64], list[str]]:
    """Features, labels and episode kinds for every candidate impact of every episode."""
    rows: list[NDArray[np.float64]] = []
    labels: list[int] = []
    kinds: list[str] = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        for kind in CANE_KINDS:
            rate_hz = RATES_HZ[seed % len(RATES_HZ)]
            samples = cane_episode(kind, rng, rate_hz)
            truncate = int(rng.integers(0, 4)) if rng.random() < 0.3 else None
            for feats in episode_features(samples, rate_hz, truncate_after_impact=truncate):
                rows.append(feats)
                labels.append(int(kind in FALL_KINDS))
                kinds.append(kind)
    return np.array(rows), np.array(labels, dtype=np.int64), kinds


def per_kind_metrics(
    model: Any, seeds: Iterable[int], threshold: float
) -> dict[str, dict[str, float]]:
    """Per episode kind: share of episodes with at least one candidate classified as a fall."""
    out: dict[str, dict[str, float]] = {}
    counts: dict[str, list[int]] = {k: [0, 0] for k in CANE_KINDS}
    for seed in seeds:
        rng = np.random.default_rng(seed)
        for kind in CANE_KINDS:
            rate_hz = RATES_HZ[seed % len(RATES_HZ)]
            samples = cane_episode(kind, rng, rate_hz)
            rows = episode_features(samples, rate_hz)
            hit = bool(rows) and bool(
                (model.predict_proba(np.array(rows))[:, 1] >= threshold).any()
            )
            counts[kind][0] += int(hit)
            counts[kind][1] += 1
    for kind, (hits, total) in counts.items():
        out[kind] = {"alerted_share": hits / total, "episodes": float(total)}
    return out


def train(out_dir: Path) -> dict[str, Any]:
    """Train, validate and write `fall_v1.joblib` and `fall_v1.json` into `out_dir`."""
    x, y, _ = dataset(TRAIN_SEEDS)
    model = RandomForestClassifier(
        n_estimators=60,
        max_depth=8,
        min_samples_leaf=3,
        class_weight="balanced",
        random_state=MODEL_SEED,
        n_jobs=1,
    )
    model.fit(x, y)
    metrics = per_kind_metrics(model, VALIDATION_SEEDS, THRESHOLD)
    card: dict[str, Any] = {
        "name": MODEL_NAME,
        "version": VERSION,
        "estimator": "RandomForestClassifier(n_estimators=60, max_depth=8, min_samples_leaf=3)",
        "sklearn": sklearn.__version__,
        "threshold": THRESHOLD,
        "features": list(FEATURE_NAMES),
        "train_seeds": [TRAIN_SEEDS.start, TRAIN_SEEDS.stop - 1],
        "validation_seeds": [VALIDATION_SEEDS.start, VALIDATION_SEEDS.stop - 1],
        "model_seed": MODEL_SEED,
        "rates_hz": list(RATES_HZ),
        "train_candidates": len(y),
        "train_falls": int(y.sum()),
        "validation": metrics,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    bundle = {
        "model": model,
        "features": list(FEATURE_NAMES),
        "threshold": THRESHOLD,
        "version": VERSION,
    }
    joblib.dump(bundle, out_dir / f"{MODEL_NAME}.joblib", compress=3)
    (out_dir / f"{MODEL_NAME}.json").write_text(json.dumps(card, indent=2) + "\n")
    return card


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "models")
    args = parser.parse_args(argv)
    card = train(args.out)
    json.dump(card["validation"], sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
