"""Fit the simulator's cane physics to real recordings, and show simulated vs real features.

`python -m evaluation.calibration fit` measures the physical parameters of every real fall and
of the everyday movements the simulator imitates (SisFall, waist, resampled to the cane's
50 Hz) and writes their quantiles to `firmware_sim/cane_calibration.json`: summary statistics,
never samples. `python -m evaluation.calibration report` writes `docs/calibration.md`: the
fitted parameters and the fall model's features (alerting.fall_features), per-feature
quantiles of simulated and real episodes side by side, with the two-sample
Kolmogorov-Smirnov distance.

Parameters, around the episode's largest 0.1 s-averaged peak (Bourke et al. 2007; the
SisFall paper's signal description): time below 0.6 g in the second before it (free fall),
the lowest averaged level in that second (dip), the largest raw sample within 0.2 s (impact),
the spread 0.5-2 s after it (settling), and the median and spread of the magnitude 2-6 s
after it (the rest level, which a sensor's offset moves away from 1 g: 0.82-0.86 g or
1.10-1.16 g on real parts).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from scipy.stats import ks_2samp

from alerting.fall_features import FEATURE_NAMES, candidate_features, magnitude, smooth
from evaluation.sisfall import SisFall, resample
from firmware_sim import cane

RATE_HZ = cane.DEFAULT_RATE_HZ
ROOT = Path(__file__).resolve().parents[1]
CALIBRATION_PATH = ROOT / "firmware_sim" / "cane_calibration.json"
REPORT_PATH = ROOT / "docs" / "calibration.md"
PARAMS = ("free_fall_s", "dip_g", "peak_g", "settle_std_g", "rest_level_g", "rest_std_g")
# Real activity codes each simulated kind stands for (SisFall's protocol, Sucerquia 2017).
GROUPS: dict[str, tuple[str, ...]] = {
    "fall": tuple(f"F{i:02d}" for i in range(1, 16)),
    "sit_hard": ("D08", "D10", "D11"),  # sit quickly; collapse into a chair
    "stumble": ("D18",),
}
SIM_KINDS: dict[str, tuple[str, ...]] = {
    "fall": ("fall",),
    "sit_hard": ("sit_hard",),
    "stumble": ("stumble",),
}
QUANTILES = np.linspace(0.0, 1.0, 21)
REPORT_Q = (5, 25, 50, 75, 95)
SIM_SEED = 424_242  # a stream of its own: never a training or scoring seed
SIM_PER_KIND = 300
# What the recordings cannot calibrate, appended to the report as written (see its section).
NOTES_PATH = Path(__file__).with_name("calibration_notes.md")


def physical(samples: NDArray[np.float64], rate_hz: float) -> NDArray[np.float64]:
    """PARAMS of the largest averaged peak of an episode (see the module docstring)."""
    mag = magnitude(samples)
    sm = smooth(mag, rate_hz)
    edge = round(1.0 * rate_hz)
    inner = sm[edge:-edge] if sm.size > 2 * edge + 1 else sm
    peak = int(np.argmax(inner)) + (edge if inner is not sm else 0)

    def sl(a_s: float, b_s: float) -> slice:
        return slice(max(0, peak + round(a_s * rate_hz)), max(0, peak + round(b_s * rate_hz)))

    before = mag[sl(-1.0, 0.0)]
    settle = mag[sl(0.5, 2.0)]
    rest = mag[sl(2.0, 6.0)]
    return np.array(
        [
            float(np.sum(before < 0.6)) / rate_hz,
            float(sm[sl(-1.0, 0.0)].min()) if before.size else float(sm[peak]),
            float(mag[sl(-0.2, 0.21)].max()),
            float(settle.std()) if settle.size > 1 else float("nan"),
            float(np.median(rest)) if rest.size else float("nan"),
            float(rest.std()) if rest.size > 1 else float("nan"),
        ]
    )


def main_features(samples: NDArray[np.float64], rate_hz: float) -> NDArray[np.float64] | None:
    """The fall model's features of the episode's largest candidate impact (None: no candidate)."""
    _, feats = candidate_features(samples, rate_hz)
    return feats[int(np.argmax(feats[:, 0]))] if len(feats) else None


def real_episodes(data: SisFall, codes: Iterable[str]) -> list[NDArray[np.float64]]:
    """Every recording of these codes, resampled to the cane's rate."""
    wanted = set(codes)
    return [
        resample(data.samples_g(r.number), RATE_HZ) for r in data.recordings if r.code in wanted
    ]


def sim_episodes(kinds: Sequence[str], n: int, seed: int = SIM_SEED) -> list[NDArray[np.float64]]:
    """n simulated episodes spread over `kinds`, from a seed of their own."""
    rng = np.random.default_rng(seed)
    return [cane.episode(kinds[i % len(kinds)], rng, RATE_HZ).samples for i in range(n)]


