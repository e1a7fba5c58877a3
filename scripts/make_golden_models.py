"""Remake the golden model files in tests/fixtures/golden/.

Each registered method (and a windowed Isolation Forest) is fitted on a small seeded sensor
frame; the model file, that frame and the scores it gave are committed. `tests/test_golden.py`
loads each file with the current vigil and checks it still gives those scores, so the model file
format and the scores stay stable across versions. Run this only when a change of scores or
format is intended, and say why in the commit. The committed files are model file format
version 1; this writes version 2 (tests/test_golden.py re-saves each as version 2 already), so
remaking them drops the version 1 files' coverage: keep copies of them if you do.

    python scripts/make_golden_models.py [NAME ...]    # all, or only the named ones
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

import vigil

GOLDEN = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "golden"
CONFIGS = {
    "auto": {"method": "auto"},
    "zscore": {"method": "zscore"},
    "robust_zscore": {"method": "robust_zscore"},
    "forecast": {"method": "forecast"},
    "iqr": {"method": "iqr"},
    "matrix_profile": {"method": "matrix_profile"},
    "subsequence_pca": {"method": "subsequence_pca"},
    "subsequence_kmeans": {"method": "subsequence_kmeans"},
    "mahalanobis": {"method": "mahalanobis"},
    "isolation_forest": {"method": "isolation_forest", "n_estimators": 20},
    "isolation_forest_window": {"method": "isolation_forest", "n_estimators": 20, "window": 8},
    "stuck": {"method": "stuck"},
    "modes": {"method": "modes"},
    "one_class_svm": {"method": "one_class_svm"},
    "lof": {"method": "lof", "window": 4},
    "random_forest": {"method": "random_forest", "n_estimators": 20},
    "autoencoder": {"method": "autoencoder", "epochs": 3},
    "vae": {"method": "vae", "epochs": 3},
    "transformer": {"method": "transformer", "epochs": 3},
    "gan": {"method": "gan", "epochs": 3},
}
#: The rows of ``frame``'s spikes: the labels a supervised method learns from.
SPIKES = [400, 900, 1300]


def frame(rows: int = 1500, seed: int = 11) -> pd.DataFrame:
    """Two sensor channels with a daily-like cycle, noise and three spikes."""
    rng = np.random.default_rng(seed)
    t = np.arange(rows)
    data = pd.DataFrame({
        "timestamp": pd.date_range("2024-01-01", periods=rows, freq="min").strftime("%Y-%m-%d %H:%M:%S"),
        "temperature": np.round(20 + 3 * np.sin(2 * np.pi * t / 720) + rng.normal(0, 0.3, rows), 3),
        "pressure": np.round(6 + rng.normal(0, 0.02, rows), 4),
    })
    data.loc[SPIKES, "temperature"] += [8.0, -7.0, 6.5]
    return data


def main() -> None:
    GOLDEN.mkdir(parents=True, exist_ok=True)
    data = frame()
    data.to_csv(GOLDEN / "input.csv", index=False)
    for name, config in CONFIGS.items():
        if sys.argv[1:] and name not in sys.argv[1:]:
            continue
        params = dict(config)
        model = vigil.Model(params.pop("method"), **params)
        labels = np.isin(np.arange(len(data)), SPIKES).astype(int)
        model.fit(GOLDEN / "input.csv", labels=labels)
        model.save(GOLDEN / f"{name}.vigil")
        result = model.detect(GOLDEN / "input.csv")
        result[["score", "is_anomaly"]].to_csv(GOLDEN / f"{name}.expected.csv", index=False,
                                               float_format="%.17g")
        print(f"{name}: {int(result['is_anomaly'].sum())} anomalies, threshold {model.threshold_:.6g}")


if __name__ == "__main__":
    main()
