"""The evidence behind the default decision rules: the ``pot`` threshold's level and the alarm
rules (``vigil.alarms.Alarms``), judged by what a user sees, the flags.

``auto`` scores every labeled series of ``shared/datasets`` once (fitted on ``train_rows``, the
BASELINES.md protocol) and the bundled plant data twice: fitted on its clean first week, and
fitted on the whole file, as ``vigil detect`` does with no training split (the training rows
then hold the anomalies). Each candidate rule set then decides on the cached scores exactly as
``vigil.Model`` does (threshold fitted on the training scores, events per series), and the
flag metrics of the evaluated rows (``vigil.evaluation.flag_metrics``) are averaged per
collection. A rule set's **merit** is the mean over the collections and both plant-data fits of
``(event-F1 + F1 / oracle) / 2``, less 0.05 for each false-alarm event per 1,000 rows above
0.5 (the issue's target), per collection: alarms that come as events, that cover what is labelled, and that are
rare when nothing is wrong.

    PYTHONPATH=src python benchmarks/choose_decisions.py [--cache DIR] > benchmarks/results/choose_decisions.md
"""

from __future__ import annotations

import argparse
import itertools
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from vigil import sample_data
from vigil.alarms import Alarms
from vigil.detectors import make_detector
from vigil.evaluation import flag_metrics
from vigil.evaluation.bench import discover
from vigil.evaluation.point import best_f1
from vigil.thresholds import POT

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"
LEVELS = (0.9, 0.95, 0.98)
RULES = {"exit_level": (0.3, 0.5, 0.7, 1.0), "merge_gap": (0, 3, 10, 30, 60, 120),
         "min_rows": (1, 2, 3, 5)}
SHOWN = ("flagged", "F1 / oracle", "events caught", "false alarms / 1k rows", "event-F1")


def cached_scores(cache: Path) -> list[dict]:
    """Per series: scores of every row, training scores, labels, the evaluated part."""
    cache.mkdir(parents=True, exist_ok=True)
    jobs = [(s.collection, Path(s.path), s.train_rows, False)
            for s in discover(DATASETS) if s.anomaly_rows > 0]
    jobs += [("plant (clean week)", sample_data.path(), sample_data.TRAIN_ROWS, False),
             ("plant (whole file)", sample_data.path(), sample_data.TRAIN_ROWS, True)]
    out = []
    for collection, path, train_rows, whole in jobs:
        stored = cache / f"{collection}__{path.name}.npz".replace(" ", "_")
        if not stored.exists():
            frame = pd.read_csv(path)
            label = frame["label"].to_numpy()
            X = frame.drop(columns=["timestamp", "label", "anomaly_kind"], errors="ignore")
            X = X.to_numpy(np.float64)
            fit_rows = X if whole else X[:train_rows]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                detector = make_detector("auto").fit(fit_rows)
                np.savez(stored, score=detector.score(X), train=detector.training_scores(fit_rows),
                         label=label, start=train_rows)
        z = np.load(stored)
        out.append({"collection": collection, "score": z["score"], "train": z["train"],
                    "label": z["label"], "start": int(z["start"])})
    return out


def pot_value(s: dict, level: float) -> float:
    """The pot threshold of a series' training scores (fitted once per level)."""
    fitted = s.setdefault("pot", {})
    if level not in fitted:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fitted[level] = POT(level=level).fit(s["train"]).value_
    return fitted[level]


def evaluate(series: list[dict], level: float, rules: dict) -> pd.DataFrame:
    """Mean flag metrics per collection under one threshold level and rule set."""
    rows = []
    for s in series:
        threshold = pot_value(s, level)
        alarms = Alarms(**rules).fit(s["train"])
        flags = alarms.events(s["score"], threshold).mask(s["score"].size)[s["start"]:]
        label, score = s["label"][s["start"]:], s["score"][s["start"]:]
        rows.append({"collection": s["collection"],
                     **flag_metrics(flags, label, oracle_f1=best_f1(score, label))})
    return pd.DataFrame(rows).groupby("collection")[list(SHOWN)].mean()


def merit(table: pd.DataFrame) -> float:
    """Mean of (event-F1 + F1 / oracle) / 2, less 0.05 per false alarm / 1k rows above 0.5."""
    quality = ((table["event-F1"] + table["F1 / oracle"]) / 2).mean()
    excess = (table["false alarms / 1k rows"] - 0.5).clip(lower=0)
    return float(quality - 0.05 * excess.mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=Path("/tmp/vigil-choose-decisions"))
    args = parser.parse_args()
    series = cached_scores(args.cache)
    results = []
    for level, *values in itertools.product(LEVELS, *RULES.values()):
        rules = dict(zip(RULES, values))
        table = evaluate(series, level, rules)
        results.append((merit(table), level, rules, table))
    results.sort(key=lambda r: -r[0])
    defaults = Alarms()
    current = {k: getattr(defaults, k) for k in RULES}
    print("# Decision rules: pot level and alarm rules, by merit\n")
    print("Command: `PYTHONPATH=src python benchmarks/choose_decisions.py` (see its docstring "
          "for the protocol and the merit).\n")
    print("| merit | pot level | " + " | ".join(RULES) + " |\n|---|---|" + "---|" * len(RULES))
    for score, level, rules, _ in results[:15]:
        print(f"| {score:.3f} | {level} | " + " | ".join(str(v) for v in rules.values()) + " |")
    for title, (score, level, rules, table) in (("Best", results[0]), ("Defaults", next(
            r for r in results if r[1] == POT().get_params()["level"] and r[2] == current))):
        print(f"\n## {title}: pot level {level}, {rules} (merit {score:.3f})\n")
        print("| collection | " + " | ".join(SHOWN) + " |\n|---|" + "---|" * len(SHOWN))
        for name, row in table.iterrows():
            print(f"| {name} | " + " | ".join(f"{v:.3f}" for v in row) + " |")


if __name__ == "__main__":
    main()
