"""What the cane's own `fall_detected` hint may lower the fall model's bar to, measured on SisFall.

`python -m evaluation.hint_bar` takes the subject-wise out-of-fold probabilities of every real
candidate impact (the cross-validation machinery of `evaluation.fall_training`, so no
recording is scored by a model that saw its subject) and assumes the worst case for the hint:
the firmware sets it on every impact window. Every candidate is then judged at the hinted bar
instead of the model's operating point, and the table says, per bar, how many everyday
recordings would raise a fall alert, the false alarms per hour of everyday activity, and how
many falls are found. The bar kept in `alerting.detectors.fall.HINT_THRESHOLD` is the lowest
one whose worst case, pooled over the rates, stays within the fall model's target of at most
1 false alarm per 10 h of everyday activity (`evaluation.fall_training.FA_PER_10H`). It is
chosen on the same out-of-fold figures it is reported with (no separate split for it).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from evaluation.fall_data import RATES_HZ, extract
from evaluation.fall_report import Figures, figures, poisson_rate, summarise, wilson
from evaluation.fall_training import FOLDS, out_of_fold
from evaluation.sisfall import SisFall

BARS = (0.3, 0.5, 0.7, 0.9, 0.99, 0.995, 0.997, 0.998, 0.999)
COMMAND = "python -m evaluation.hint_bar"


@dataclass(frozen=True, slots=True)
class BarFigures:
    """Worst-case figures of one bar at one rate (every impact hinted)."""

    bar: float
    rate_hz: int
    figures: Figures


def study(
    data: SisFall,
    numbers: Sequence[int] | None = None,
    rates_hz: Sequence[int] = RATES_HZ,
    bars: Sequence[float] = BARS,
    folds: int = FOLDS,
) -> list[BarFigures]:
    """Figures per (bar, rate) with every candidate judged at the bar (subject-wise folds)."""
    cands = extract(data, numbers, rates_hz, augment=True)
    subjects = sorted({data.recordings[int(n)].subject for n in cands.recording})
    prob, _ = out_of_fold(data, cands, subjects, folds)
    real = ~cands.augmented & ~np.isnan(prob)
    cands, prob = cands.select(real), prob[real]
    # Every recording counts: one with no candidate impact raised nothing.
    chosen = [r.number for r in data.recordings] if numbers is None else list(numbers)
    return [
        BarFigures(bar, rate, summarise(data, chosen, figures(data, cands, prob, bar, rate)))
        for bar in bars
        for rate in rates_hz
    ]


def pooled(parts: Iterable[Figures]) -> Figures:
    """The sum of several groups' figures."""
    items = list(parts)
    return Figures(
        sum(f.falls for f in items),
        sum(f.detected for f in items),
        sum(f.adls for f in items),
        sum(f.adls_alerted for f in items),
        sum(f.false_alarms for f in items),
        sum(f.adl_hours for f in items),
    )


def format_study(rows: Sequence[BarFigures]) -> str:
    """A plain-text table: per bar and rate, everyday recordings alerted, false alarms, falls;
    with several rates, a row `all` pools them (recordings counted once per rate)."""
    head = (
        f"{'bar':>6}{'Hz':>5}{'ADL alerted':>14}{'false':>7}{'per h':>7}{'95% CI':>16}"
        f"{'falls found':>14}{'sens':>7}{'95% CI':>16}"
    )
    lines = [head, "-" * len(head)]
    rates = sorted({r.rate_hz for r in rows})
    shown: list[tuple[float, str, Figures]] = []
    for bar in sorted({r.bar for r in rows}):
        mine = [r for r in rows if r.bar == bar]
        shown += [(bar, str(r.rate_hz), r.figures) for r in mine]
        if len(rates) > 1:
            shown.append((bar, "all", pooled(r.figures for r in mine)))
    for bar, rate, f in shown:
        fa_lo, fa_hi = poisson_rate(f.false_alarms, f.adl_hours)
        s_lo, s_hi = wilson(f.detected, f.falls)
        lines.append(
            f"{bar:>6g}{rate:>5}{f'{f.adls_alerted}/{f.adls}':>14}{f.false_alarms:>7}"
            f"{f.false_alarms_per_h:>7.2f}{f'[{fa_lo:.2f}, {fa_hi:.2f}]':>16}"
            f"{f'{f.detected}/{f.falls}':>14}{f.sensitivity:>7.3f}"
            f"{f'[{s_lo:.3f}, {s_hi:.3f}]':>16}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="SisFall directory")
    parser.add_argument("--folds", type=int, default=FOLDS)
    parser.add_argument(
        "--rates", type=lambda t: [int(x) for x in t.split(",")], default=list(RATES_HZ)
    )
    args = parser.parse_args(argv)
    data = SisFall(args.data)
    with threadpool_limits(1):
        rows = study(data, rates_hz=args.rates, folds=args.folds)
    sys.stdout.write(format_study(rows) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
