"""Detection quality of ``subsequence_pca`` on the labelled collections in /work/shared/datasets,
next to TSB-AD's Sub_PCA (the public reference, /work/shared/datasets/BASELINES.md).

Protocol (BASELINES.md): fit on the first ``train_rows`` rows of each series (manifest.json),
score all rows, evaluate rows [train_rows, n) of the series that hold anomalies. Measure:
AUC-PR (``sklearn.metrics.average_precision_score``), mean per collection (nab: 29 series,
skab: 16). Also the median fit+score seconds per series.

    .venv/bin/python benchmarks/quality_subsequence_pca.py
    .venv/bin/python benchmarks/quality_subsequence_pca.py --set n_components=3 --per-series
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

DATASETS = Path("/work/shared/datasets")
COLLECTIONS = ("nab", "skab")
#: AUC-PR from BASELINES.md (TSB-AD 1.5; its unsupervised methods are fitted on the whole
#: series, vigil on the training rows only). KMeansAD was not run on nab there; on skab TSB-AD
#: runs no Sub_PCA, only PCA of single rows.
BASELINES = {
    "nab": {"Sub_PCA": 0.298, "POLY": 0.299, "Sub_IForest": 0.325, "Sub_KNN": 0.269,
            "robust_z": 0.179, "random": 0.112},
    "skab": {"PCA": 0.610, "KMeansAD": 0.586, "MCD": 0.774, "robust_z": 0.772,
             "random": 0.537},
}


def load_series(collection: str) -> list[tuple[str, np.ndarray, np.ndarray, int]]:
    """(file, data float64[n, d], label int[n], train_rows) of each series with anomalies."""
    import pandas as pd

    manifest = json.loads((DATASETS / collection / "manifest.json").read_text())
    out = []
    for entry in manifest["series"]:
        if entry["anomaly_rows"] == 0:
            continue
        frame = pd.read_csv(DATASETS / collection / entry["file"])
        channels = [c for c in frame.columns if c not in ("timestamp", "label")]
        out.append((entry["file"], frame[channels].to_numpy(np.float64),
                    frame["label"].to_numpy(int), int(entry["train_rows"])))
    return out


def evaluate(make: Any, collections: tuple[str, ...] = COLLECTIONS,
             per_series: bool = False) -> dict[str, dict[str, float]]:
    """Mean AUC-PR and median seconds per collection of detectors built by ``make()``."""
    from sklearn.metrics import average_precision_score

    results = {}
    for collection in collections:
        scores, seconds = [], []
        for file, data, label, train_rows in load_series(collection):
            start = time.perf_counter()
            det = make().fit(data[:train_rows])
            score = det.score(data)
            seconds.append(time.perf_counter() - start)
            scores.append(average_precision_score(label[train_rows:], score[train_rows:]))
            if per_series:
                print(f"  {collection:5s} {file:60s} window={det.window_:4d} "
                      f"AUC-PR={scores[-1]:.3f}", file=sys.stderr)
        results[collection] = {"auc_pr": float(np.mean(scores)),
                               "median_s": float(np.median(seconds)), "series": len(scores)}
    return results


def parse_sets(pairs: list[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for pair in pairs:
        name, _, value = pair.partition("=")
        try:
            params[name] = int(value)
        except ValueError:
            params[name] = value
    return params


def main(cls: type, references: dict[str, str], argv: list[str] | None = None) -> int:
    """Evaluate ``cls`` and print a Markdown table next to ``references[collection]``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE",
                        help="detector parameters, e.g. window=64")
    parser.add_argument("--per-series", action="store_true", help="print every series' AUC-PR")
    args = parser.parse_args(argv)
    params = parse_sets(args.set)
    results = evaluate(lambda: cls(**params), per_series=args.per_series)
    print(f"{cls.name} {params or '(defaults)'}: mean AUC-PR on rows [train_rows, n)")
    print(f"| collection | {cls.name} | reference | robust_z | random | median s/series |")
    print("|---|---|---|---|---|---|")
    for collection, r in results.items():
        base, ref = BASELINES[collection], references[collection]
        print(f"| {collection} ({r['series']}) | {r['auc_pr']:.3f} | {ref} {base[ref]:.3f} | "
              f"{base['robust_z']:.3f} | {base['random']:.3f} | {r['median_s']:.3f} |")
    return 0


if __name__ == "__main__":
    from vigil.detectors.subsequence_pca import SubsequencePCA

    sys.exit(main(SubsequencePCA, {"nab": "Sub_PCA", "skab": "PCA"}))
