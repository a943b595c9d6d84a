"""The artefact writer gives the same bytes for the same model."""

from __future__ import annotations

import hashlib

import pytest
import skops.io

from alerting.fall_model import TRUSTED_TYPES, default_model_path
from evaluation.fall_training import _canonical_zip


@pytest.mark.slow
def test_the_same_model_is_written_as_the_same_bytes() -> None:
    # Two loads put the same model at other memory addresses, which skops uses as names.
    first = skops.io.load(default_model_path(), trusted=list(TRUSTED_TYPES))
    second = skops.io.load(default_model_path(), trusted=list(TRUSTED_TYPES))
    a = _canonical_zip(skops.io.dumps(first))
    b = _canonical_zip(skops.io.dumps(second))
    assert skops.io.dumps(first) != skops.io.dumps(second)
    assert hashlib.sha256(a).digest() == hashlib.sha256(b).digest()
    assert a == default_model_path().read_bytes()
