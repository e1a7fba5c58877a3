"""pot against dspot (``vigil.thresholds.adaptive``) on the labeled series of shared/datasets:
the ``robust_zscore`` detector fitted on each series' ``train_rows`` (the BASELINES.md
protocol), both thresholds fitted on its scores of those rows, and the raw flags (score above
the threshold, no alarm rules) of the evaluated rows judged by ``vigil.evaluation.flag_metrics``,
averaged per collection (metrics that need labels over the series that have them).

    PYTHONPATH=src python benchmarks/compare_dspot.py [--depths 10 50 200] [--method NAME]
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from vigil.detectors import make_detector
from vigil.evaluation import flag_metrics
from vigil.evaluation.bench import discover
from vigil.evaluation.point import best_f1
from vigil.thresholds import DSPOT, POT

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"
SHOWN = ("flagged", "F1 / oracle", "events caught", "false alarms / 1k rows", "event-F1")


def markdown(table: pd.DataFrame) -> str:
    """A pipe table (pandas' ``to_markdown`` needs tabulate, not a vigil dependency)."""
    table = table.reset_index()
    lines = ["| " + " | ".join(map(str, table.columns)) + " |",
             "|" + "---|" * len(table.columns)]
    for row in table.itertuples(index=False):
        lines.append("| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v)
                                       for v in row) + " |")
    return "\n".join(lines)


def report(table: pd.DataFrame) -> str:
    """Mean metrics per collection and threshold, then the mean over collections."""
    groups = table.groupby(["collection", "threshold"], sort=False)
    summary = groups[list(SHOWN)].mean()
    summary.insert(0, "series", groups.size())
    summary.insert(1, "fallbacks", groups["fallback"].sum())
    overall = table.groupby(["threshold", "collection"], sort=False)[list(SHOWN)].mean()
    return (markdown(summary) + "\n\nMean over collections:\n\n"
            + markdown(overall.groupby("threshold", sort=False).mean()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depths", type=int, nargs="+", default=[100])
    parser.add_argument("--method", default="robust_zscore")
    parser.add_argument("--datasets", type=Path, default=DATASETS)
    args = parser.parse_args()
    thresholds = {"pot": lambda: POT()}
    for depth in args.depths:
        thresholds[f"dspot (depth {depth})"] = lambda depth=depth: DSPOT(depth=depth)
    rows, seconds = [], dict.fromkeys(thresholds, 0.0)
    for series in discover(args.datasets):
        frame = pd.read_csv(series.path)
        label = frame["label"].to_numpy()
        X = frame.drop(columns=["timestamp", "label"], errors="ignore").to_numpy(np.float64)
        T = series.train_rows
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            detector = make_detector(args.method).fit(X[:T])
            score, train = detector.score(X), detector.score(X[:T])
        evaluated, truth = score[T:], label[T:]
        oracle = best_f1(evaluated, truth) if truth.any() else None
        for name, make in thresholds.items():
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                threshold = make().fit(train, fallback=detector.natural_threshold)
            flags = threshold.decide(evaluated)
            seconds[name] += time.perf_counter() - start
            rows.append({"collection": series.collection, "file": series.path, "threshold": name,
                         "fallback": threshold.fallback_used_,
                         **flag_metrics(flags, truth, oracle_f1=oracle)})
    table = pd.DataFrame(rows)
    print(report(table))
    # The same where every threshold fitted from data: the methods, not their fallbacks.
    fitted = ~table.groupby("file")["fallback"].transform("any")
    print("\nOnly the series where no threshold fell back:\n")
    print(report(table[fitted]))
    print("\nThreshold fit + decide time (s):",
          {name: round(value, 2) for name, value in seconds.items()})


if __name__ == "__main__":
    main()
