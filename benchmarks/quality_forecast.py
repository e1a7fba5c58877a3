"""Detection quality of the ``forecast`` detector on the labelled collections in
``/work/shared/datasets`` (nab, skab), by the protocol of its BASELINES.md: fit on the first
``train_rows`` rows of each series, score all rows, evaluate rows ``[train_rows, n)``; series
without anomaly rows are skipped. Quality = AUC-PR (``sklearn.metrics.average_precision_score``)
and VUS-PR (``vigil.evaluation.vus.vus_pr``, sliding window = the whole series' dominant period
of channel 0, as BASELINES.md); the per-collection means are printed next to the baselines'.

    PYTHONPATH=src .venv/bin/python benchmarks/quality_forecast.py
    PYTHONPATH=src .venv/bin/python benchmarks/quality_forecast.py --configs model=poly,degree=3 \
        window=16,smooth=8
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

DATASETS = Path("/work/shared/datasets")
#: (AUC-PR, VUS-PR) of public methods from BASELINES.md (TSB-AD 1.5), for comparison.
BASELINES = {
    "nab": {"POLY": (0.299, 0.322), "Sub_PCA": (0.298, 0.324), "IForest": (0.300, 0.331),
            "robust_z": (0.179, 0.202)},
    "skab": {"MCD": (0.774, 0.793), "robust_z": (0.772, 0.791), "IForest": (0.739, 0.765)},
}
DEFAULT_CONFIGS = ("", "smooth=1", "model=poly", "model=poly,smooth=1")


def parse_config(text: str) -> dict[str, Any]:
    """``"name=value,name=value"`` -> params (ints where they parse)."""
    params: dict[str, Any] = {}
    for pair in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = pair.partition("=")
        try:
            params[name] = int(value)
        except ValueError:
            try:
                params[name] = float(value)
            except ValueError:
                params[name] = value
    return params


def load(collection: str) -> list[tuple[str, np.ndarray, np.ndarray, int]]:
    """(file, data[n, d], labels[n], train_rows) of each series with anomalies."""
    import pandas as pd

    manifest = json.loads((DATASETS / collection / "manifest.json").read_text())
    out = []
    for entry in manifest["series"]:
        if entry["anomaly_rows"] == 0:
            continue
        frame = pd.read_csv(DATASETS / collection / entry["file"])
        data = frame[entry["channels"]].to_numpy(dtype=np.float64)
        out.append((entry["file"], data, frame["label"].to_numpy(), int(entry["train_rows"])))
    return out


def evaluate(params: dict[str, Any], series) -> tuple[float, float, float, list[float]]:
    """Mean AUC-PR and VUS-PR over ``series``, seconds spent fitting and scoring, and the
    per-series AUC-PR."""
    from sklearn.metrics import average_precision_score

    from vigil.detectors.forecast import ForecastResidual
    from vigil.evaluation.period import dominant_period
    from vigil.evaluation.vus import vus_pr

    auc_pr, vus, seconds = [], [], 0.0
    for _, data, labels, train in series:
        start = time.perf_counter()
        det = ForecastResidual(**params).fit(data[:train])
        scores = det.score(data)
        seconds += time.perf_counter() - start
        auc_pr.append(average_precision_score(labels[train:], scores[train:]))
        vus.append(vus_pr(scores[train:], labels[train:], dominant_period(data[:, 0])))
    return float(np.mean(auc_pr)), float(np.mean(vus)), seconds, auc_pr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="*", default=list(DEFAULT_CONFIGS),
                        help="parameter sets, e.g. model=poly,window=16 ('' = defaults)")
    parser.add_argument("--collections", nargs="*", default=["nab", "skab"])
    parser.add_argument("--per-series", action="store_true", help="print each series' AUC-PR")
    args = parser.parse_args()
    data = {name: load(name) for name in args.collections}
    for name in args.collections:
        print(f"## {name} ({len(data[name])} series)")
        for method, (auc, vus) in BASELINES.get(name, {}).items():
            print(f"  {method:49s} AUC-PR {auc:.3f}  VUS-PR {vus:.3f}  (BASELINES.md)")
        for config in args.configs:
            auc, vus, seconds, per_series = evaluate(parse_config(config), data[name])
            print(f"  forecast {config or '(defaults)':40s} AUC-PR {auc:.3f}  VUS-PR {vus:.3f}"
                  f"  ({seconds:.2f} s fit+score)")
            if args.per_series:
                for (file, *_), value in zip(data[name], per_series):
                    print(f"      {value:.3f}  {file}")


if __name__ == "__main__":
    main()
