"""The fall artefact loads only beside a card that vouches for it, on its library versions."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from alerting.fall_features import FEATURE_NAMES
from alerting.fall_model import (
    ModelMismatchError,
    default_model_path,
    library_versions,
    load_fall_model,
)


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """The shipped artefact and its card, copied where a test may spoil them."""
    src = default_model_path()
    dst = tmp_path / src.name
    shutil.copy(src, dst)
    shutil.copy(src.with_suffix(".json"), dst.with_suffix(".json"))
    return dst


def _edit_card(path: Path, **changes: object) -> None:
    card_path = path.with_suffix(".json")
    card = json.loads(card_path.read_text())
    card.update(changes)
    card_path.write_text(json.dumps(card))


def test_shipped_artefact_loads_and_predicts(copy: Path) -> None:
    model = load_fall_model(copy)
    assert (
        model.card["libraries"]["scikit-learn"].split(".")[:2]
        == library_versions()["scikit-learn"].split(".")[:2]
    )
    assert 0.5 <= model.threshold < 1
    p = model.classifier.predict_proba(np.zeros((1, len(FEATURE_NAMES))))
    assert p.shape == (1, 2)


def test_a_changed_artefact_is_refused(copy: Path) -> None:
    raw = bytearray(copy.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    copy.write_bytes(bytes(raw))
    with pytest.raises(ModelMismatchError, match="SHA-256"):
        load_fall_model(copy)


def test_an_artefact_without_its_card_is_refused(copy: Path) -> None:
    copy.with_suffix(".json").unlink()
    with pytest.raises(ModelMismatchError, match="beside its card"):
        load_fall_model(copy)


def test_another_scikit_learn_release_is_refused(copy: Path) -> None:
    card = json.loads(copy.with_suffix(".json").read_text())
    _edit_card(copy, libraries={**card["libraries"], "scikit-learn": "0.24.2"})
    with pytest.raises(
        ModelMismatchError, match=r"scikit-learn 0\.24\.2.*evaluation\.fall_training"
    ):
        load_fall_model(copy)


def test_other_features_are_refused(copy: Path) -> None:
    _edit_card(copy, features=[*FEATURE_NAMES, "ff_run_s"])
    with pytest.raises(ModelMismatchError, match="features"):
        load_fall_model(copy)


def test_the_old_pickle_is_refused(tmp_path: Path) -> None:
    # A joblib pickle runs code when loaded: it never loads, whatever its card says.
    fake = tmp_path / "fall_v1.skops"
    fake.write_bytes(b"\x80\x04\x95" + b"\x00" * 64)
    from alerting.fall_model import sha256_file

    card = json.loads(default_model_path().with_suffix(".json").read_text())
    card["artefact_sha256"] = sha256_file(fake)
    fake.with_suffix(".json").write_text(json.dumps(card))
    with pytest.raises(ModelMismatchError, match="refused by skops"):
        load_fall_model(fake)


def test_numpy_trees_predict_what_scikit_learn_predicts() -> None:
    import skops.io
    from threadpoolctl import threadpool_limits

    from alerting.fall_model import TRUSTED_TYPES

    model = load_fall_model()
    estimator = skops.io.load(default_model_path(), trusted=list(TRUSTED_TYPES))["model"]
    rng = np.random.default_rng(5)
    # Feature-like rows: g-scale levels, spreads, shares and angles, some missing.
    scale = np.array([6, 5, 2, 1.5, 60, 1, 1, 1, 1, 180, 1], dtype=np.float64)
    x = rng.random((3000, len(FEATURE_NAMES))) * scale
    x[::11, 4] = np.nan
    with threadpool_limits(1):
        expected = estimator.predict_proba(x)
    np.testing.assert_allclose(model.classifier.predict_proba(x), expected, rtol=0, atol=1e-12)
    one = model.classifier.predict_proba(x[:1])
    assert one.shape == (1, 2)
    # One candidate at a time, as the detector asks, with and without a missing feature.
    for i in range(24):
        np.testing.assert_allclose(
            model.classifier.predict_proba(x[i : i + 1]), expected[i : i + 1], rtol=0, atol=1e-12
        )
