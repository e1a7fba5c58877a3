"""Detection quality of ``matrix_profile`` on the labelled collections in /work/shared/datasets,
under the protocol of their BASELINES.md: fit on the first ``train_rows`` rows of each series
(the manifest's), score all rows, evaluate rows [T, n) of the series with anomalies.

Prints, per collection, the mean AUC-PR (``sklearn.metrics.average_precision_score``) and VUS-PR
(``vigil.evaluation.vus_pr``, window = the series' dominant period, as TSB-AD) next to the public
MatrixProfile baseline, and the fit+score time per series. The numba kernel's compile (or
on-disk cache load) is timed apart, before the first series.

    .venv/bin/python benchmarks/quality_matrix_profile.py
    .venv/bin/python benchmarks/quality_matrix_profile.py --window 64 --collections nab -v
    .venv/bin/python benchmarks/quality_matrix_profile.py --auto-max-fraction 2  # auto <= T/2
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score

from vigil.detectors import matrix_profile
from vigil.detectors.matrix_profile import (
    MatrixProfile,
    _numba_kernel,
    nearest_correlation,
)
from vigil.evaluation import dominant_period, vus_pr

DATASETS = Path("/work/shared/datasets")
#: BASELINES.md, TSB-AD 1.5 MatrixProfile (nab: 17 of 29 series, which ones is not listed) and
#: the best listed method per collection, for scale: (AUC-PR, VUS-PR).
BASELINE = {"nab": {"MatrixProfile (17/29)": (0.344, 0.404), "Sub_IForest": (0.325, 0.351)},
            "skab": {"MCD (best)": (0.774, 0.793), "KMeansAD": (0.586, 0.616)}}


def evaluate_collection(name: str, window: int | str, verbose: bool) -> dict[str, float]:
    manifest = json.loads((DATASETS / name / "manifest.json").read_text())
    rows = []
    for entry in manifest["series"]:
        if entry["anomaly_rows"] == 0:
            continue
        frame = pd.read_csv(DATASETS / name / entry["file"])
        data = frame[entry["channels"]].to_numpy(dtype=np.float64)
        label = frame["label"].to_numpy()
        first = entry["train_rows"]
        started = time.perf_counter()
        det = MatrixProfile(window=window).fit(data[:first])
        score = det.score(data)
        seconds = time.perf_counter() - started
        period = dominant_period(data[:, 0])
        rows.append({"file": entry["file"], "rows": len(data), "window": det.window_,
                     "auc_pr": average_precision_score(label[first:], score[first:]),
                     "vus_pr": vus_pr(score[first:], label[first:], period),
                     "seconds": seconds})
        if verbose:
            r = rows[-1]
            print(f"  {r['file']:<60} n={r['rows']:>6} w={r['window']:>4} "
                  f"AUC-PR={r['auc_pr']:.3f} VUS-PR={r['vus_pr']:.3f} {r['seconds']:.2f}s")
    table = pd.DataFrame(rows)
    shortest = table.nsmallest(17, "rows")
    return {"series": len(table), "auc_pr": table.auc_pr.mean(), "vus_pr": table.vus_pr.mean(),
            "auc_pr_17_shortest": shortest.auc_pr.mean(),
            "vus_pr_17_shortest": shortest.vus_pr.mean(),
            "median_s": table.seconds.median(), "max_s": table.seconds.max()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--window", default="auto", help='int or "auto" (default)')
    parser.add_argument("--collections", nargs="+", default=["nab", "skab"])
    parser.add_argument("--auto-max-fraction", type=int, default=None,
                        help="window='auto' takes at most 1/N of the training rows "
                        f"(default {matrix_profile.AUTO_MAX_FRACTION})")
    parser.add_argument("-v", "--verbose", action="store_true", help="one line per series")
    args = parser.parse_args()
    window = args.window if args.window == "auto" else int(args.window)
    if args.auto_max_fraction:
        matrix_profile.AUTO_MAX_FRACTION = args.auto_max_fraction

    started = time.perf_counter()
    _numba_kernel()
    nearest_correlation(np.arange(100.0) % 7, np.arange(50.0) % 5, 8)
    print(f"numba kernel ready (compile, or load from its on-disk cache): "
          f"{time.perf_counter() - started:.1f}s")
    for name in args.collections:
        if args.verbose:
            print(name)
        result = evaluate_collection(name, window, args.verbose)
        shortest = (f" (17 shortest: {result['auc_pr_17_shortest']:.3f} / "
                    f"{result['vus_pr_17_shortest']:.3f})" if result["series"] > 17 else "")
        print(f"{name}: matrix_profile(window={window}) on {result['series']} series: "
              f"AUC-PR {result['auc_pr']:.3f}, VUS-PR {result['vus_pr']:.3f}{shortest}; "
              f"fit+score median {result['median_s']:.2f}s, max {result['max_s']:.2f}s "
              "per series")
        for method, (auc, vus) in BASELINE[name].items():
            print(f"    baseline {method}: AUC-PR {auc:.3f}, VUS-PR {vus:.3f}")


if __name__ == "__main__":
    main()
