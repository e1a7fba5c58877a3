"""The evidence behind ``auto``'s members: every candidate member scores every labeled series of
``shared/datasets`` and the bundled plant data (vigil's sample, a series beyond those files) once (BASELINES.md protocol: fit on train_rows, evaluate the rest), then
each combination of members is scored as ``auto`` combines them (the mean or the max of member
scores robust z-scored by their own training scores), and the mean VUS-PR per collection is
printed (results: ``benchmarks/results/choose_auto.txt``).

Then, leave one collection out: for each collection, the combination with the best mean over
the *other* collections is chosen and scored on the one left out. That out-of-sample figure,
not the in-sample table, is what a rule chosen this way can promise on a collection it never
saw.

    PYTHONPATH=src python benchmarks/choose_auto.py > benchmarks/results/choose_auto.txt
    PYTHONPATH=src python benchmarks/choose_auto.py --candidates forecast,subsequence_pca,lof,vae
"""

from __future__ import annotations

import argparse
import itertools
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from vigil.detectors import make_detector
from vigil.detectors.statistical import MAD_TO_SIGMA, MEAN_AD_TO_SIGMA
from vigil.evaluation import dominant_period, vus_pr
from vigil import sample_data
from vigil.evaluation.bench import Series, discover

CANDIDATES = ("forecast", "subsequence_kmeans", "subsequence_pca", "robust_zscore", "mahalanobis")


def member_scores(series, candidates=CANDIDATES) -> dict[str, np.ndarray]:
    """Each candidate's scores of the series, robust z-scored by its own training scores."""
    frame = pd.read_csv(series.path)
    data = frame.drop(columns=["timestamp", "label"]).to_numpy(np.float64)
    out = {}
    for name in candidates:
        score = make_detector(name).fit(data[: series.train_rows]).score(data)
        train = score[: series.train_rows]
        center = np.median(train)
        deviation = np.abs(train - center)
        scale = MAD_TO_SIGMA * np.median(deviation)
        if not scale > 0:  # as auto: the mean absolute deviation where the MAD is 0
            scale = MEAN_AD_TO_SIGMA * deviation.mean()
        scale = max(scale, 1e-9 * max(1, abs(center)))
        out[name] = (score - center) / scale
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=Path, default=Path("../shared/datasets"))
    parser.add_argument("--max-members", type=int, default=3)
    parser.add_argument("--candidates", default=",".join(CANDIDATES),
                        help="comma-separated methods that may be members")
    args = parser.parse_args()
    candidates = tuple(args.candidates.split(","))
    rows = []
    sample = Path("/tmp/vigil_sample_series.csv")
    sample_data.load().drop(columns=["anomaly_kind"]).to_csv(sample, index=False)
    extra = [Series("vigil-sample", str(sample), 0, sample_data.TRAIN_ROWS, 1)]
    for series in discover(args.datasets) + extra:
        if series.anomaly_rows == 0:
            continue
        frame = pd.read_csv(series.path)
        label = frame["label"].to_numpy()[series.train_rows:]
        window = dominant_period(frame.drop(columns=["timestamp", "label"]).to_numpy()[:, 0])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scores = member_scores(series, candidates)
        for k in range(1, args.max_members + 1):
            for combo in itertools.combinations(candidates, k):
                parts = [scores[m][series.train_rows:] for m in combo]
                for how, combined in (("mean", np.mean(parts, axis=0)),
                                      ("max", np.max(parts, axis=0))):
                    if k > 1 or how == "mean":
                        rows.append({"collection": series.collection,
                                     "combo": f"{how}({', '.join(combo)})",
                                     "VUS-PR": vus_pr(combined, label, window)})
    table = pd.DataFrame(rows).pivot_table(index="combo", columns="collection", values="VUS-PR")
    collections = list(table.columns)
    table["mean"] = table.mean(axis=1)
    print(table.sort_values("mean", ascending=False).round(3).to_string())
    print()
    print(leave_one_collection_out(table[collections]).round(3).to_string())


def leave_one_collection_out(table: pd.DataFrame) -> pd.DataFrame:
    """For each collection: the combination chosen on the others' mean VUS-PR, its score on
    the one left out, and the best any combination reached there in hindsight."""
    rows = []
    for held in table.columns:
        others = table.drop(columns=held).mean(axis=1)
        chosen = others.idxmax()
        rows.append({"left out": held, "chosen on the others": chosen,
                     "VUS-PR there (out of sample)": table.loc[chosen, held],
                     "best there in hindsight": table[held].max()})
    return pd.DataFrame(rows).set_index("left out")


if __name__ == "__main__":
    main()
