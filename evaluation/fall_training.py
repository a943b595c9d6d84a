"""Train and judge the fall model on real recordings: `python -m evaluation.fall_training cv|train`.

Data: SisFall (Sucerquia et al., Sensors 2017), read from `--data` (default
`../shared/data/sisfall`), resampled to the cane rates 20, 25, 50 and 100 Hz. Judged by
subject-wise cross-validation (GroupKFold: no subject in both folds). The probability bar is
chosen inside the training subjects only (inner subject-wise folds), as the lowest bar that
keeps their false alarms at most `FA_PER_10H` per 10 h of everyday activity, so the reported
figures never saw the subjects they describe. `train` runs the same cross-validation,
takes the bar it picks over all subjects, fits on every subject and writes the artefact and
its card. The simulator is not used.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import re
import sys
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import skops.io
from numpy.typing import NDArray
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.model_selection import GroupKFold
from threadpoolctl import threadpool_limits

from alerting import fall_features as ff
from alerting.fall_model import ARTEFACT_SUFFIX, FORMAT, MODEL_NAME, library_versions, sha256_file
from evaluation.fall_data import RATES_HZ, Candidates, extract
from evaluation.fall_report import figures, summarise, table
from evaluation.sisfall import SisFall

VERSION = "2.0.0"
FOLDS = 5
INNER_FOLDS = 4
FA_PER_10H = 1.0
THRESHOLDS = (0.5, 0.7, 0.8, 0.9, 0.95, 0.97, 0.98, 0.99, 0.993, 0.995, 0.997, 0.998, 0.999)
PARAMS: dict[str, Any] = {
    "max_iter": 200,
    "learning_rate": 0.08,
    "max_leaf_nodes": 15,
    "l2_regularization": 1.0,
    "early_stopping": False,
    "random_state": 0,
}
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def make_model() -> HistGradientBoostingClassifier:
    """The estimator (fixed hyper-parameters, deterministic)."""
    return HistGradientBoostingClassifier(**PARAMS)


@dataclass(frozen=True, slots=True)
class CvResult:
    """Out-of-fold probabilities of the real (not offset-augmented) candidates."""

    cands: Candidates
    prob: NDArray[np.float64]
    folds: list[list[str]]
    thresholds: list[float]
    numbers: list[int]

    def outcome(self, data: SisFall) -> dict[int, dict[int, tuple[bool, int]]]:
        """rate -> recording -> (fall raised, false alarms), each fold at its own bar."""
        out: dict[int, dict[int, tuple[bool, int]]] = {}
        subject = np.array([data.recordings[i].subject for i in self.cands.recording])
        for rate in sorted(set(self.cands.rate_hz.tolist())):
            merged: dict[int, tuple[bool, int]] = {}
            for fold, bar in zip(self.folds, self.thresholds, strict=True):
                rows = np.isin(subject, fold)
                merged.update(figures(data, self.cands.select(rows), self.prob[rows], bar, rate))
            out[rate] = merged
        return out


def _subjects(data: SisFall, cands: Candidates) -> NDArray[np.str_]:
    return np.array([data.recordings[i].subject for i in cands.recording])


def out_of_fold(
    data: SisFall, cands: Candidates, subjects: Sequence[str], folds: int
) -> tuple[NDArray[np.float64], list[list[str]]]:
    """Probabilities of every real candidate from a model that never saw its subject."""
    subj = _subjects(data, cands)
    groups = np.array(sorted(subjects))
    prob = np.full(len(cands.label), np.nan)
    fold_subjects: list[list[str]] = []
    for train_idx, test_idx in GroupKFold(min(folds, len(groups))).split(groups, groups=groups):
        train_s, test_s = groups[train_idx], groups[test_idx]
        fit_rows = np.isin(subj, train_s) & (cands.label >= 0)
        test_rows = np.isin(subj, test_s) & ~cands.augmented
        if not np.any(test_rows):
            continue
        model = make_model().fit(cands.x[fit_rows], cands.label[fit_rows])
        prob[test_rows] = model.predict_proba(cands.x[test_rows])[:, 1]
        fold_subjects.append(sorted(str(s) for s in test_s))
    return prob, fold_subjects


def pick_threshold(data: SisFall, cands: Candidates, prob: NDArray[np.float64]) -> float:
    """The lowest bar whose false alarms, pooled over rates, stay within FA_PER_10H."""
    keep = ~np.isnan(prob)
    cands, prob = cands.select(keep), prob[keep]
    numbers = sorted(set(cands.recording.tolist()))
    rates = sorted(set(cands.rate_hz.tolist()))
    for bar in THRESHOLDS:
        false = hours = 0.0
        for rate in rates:
            f = summarise(data, numbers, figures(data, cands, prob, bar, rate))
            false, hours = false + f.false_alarms, hours + f.adl_hours
        if hours and 10 * false / hours <= FA_PER_10H:
            return bar
    return THRESHOLDS[-1]


def cross_validate(
    data: SisFall, cands: Candidates, folds: int = FOLDS, inner_folds: int = INNER_FOLDS
) -> CvResult:
    """Outer subject-wise folds; each fold's bar picked on inner folds of its training subjects."""
    subj = _subjects(data, cands)
    subjects = sorted(set(subj.tolist()))
    prob, fold_subjects = out_of_fold(data, cands, subjects, folds)
    bars: list[float] = []
    for test_s in fold_subjects:
        train_s = [s for s in subjects if s not in test_s]
        inner = cands.select(np.isin(subj, train_s))
        inner_prob, _ = out_of_fold(data, inner, train_s, inner_folds)
        bars.append(pick_threshold(data, inner, inner_prob))
    numbers = [r.number for r in data.recordings if r.subject in subjects]
    real = ~cands.augmented
    return CvResult(cands.select(real), prob[real], fold_subjects, bars, numbers)


