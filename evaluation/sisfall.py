"""Reading the SisFall recordings from a path given at run time (never copied into the project).

Sucerquia A., López J.D., Vargas-Bonilla J.F. (2017). SisFall: A Fall and Movement Dataset.
Sensors 17(1):198, doi:10.3390/s17010198. Waist-worn ADXL345 at ±16 g, 13 bit, 200 Hz:
one count is 32/8192 g = 1/256 g (the data's README).
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from scipy.signal import resample_poly

RATE_HZ = 200
COUNTS_PER_G = 256.0
ENV_VAR = "SISFALL_PATH"


def default_path() -> Path:
    """`$SISFALL_PATH`, else `../shared/data/sisfall` beside the checkout."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1].parent / "shared" / "data" / "sisfall"


@dataclass(frozen=True, slots=True)
class Recording:
    """One row of index.csv: which subject did what, and where its samples lie."""

    number: int
    id: str
    subject: str
    group: str
    code: str
    is_fall: bool
    activity: str
    n_samples: int

    @property
    def duration_s(self) -> float:
        """Length at the recorded rate, s."""
        return self.n_samples / RATE_HZ


class SisFall:
    """The recordings at `path` (memory-mapped lazily; nothing is copied).

    Raises:
        FileNotFoundError: the path holds no recordings.npz and index.csv.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else default_path()
        if not (self.path / "recordings.npz").is_file() or not (self.path / "index.csv").is_file():
            raise FileNotFoundError(f"no SisFall recordings at {self.path}")
        with open(self.path / "index.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        self.recordings = [
            Recording(
                i,
                r["id"],
                r["subject"],
                r["group"],
                r["code"],
                r["kind"] == "fall",
                r["activity"],
                int(r["n_samples"]),
            )
            for i, r in enumerate(rows)
        ]

    @cached_property
    def _arrays(self) -> tuple[NDArray[np.int16], NDArray[np.int64]]:
        with np.load(self.path / "recordings.npz") as rec:
            return rec["accel"], rec["offsets"]

    def samples_g(self, number: int) -> NDArray[np.float64]:
        """Recording `number` as (n, 3) accelerations in g at 200 Hz."""
        accel, offsets = self._arrays
        out: NDArray[np.float64] = accel[offsets[number] : offsets[number + 1]] / COUNTS_PER_G
        return out

    def subjects(self) -> list[str]:
        """Every subject id, sorted."""
        return sorted({r.subject for r in self.recordings})


def resample(
    samples: NDArray[np.float64], rate_hz: int, from_hz: int = RATE_HZ
) -> NDArray[np.float64]:
    """Resample (n, 3) samples as a sensor set to `rate_hz` would have sampled them.

    MEMS accelerometers low-pass at half their output rate before decimating (ADXL345
    datasheet, Table 7), so this uses a polyphase anti-aliasing filter, not sample picking.
    """
    if rate_hz == from_hz:
        return samples
    ratio = Fraction(rate_hz, from_hz)
    out: NDArray[np.float64] = resample_poly(
        samples, ratio.numerator, ratio.denominator, axis=0, padtype="line"
    )
    return out
