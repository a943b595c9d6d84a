"""The SisFall recordings, read from their path (never copied into the repository)."""

from __future__ import annotations

import pytest

from evaluation.sisfall import SisFall, default_path


@pytest.fixture(scope="session")
def sisfall() -> SisFall:
    """The recordings; skipped only where the data path is absent (a clone outside CI)."""
    path = default_path()
    if not (path / "recordings.npz").is_file():
        pytest.skip(f"SisFall recordings absent at {path} (set SISFALL_PATH)")
    return SisFall(path)