def cv_summary(data: SisFall, result: CvResult) -> dict[str, Any]:
    """Figures per rate, and per activity code per rate (JSON-ready)."""
    outcome = result.outcome(data)
    codes = sorted({data.recordings[n].code for n in result.numbers})
    per_code = {
        code: {
            str(rate): summarise(
                data, [n for n in result.numbers if data.recordings[n].code == code], by_rec
            ).as_dict()
            for rate, by_rec in outcome.items()
        }
        for code in codes
    }
    per_rate = {
        str(rate): summarise(data, result.numbers, by_rec).as_dict()
        for rate, by_rec in outcome.items()
    }
    return {"per_rate": per_rate, "per_code": per_code}


def content_sha256(model: HistGradientBoostingClassifier, threshold: float) -> str:
    """Digest of what the model computes (its trees and bar), equal across rebuilds."""
    h = hashlib.sha256(repr(threshold).encode())
    h.update(np.asarray(model._baseline_prediction).tobytes())
    for predictors in model._predictors:
        for predictor in predictors:
            h.update(predictor.nodes.tobytes())
    return h.hexdigest()


_OBJECT_ID = re.compile(r'("__id__": |"file": ")(\d+)')


def _canonical_zip(raw: bytes) -> bytes:
    """skops's archive made byte-for-byte reproducible.

    skops names array files and shared-object references by `id()` (memory addresses): they
    are renumbered in order of first appearance in its schema, entries sorted, times fixed.
    """
    with zipfile.ZipFile(io.BytesIO(raw)) as src:
        entries = {name: src.read(name) for name in src.namelist()}
    numbers: dict[str, str] = {}

    def renumber(m: re.Match[str]) -> str:
        return m.group(1) + numbers.setdefault(m.group(2), str(len(numbers) + 1))

    schema = _OBJECT_ID.sub(renumber, entries.pop("schema.json").decode())
    renamed = {f"{numbers[n[:-4]]}.npy" if n[:-4] in numbers else n: b for n, b in entries.items()}
    renamed["schema.json"] = schema.encode()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for name in sorted(renamed):
            info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            dst.writestr(info, renamed[name])
    return out.getvalue()


