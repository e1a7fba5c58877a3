"""The evidence behind ``auto``'s members: every candidate member scores every labeled series of
``shared/datasets`` once (BASELINES.md protocol: fit on train_rows, evaluate the rest), then
each combination of members is scored as ``auto`` combines them (mean of robust z-scored member
scores, each scaled by its own training scores), and the mean VUS-PR per collection is printed.

    PYTHONPATH=src python benchmarks/choose_auto.py [--datasets ../shared/datasets]
"""

from __future__ import annotations

import argparse
import itertools
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from vigil.detectors import make_detector
from vigil.detectors.statistical import MAD_TO_SIGMA
from vigil.evaluation import dominant_period, vus_pr
from vigil.evaluation.bench import discover

CANDIDATES = ("forecast", "subsequence_kmeans", "subsequence_pca", "robust_zscore", "mahalanobis")


def member_scores(series) -> dict[str, np.ndarray]:
    """Each candidate's scores of the series, robust z-scored by its own training scores."""
    frame = pd.read_csv(series.path)
    data = frame.drop(columns=["timestamp", "label"]).to_numpy(np.float64)
    out = {}
    for name in CANDIDATES:
        score = make_detector(name).fit(data[: series.train_rows]).score(data)
        train = score[: series.train_rows]
        center = np.median(train)
        scale = max(MAD_TO_SIGMA * np.median(np.abs(train - center)), 1e-9 * max(1, abs(center)))
        out[name] = (score - center) / scale
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=Path, default=Path("../shared/datasets"))
    parser.add_argument("--max-members", type=int, default=3)
    args = parser.parse_args()
    rows = []
    for series in discover(args.datasets):
        if series.anomaly_rows == 0:
            continue
        frame = pd.read_csv(series.path)
        label = frame["label"].to_numpy()[series.train_rows:]
        window = dominant_period(frame.drop(columns=["timestamp", "label"]).to_numpy()[:, 0])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scores = member_scores(series)
        for k in range(1, args.max_members + 1):
            for combo in itertools.combinations(CANDIDATES, k):
                mean = np.mean([scores[m] for m in combo], axis=0)[series.train_rows:]
                rows.append({"collection": series.collection, "combo": "+".join(combo),
                             "VUS-PR": vus_pr(mean, label, window)})
    table = pd.DataFrame(rows).pivot_table(index="combo", columns="collection", values="VUS-PR")
    table["mean"] = table.mean(axis=1)
    print(table.sort_values("mean", ascending=False).round(3).to_string())


if __name__ == "__main__":
    main()
