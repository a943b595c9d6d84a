"""How the anomaly model's forest size trades memory for detection (an engineering tool).

For each (trees, rows per tree) it fits `alerting.detectors.iforest.fit_forest` on an elder's
usual readings (heart rate tied to activity, the hour on the daily circle: the rows the
anomaly detector learns) of 200, 1,000 and 3,000 fixes, four seeds each, and scores the
elder's usual readings against two kinds of outliers for that elder (a racing heart at rest,
a slow one while walking; the same kinds as tests/alerting/test_anomaly_batch.py). Prints
the ROC area (mean and worst), the share of usual readings beyond the detector's margin
(false alarms) and the largest forest's arena bytes.

    python -m evaluation.forest_size
"""

from __future__ import annotations

import numpy as np

from alerting.detectors.anomaly import SCORE_MARGIN
from alerting.detectors.iforest import NODE_BYTES, fit_forest

SIZES = ((50, 256), (25, 256), (50, 128), (25, 128), (20, 128), (50, 64), (25, 64))


def _cloud(rng: np.random.Generator, n: int) -> np.ndarray:
    steps = rng.gamma(1.5, 1.0, n)
    hour = rng.integers(0, 24, n)
    hr = np.rint(62 + 6 * steps + rng.normal(0, 3, n))
    angle = 2 * np.pi * hour / 24
    return np.column_stack([hr, np.log1p(steps), np.sin(angle), np.cos(angle)])


def _outliers(rng: np.random.Generator, k: int) -> np.ndarray:
    rest = rng.gamma(1.5, 0.2, k)
    out = _cloud(rng, k)
    out[: k // 2, 0] = np.rint(100 + rng.normal(0, 4, k // 2))
    out[: k // 2, 1] = np.log1p(rest[: k // 2])
    out[k // 2 :, 0] = np.rint(55 + rng.normal(0, 3, k - k // 2))
    out[k // 2 :, 1] = np.log1p(3 + rest[k // 2 :])
    return out


def _auc(normal: np.ndarray, outliers: np.ndarray) -> float:
    below = (outliers[:, None] < normal[None, :]).mean()
    ties = (outliers[:, None] == normal[None, :]).mean()
    return float(below + ties / 2)


def main() -> None:
    rows: dict[tuple[int, int], tuple[list[float], list[float], list[int]]] = {
        size: ([], [], []) for size in SIZES
    }
    for n in (200, 1000, 3000):
        for seed in range(4):
            rng = np.random.default_rng(100 * n + seed)
            x, normal, outliers = _cloud(rng, n), _cloud(rng, 3000), _outliers(rng, 400)
            for trees, psi in SIZES:
                forest = fit_forest(x, trees=trees, contamination=0.005, seed=seed, max_samples=psi)
                usual, odd = forest.decision(normal), forest.decision(outliers)
                auc, false, nodes = rows[(trees, psi)]
                auc.append(_auc(usual, odd))
                false.append(float((usual < -SCORE_MARGIN).mean()))
                nodes.append(forest.feature.size)
    print(f"{'trees':>5} {'rows/tree':>9} {'ROC mean':>9} {'ROC worst':>9} {'false':>7} {'KiB':>6}")
    for (trees, psi), (auc, false, nodes) in rows.items():
        print(
            f"{trees:>5} {psi:>9} {np.mean(auc):>9.3f} {min(auc):>9.3f} {np.mean(false):>7.4f}"
            f" {max(nodes) * NODE_BYTES / 1024:>6.0f}"
        )


if __name__ == "__main__":
    main()
