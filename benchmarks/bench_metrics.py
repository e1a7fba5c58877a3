"""Speed of vigil's VUS-PR against the reference implementation, TSB-AD 1.5's
``generate_curve`` (``RangeAUC_volume_opt``, the code behind ``get_metrics``'s VUS-PR), on one
100,000-row series, plus one timing of all nine metrics (``evaluate_scores`` against
``get_metrics``). Optionally (``--agreement``) also checks every scored series of shared/datasets
under the BASELINES.md protocol, for the robust_z and random floors, and reports the largest
difference per metric. Writes ``benchmarks/results/metrics.md``.

Target (from the issue): vigil's VUS-PR at least 10x faster than the reference in the same run.
Timings are interleaved (reference, then vigil, in one loop) because the machine may be shared;
the ratio reported is the median of the paired ratios. Needs the reference installed apart:
``pip install statsmodels && pip install --no-deps tsb-ad``.

    python benchmarks/bench_metrics.py                   # 100k rows, 5 paired repeats
    python benchmarks/bench_metrics.py --agreement       # also every dataset series (~30 min)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _measure  # noqa: E402

from vigil.evaluation import METRIC_NAMES, dominant_period, evaluate_scores, vus_pr  # noqa: E402

TARGET_SPEEDUP = 10.0
RESULTS = Path(__file__).resolve().parent / "results" / "metrics.md"
DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def make_series(n_rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A noisy 100-row sine with 20 labelled events (50-300 rows of extra noise), and the score
    |x - sine|: the series, its labels and the score."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_rows)
    clean = np.sin(2 * np.pi * t / 100)
    x = clean + 0.3 * rng.normal(size=n_rows)
    label = np.zeros(n_rows, dtype=int)
    for start in rng.choice(n_rows - 400, 20, replace=False):
        label[start:start + rng.integers(50, 300)] = 1
    x[label == 1] += rng.normal(0, 1.5, size=int(label.sum()))
    return x, label, np.abs(x - clean)


def time_vus_pr(score, label, window: int, repeats: int) -> dict:
    """Paired timings of TSB-AD's and vigil's VUS-PR, and both values."""
    from TSB_AD.evaluation.basic_metrics import generate_curve

    ref_s, ours_s = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        ref_value = float(generate_curve(label, score, window)[7])
        ref_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        our_value = vus_pr(score, label, window)
        ours_s.append(time.perf_counter() - start)
    return {"ref_s": ref_s, "ours_s": ours_s, "ref_value": ref_value, "our_value": our_value,
            "ratio": statistics.median(r / o for r, o in zip(ref_s, ours_s))}


def time_all_metrics(score, label, window: int) -> dict:
    """One timing of ``get_metrics`` and of ``evaluate_scores``, and the largest difference."""
    from TSB_AD.evaluation.metrics import get_metrics

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        ref = get_metrics(score, label, slidingWindow=window)
        ref_s = time.perf_counter() - start
    start = time.perf_counter()
    ours = evaluate_scores(score, label, window)
    ours_s = time.perf_counter() - start
    diff = max(abs(float(ref[k]) - ours[k]) for k in METRIC_NAMES)
    return {"ref_s": ref_s, "ours_s": ours_s, "max_diff": diff}


def agreement() -> dict:
    """Largest |vigil - TSB-AD| per metric over every scored series and both floors, and the
    window agreement, under the BASELINES.md protocol."""
    import pandas as pd
    from TSB_AD.evaluation.metrics import get_metrics
    from TSB_AD.utils.slidingWindows import find_length_rank

    worst = dict.fromkeys(METRIC_NAMES, 0.0)
    counts = {"series": 0, "windows_equal": 0, "runs": 0}
    for collection in ("nab", "skab"):
        manifest = json.loads((DATASETS / collection / "manifest.json").read_text())
        for entry in manifest["series"]:
            frame = pd.read_csv(DATASETS / collection / entry["file"])
            data = frame.drop(columns=["timestamp", "label"]).to_numpy(dtype=float)
            label = frame["label"].to_numpy(dtype=int)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                window = find_length_rank(data[:, 0].reshape(-1, 1), rank=1)
            counts["series"] += 1
            counts["windows_equal"] += int(window == dominant_period(data[:, 0]))
            if entry["anomaly_rows"] == 0:
                continue
            train = entry["train_rows"]
            median = np.median(data[:train], axis=0)
            mad = np.median(np.abs(data[:train] - median), axis=0)
            floors = {
                "robust_z": (np.abs(data - median) / np.maximum(1.4826 * mad, 1e-9)).max(axis=1),
                "random": np.random.default_rng(2024).uniform(size=label.size),
            }
            for score in floors.values():
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    ref = get_metrics(score[train:], label[train:], slidingWindow=window)
                ours = evaluate_scores(score[train:], label[train:], window)
                for name in METRIC_NAMES:
                    worst[name] = max(worst[name], abs(float(ref[name]) - ours[name]))
                counts["runs"] += 1
    return {"worst": worst, **counts}


def write_markdown(args, window: int, vus: dict, full: dict | None, agree: dict | None) -> None:
    """The results file: the VUS-PR table, the all-metrics row and the agreement table."""
    m = _measure.machine()
    verdict = "PASS" if vus["ratio"] >= TARGET_SPEEDUP else "MISS"
    ref_s, ours_s = statistics.median(vus["ref_s"]), statistics.median(vus["ours_s"])
    lines = [
        f"# Evaluation metrics: VUS-PR on {args.rows:,} rows", "",
        (f"Median of {args.repeats} interleaved repeats on {m['cpu']} ({m['cores']} cores; "
         f"{m['caches']}), numpy {m['numpy']}, Python {m['python']}, {m['date']}. Reference: "
         "TSB-AD 1.5 `generate_curve` (what `get_metrics` reports as VUS-PR), same series, "
         "same run."), "",
        ("Series: noisy sine (period 100) with 20 labelled events of 50-300 rows; score "
         f"|x - sine|; sliding window {window} (`dominant_period`, equal to TSB-AD's "
         "`find_length_rank`); 250 thresholds as in `get_metrics`."), "",
        ("| metric | TSB-AD s | vigil s | speed-up (median of paired ratios) | target "
         "| value TSB-AD | value vigil |"),
        "|---|---:|---:|---:|---:|---:|---:|",
        (f"| VUS-PR | {ref_s:.3f} | {ours_s:.4f} | {vus['ratio']:.0f}x {verdict} | "
         f">= {TARGET_SPEEDUP:.0f}x | {vus['ref_value']:.10f} | {vus['our_value']:.10f} |"),
    ]
    if full is not None:
        lines.append(
            f"| all nine (`get_metrics` / `evaluate_scores`), 1 run | {full['ref_s']:.2f} | "
            f"{full['ours_s']:.3f} | {full['ref_s'] / full['ours_s']:.0f}x | | max abs "
            f"difference {full['max_diff']:.1e} | |")
    if agree is not None:
        lines += [
            "", "## Agreement with TSB-AD 1.5 on shared/datasets", "",
            ("BASELINES.md protocol (window from channel 0 of the whole series, metrics on "
             f"rows [T, n)), floors robust_z and random: {agree['runs']} runs on the scored "
             f"series. `dominant_period` equals `find_length_rank(rank=1)` on "
             f"{agree['windows_equal']} of {agree['series']} series."), "",
            "| metric | largest abs difference |", "|---|---:|",
            *(f"| {name} | {value:.1e} |" for name, value in agree["worst"].items()),
        ]
    flags = f"--rows {args.rows} --repeats {args.repeats}"
    flags += " --agreement" if args.agreement else ""
    lines += ["", f"Command: `python benchmarks/bench_metrics.py {flags}`", ""]
    RESULTS.write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-full", action="store_true", help="skip the all-metrics timing")
    parser.add_argument("--agreement", action="store_true", help="check every dataset series")
    args = parser.parse_args()
    x, label, score = make_series(args.rows)
    window = dominant_period(x)
    vus = time_vus_pr(score, label, window, args.repeats)
    print(f"VUS-PR: TSB-AD {statistics.median(vus['ref_s']):.3f} s, vigil "
          f"{statistics.median(vus['ours_s']):.4f} s, speed-up {vus['ratio']:.0f}x", flush=True)
    full = None if args.no_full else time_all_metrics(score, label, window)
    if full:
        print(f"all metrics: TSB-AD {full['ref_s']:.1f} s, vigil {full['ours_s']:.2f} s, "
              f"max diff {full['max_diff']:.1e}", flush=True)
    agree = agreement() if args.agreement else None
    write_markdown(args, window, vus, full, agree)
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