def train(data: SisFall, out_dir: Path, folds: int = FOLDS) -> dict[str, Any]:
    """Cross-validate, fit on every subject, write `<MODEL_NAME>.skops` and its card."""
    cands = extract(data, augment=True)
    result = cross_validate(data, cands, folds)
    bar = pick_threshold(data, result.cands, result.prob)
    model = make_model().fit(cands.x[cands.label >= 0], cands.label[cands.label >= 0])
    out_dir.mkdir(parents=True, exist_ok=True)
    artefact = out_dir / f"{MODEL_NAME}{ARTEFACT_SUFFIX}"
    bundle = {"model": model, "threshold": bar, "features": list(ff.FEATURE_NAMES)}
    artefact.write_bytes(_canonical_zip(skops.io.dumps(bundle)))
    card = model_card(data, cands, result, bar, model)
    card["artefact_sha256"] = sha256_file(artefact)
    (out_dir / f"{MODEL_NAME}.json").write_text(json.dumps(card, indent=1) + "\n")
    return card


def model_card(
    data: SisFall,
    cands: Candidates,
    result: CvResult,
    bar: float,
    model: HistGradientBoostingClassifier,
) -> dict[str, Any]:
    """What the artefact is, what it learned from, and how well it did."""
    recs = data.recordings
    fit = cands.label >= 0
    return {
        "name": MODEL_NAME,
        "version": VERSION,
        "format": FORMAT,
        "estimator": f"HistGradientBoostingClassifier({PARAMS})",
        "threshold": bar,
        "features": list(ff.FEATURE_NAMES),
        "feature_constants": {
            k: getattr(ff, k)
            for k in ("IMPACT_G", "SMOOTH_S", "PRE_S", "POST_S", "REST_STD_G", "BUSY_G")
        },
        "content_sha256": content_sha256(model, bar),
        "libraries": library_versions(),
        "data": {
            "name": "SisFall v1.0 (Sucerquia et al., Sensors 2017, doi:10.3390/s17010198)",
            "path": _shown_path(data.path),
            "index_sha256": sha256_file(data.path / "index.csv"),
            "recordings_sha256": sha256_file(data.path / "recordings.npz"),
            "recordings": len(recs),
            "fall_recordings": sum(r.is_fall for r in recs),
            "adl_recordings": sum(not r.is_fall for r in recs),
            "subjects": data.subjects(),
            "rates_hz": list(RATES_HZ),
            "offset_augmentation_g": 0.15,
            "train_candidates": int(fit.sum()),
            "train_falls": int((cands.label == 1).sum()),
        },
        "cross_validation": {
            "method": f"GroupKFold({FOLDS}) by subject, bar picked on GroupKFold({INNER_FOLDS}) "
            f"inside the training subjects: lowest bar with <= {FA_PER_10H} false alarm / 10 h",
            "folds": result.folds,
            "fold_thresholds": result.thresholds,
            **cv_summary(data, result),
        },
    }


def _shown_path(path: Path) -> str:
    """The data path relative to the checkout when it can be (cards carry no host paths)."""
    checkout = Path(__file__).resolve().parents[1]
    try:
        return os.path.relpath(path.resolve(), checkout)
    except ValueError:
        return str(path)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("command", choices=("cv", "train"))
    parser.add_argument("--data", type=Path, default=None, help="SisFall directory")
    parser.add_argument("--out", type=Path, default=Path(ff.__file__).parent / "models")
    parser.add_argument("--folds", type=int, default=FOLDS)
    args = parser.parse_args(argv)
    data = SisFall(args.data)
    with threadpool_limits(1):
        if args.command == "train":
            card = train(data, args.out, args.folds)
            sys.stdout.write(json.dumps(card["cross_validation"]["per_rate"], indent=1) + "\n")
            return 0
        result = cross_validate(data, extract(data, augment=True), args.folds)
    sys.stdout.write(table(data, result.outcome(data), result.thresholds) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