def fit(data: SisFall) -> dict[str, object]:
    """Quantiles of each group's physical parameters on the real recordings."""
    groups: dict[str, object] = {}
    for group, codes in GROUPS.items():
        rows = np.array([physical(s, RATE_HZ) for s in real_episodes(data, codes)])
        groups[group] = {
            name: [round(float(v), 4) for v in np.nanquantile(rows[:, k], QUANTILES)]
            for k, name in enumerate(PARAMS)
        } | {"recordings": len(rows), "codes": list(codes)}
    return {
        "source": "SisFall (Sucerquia et al., Sensors 2017), waist, resampled to 50 Hz;"
        " built by `python -m evaluation.calibration fit`",
        "quantile_levels": [round(float(q), 2) for q in QUANTILES],
        "groups": groups,
    }


def _quantile_rows(name: str, real: NDArray[np.float64], sim: NDArray[np.float64]) -> str:
    def q(x: NDArray[np.float64]) -> str:
        x = x[np.isfinite(x)]
        return " / ".join(f"{v:.3g}" for v in np.percentile(x, REPORT_Q)) if x.size else "-"

    ok_r, ok_s = real[np.isfinite(real)], sim[np.isfinite(sim)]
    ks = ks_2samp(ok_r, ok_s).statistic if ok_r.size and ok_s.size else float("nan")
    return f"| {name} | {q(real)} | {q(sim)} | {ks:.2f} |"


def _table(
    title: str, names: Sequence[str], real: NDArray[np.float64], sim: NDArray[np.float64]
) -> list[str]:
    lines = [
        f"#### {title}",
        "",
        "| | real p5 / p25 / p50 / p75 / p95 | simulated p5 / p25 / p50 / p75 / p95 | KS |",
        "|---|---|---|---|",
    ]
    lines += [_quantile_rows(n, real[:, k], sim[:, k]) for k, n in enumerate(names)]
    return [*lines, ""]


def _feature_matrix(episodes: Sequence[NDArray[np.float64]]) -> tuple[NDArray[np.float64], int]:
    rows = [f for f in (main_features(s, RATE_HZ) for s in episodes) if f is not None]
    out = np.array(rows) if rows else np.full((1, len(FEATURE_NAMES)), np.nan)
    return out, len(rows)


def report(data: SisFall) -> str:
    """The Markdown report: parameters and features, simulated vs real, per group."""
    lines = [
        "# Simulator calibration: simulated vs real cane physics",
        "",
        "Generated by `python -m evaluation.calibration report` (do not edit by hand). Real:",
        "SisFall waist recordings (Sucerquia et al., Sensors 2017, doi:10.3390/s17010198),",
        f"resampled to the cane's {RATE_HZ} Hz; simulated: {SIM_PER_KIND} episodes per group from",
        f"`firmware_sim.cane` (seed {SIM_SEED}), fitted by `python -m evaluation.calibration fit`.",
        "Quantiles p5 / p25 / p50 / p75 / p95; KS is the two-sample Kolmogorov-Smirnov distance",
        "(0: same distribution, 1: disjoint). Features are those of the fall model",
        "(`alerting/fall_features.py`) at each episode's largest candidate impact.",
        "",
    ]
    for group, codes in GROUPS.items():
        real_eps = real_episodes(data, codes)
        sim_eps = sim_episodes(SIM_KINDS[group], SIM_PER_KIND)
        real_p = np.array([physical(s, RATE_HZ) for s in real_eps])
        sim_p = np.array([physical(s, RATE_HZ) for s in sim_eps])
        real_f, n_real = _feature_matrix(real_eps)
        sim_f, n_sim = _feature_matrix(sim_eps)
        lines += [
            f"## {group}: real {', '.join(codes)} vs simulated {', '.join(SIM_KINDS[group])}",
            "",
            f"{len(real_eps)} real recordings ({n_real} with a candidate impact),"
            f" {len(sim_eps)} simulated episodes ({n_sim} with one).",
            "",
            *_table("Physical parameters", PARAMS, real_p, sim_p),
            *_table("Fall-model features", FEATURE_NAMES, real_f, sim_f),
        ]
    lines.append(NOTES_PATH.read_text(encoding="utf-8").rstrip("\n"))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """`fit` or `report` (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m evaluation.calibration")
    parser.add_argument("command", choices=["fit", "report"])
    parser.add_argument("--data", type=Path, default=None, help="SisFall path")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    data = SisFall(args.data)
    if args.command == "fit":
        out = args.out or CALIBRATION_PATH
        out.write_text(json.dumps(fit(data), indent=1) + "\n", encoding="utf-8")
    else:
        out = args.out or REPORT_PATH
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(report(data) + "\n", encoding="utf-8")
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
