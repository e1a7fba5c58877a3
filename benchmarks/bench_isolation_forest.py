"""Scoring speed of vigil's Isolation Forest against scikit-learn's ``score_samples`` on the
same fitted forest, plus fit time, peak scoring memory and the largest score difference.

Timings are interleaved (every contender once per repeat, in turn) because the machine may be
shared; the tables report medians. Writes JSON and a Markdown table next to it.

    PYTHONPATH=src python benchmarks/bench_isolation_forest.py --rows 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def make_rows(n_rows: int, n_channels: int) -> np.ndarray:
    """Seeded normal rows with a spike every 10,000 rows."""
    X = np.random.default_rng(0).normal(size=(n_rows, n_channels))
    X[::10_000] += 6.0
    return X


def fitted(args: argparse.Namespace, train: np.ndarray):
    """vigil's detector and scikit-learn's forest grown from the same sample and seed."""
    from sklearn.ensemble import IsolationForest as SklearnForest

    from vigil.detectors.isolation_forest import IsolationForest

    start = time.perf_counter()
    det = IsolationForest(n_estimators=args.trees, random_state=0).fit(train)
    fit_s = time.perf_counter() - start
    forest = SklearnForest(n_estimators=args.trees, random_state=0).fit(train)
    return det, forest, fit_s


def contenders(det, forest, X: np.ndarray, numpy_rows: int) -> dict:
    """name -> (function scoring rows, rows it scores); each returns higher = more anomalous."""
    import numba
    from joblib import parallel_backend

    from vigil.detectors._forest_scoring import use_engine

    def numba_threads(n):
        def run():
            numba.set_num_threads(n)
            with use_engine("numba"):
                return det.score(X)
        return run

    def sklearn_threads():
        with parallel_backend("threading", n_jobs=-1):  # score_samples' documented knob
            return -forest.score_samples(X)

    def numpy_engine():
        with use_engine("numpy"):
            return det.score(X[:numpy_rows])

    return {
        "sklearn score_samples (1 thread)": (lambda: -forest.score_samples(X), len(X)),
        "sklearn score_samples (threading, n_jobs=-1)": (sklearn_threads, len(X)),
        "vigil numba, 1 thread": (numba_threads(1), len(X)),
        f"vigil numba, {numba.config.NUMBA_NUM_THREADS} threads": (
            numba_threads(numba.config.NUMBA_NUM_THREADS), len(X)),
        "vigil numpy fallback": (numpy_engine, numpy_rows),
    }


def time_interleaved(runs: dict, repeats: int, n_rows: int) -> tuple[dict, dict]:
    """Median seconds per contender, scaled to ``n_rows``; and each one's last scores."""
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    scores = {}
    for _ in range(repeats):
        for name, (run, rows) in runs.items():
            start = time.perf_counter()
            scores[name] = run()
            seconds[name].append((time.perf_counter() - start) * n_rows / rows)
    return {name: float(np.median(s)) for name, s in seconds.items()}, scores


def peak_memory_mb(mode: str, args: argparse.Namespace, state_path: str) -> float:
    """Peak resident memory added by one scoring call, measured in a fresh process."""
    out = subprocess.run(
        [sys.executable, __file__, "--memory-child", mode, "--state", state_path,
         "--rows", str(args.rows), "--channels", str(args.channels), "--trees", str(args.trees),
         "--fit-rows", str(args.fit_rows)],
        capture_output=True, text=True, check=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def _vm_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def memory_child(args: argparse.Namespace) -> None:
    """Score once and print the rise of VmHWM (peak RSS) above the resident memory before it."""
    X = make_rows(args.rows, args.channels)
    if args.memory_child == "vigil":
        from vigil.detectors.isolation_forest import IsolationForest

        with np.load(args.state) as state:
            det = IsolationForest(n_estimators=args.trees).set_state(dict(state))
        det.score(X[:2000])  # load the compiled kernel and numba's threads first
        run = lambda: det.score(X)  # noqa: E731
    else:
        from sklearn.ensemble import IsolationForest as SklearnForest

        forest = SklearnForest(n_estimators=args.trees, random_state=0)
        forest.fit(make_rows(args.fit_rows, args.channels))
        forest.score_samples(X[:2000])
        run = lambda: forest.score_samples(X)  # noqa: E731
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    before = _vm_kb("VmRSS")
    run()
    print((_vm_kb("VmHWM") - before) / 1024)


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.machine()


def write_tables(result: dict, out: Path) -> None:
    """JSON and a Markdown table of medians and ratios."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    base = result["seconds"]["sklearn score_samples (1 thread)"]
    lines = [
        f"# Isolation Forest scoring: {result['rows']:,} rows x {result['channels']} channels, "
        f"{result['trees']} trees",
        "",
        f"Median of {result['repeats']} interleaved repeats on {result['machine']}. "
        "Speed-up = sklearn 1-thread time / time.",
        "",
        "| contender | seconds | speed-up vs sklearn 1 thread |",
        "|---|---:|---:|",
    ]
    for name, sec in result["seconds"].items():
        lines.append(f"| {name} | {sec:.2f} | {base / sec:.2f}x |")
    lines += [
        "",
        f"- numpy fallback timed on {result['numpy_rows']:,} rows and scaled linearly.",
        f"- fit on {result['fit_rows']:,} rows: vigil {result['fit_s']:.2f} s "
        "(scikit-learn fit + flattening).",
        f"- peak extra memory while scoring: vigil {result['peak_mb']['vigil']:.0f} MB, "
        f"sklearn {result['peak_mb']['sklearn']:.0f} MB (VmHWM, fresh process).",
        f"- max |vigil - (-score_samples)| over the vigil contenders: "
        f"{result['max_abs_diff']:.3g}",
    ]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--channels", type=int, default=4)
    parser.add_argument("--trees", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--fit-rows", type=int, default=100_000, help="the bounded fit sample")
    parser.add_argument("--numpy-rows", type=int, default=1_000_000)
    default_out = Path("benchmarks/results/isolation_forest.json")
    parser.add_argument("--out", type=Path, default=default_out)
    parser.add_argument("--memory-child", choices=["vigil", "sklearn"], help=argparse.SUPPRESS)
    parser.add_argument("--state", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        return memory_child(args)

    X = make_rows(args.rows, args.channels)
    det, forest, fit_s = fitted(args, make_rows(args.fit_rows, args.channels))
    runs = contenders(det, forest, X, min(args.numpy_rows, args.rows))
    next(iter(runs.values()))[0]()  # warm-up: numba loads its cached kernel here
    runs["vigil numba, 1 thread"][0]()
    seconds, scores = time_interleaved(runs, args.repeats, args.rows)
    reference = scores["sklearn score_samples (1 thread)"]
    diff = max(
        float(np.abs(s - reference[: len(s)]).max())
        for name, s in scores.items()
        if name.startswith("vigil")
    )
    with tempfile.TemporaryDirectory() as tmp:
        state_path = os.path.join(tmp, "state.npz")
        np.savez(state_path, **det.get_state())
        peak = {mode: peak_memory_mb(mode, args, state_path) for mode in ("vigil", "sklearn")}
    result = {
        "rows": args.rows, "channels": args.channels, "trees": args.trees,
        "repeats": args.repeats, "fit_rows": args.fit_rows,
        "numpy_rows": min(args.numpy_rows, args.rows), "fit_s": fit_s,
        "machine": f"{_cpu_model()}, {os.cpu_count()} cores",
        "seconds": seconds, "peak_mb": peak, "max_abs_diff": diff,
    }
    write_tables(result, args.out)
    print(args.out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
