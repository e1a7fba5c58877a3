"""Fit time, scoring throughput and peak memory of the statistical detectors (zscore,
robust_zscore, iqr), each beside the time of one ``np.copy`` of the same input: the
memory-bandwidth floor.

Targets (from the benchmark issue): ``score`` within 5x one ``np.copy`` of the input, and peak
memory at most 3x the input array. Timings are interleaved (an ``np.copy`` is timed right
before every call, in the same loop) because the machine may be shared; tables report medians,
and ratios to the median ``np.copy`` of the run. Peak memory is measured in a fresh process per
method: the rise of the peak resident set (``VmHWM``) during each phase above the resident set
just before it, plus the peak of numpy's own allocations (``tracemalloc``) as a second, exact
count of the temporaries. Writes JSON and a Markdown table next to it.

    python benchmarks/bench_statistical.py                  # 10 million rows x 4 channels
    python benchmarks/bench_statistical.py --rows 1000000   # a quick look
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _measure  # noqa: E402

METHODS = ("zscore", "robust_zscore", "iqr", "mahalanobis")
PHASES = ("fit", "score", "score_channels")
#: The issue's targets.
SCORE_OVER_COPY_TARGET = 5.0
PEAK_OVER_INPUT_TARGET = 3.0
MB = 1e6


def make_rows(n_rows: int, n_channels: int) -> np.ndarray:
    """Seeded standard-normal rows (float64, C order) with a spike every 10,000 rows."""
    X = np.random.default_rng(0).normal(size=(n_rows, n_channels))
    X[::10_000] += 6.0
    return X


def _detector(method: str):
    from vigil.detectors import make_detector

    return make_detector(method)


def _phase_call(det, phase: str, X: np.ndarray):
    return {"fit": det.fit, "score": det.score, "score_channels": det.score_channels}[phase](X)


# -- timing ----------------------------------------------------------------------------------
def time_methods(X: np.ndarray, methods: list[str], repeats: int) -> tuple[dict, dict]:
    """Per method and phase: median seconds and their ratio to the median ``np.copy`` of
    ``X``; and the ``np.copy`` figures. Each repeat runs every method's phases in turn, each
    one right after an ``np.copy`` of ``X``.

    The reference is the median over all the copies of the run rather than the copy just
    before each call: a fresh 320 MB copy is mostly page faults, and their cost jumps with what
    the kernel is doing at that moment (here, systematically after some calls), so single
    paired copies are the noisiest numbers of the run. The paired ratio is kept in the JSON."""
    dets = {m: _detector(m) for m in methods}
    for m, det in dets.items():  # warm-up: imports, first-touch of code paths
        det.fit(X[:10_000])
        det.score(X[:10_000])
        det.score_channels(X[:10_000])
    raw = {m: {p: {"s": [], "copy_s": []} for p in PHASES} for m in methods}
    for rep in range(repeats):
        for m, det in dets.items():
            for phase in PHASES:
                gc.collect()
                copy_s = _measure.seconds(lambda: np.copy(X))
                phase_s = _measure.seconds(lambda: _phase_call(det, phase, X))
                raw[m][phase]["s"].append(phase_s)
                raw[m][phase]["copy_s"].append(copy_s)
            print(
                f"  repeat {rep + 1}/{repeats} {m}: "
                + ", ".join(
                    f"{p} {raw[m][p]['s'][-1]:.3f}s (copy {raw[m][p]['copy_s'][-1]:.3f}s)"
                    for p in PHASES
                ),
                file=sys.stderr,
            )
    copies = np.concatenate([raw[m][p]["copy_s"] for m in methods for p in PHASES])
    copy_s = float(np.median(copies))
    out = {}
    for m in methods:
        out[m] = {}
        for phase in PHASES:
            s = np.array(raw[m][phase]["s"])
            c = np.array(raw[m][phase]["copy_s"])
            out[m][phase] = {
                "seconds": float(np.median(s)),
                "over_copy": float(np.median(s) / copy_s),
                "paired_copy_seconds": float(np.median(c)),
                "over_paired_copy": float(np.median(s / c)),
                "rows_per_s": float(len(X) / np.median(s)),
                "all_seconds": s.round(4).tolist(),
                "all_copy_seconds": c.round(4).tolist(),
            }
    reference = {"seconds": copy_s, "count": len(copies),
                 "min_seconds": float(copies.min()), "max_seconds": float(copies.max()),
                 "bytes_per_s": 2 * X.nbytes / copy_s}  # read + write
    return out, reference


# -- memory, in a fresh process per method ----------------------------------------------------
def memory_child(method: str, rows: int, channels: int, phases: list[str]) -> dict:
    """Build X, then for each phase the rise of peak RSS above the RSS just before it, and the
    peak of traced (numpy) allocations above those live just before it. Bytes."""
    X = make_rows(rows, channels)
    det = _detector(method)
    det.fit(X[:10_000])  # imports and warm-up outside the measured phases
    det.score(X[:10_000])
    det.score_channels(X[:10_000])  # (fitted on 10,000 rows: the memory does not depend on it)
    resettable = _measure.can_reset_peak_rss()
    result: dict = {"input_bytes": X.nbytes, "rss": {}, "tracemalloc": {}}
    for phase in phases:
        gc.collect()
        if resettable:
            _measure.reset_peak_rss()
        before = _measure.vm_kb("VmRSS")
        kept = _phase_call(det, phase, X)
        result["rss"][phase] = (_measure.vm_kb("VmHWM") - before) * 1024
        del kept
    # tracemalloc slows Python allocations down, so it runs after the RSS figures
    tracemalloc.start()
    for phase in phases:
        gc.collect()
        tracemalloc.reset_peak()
        live = tracemalloc.get_traced_memory()[0]
        kept = _phase_call(det, phase, X)
        result["tracemalloc"][phase] = tracemalloc.get_traced_memory()[1] - live
        del kept
    tracemalloc.stop()
    return result


def measure_memory(method: str, rows: int, channels: int) -> dict:
    """Run :func:`memory_child` in fresh processes: one for all phases where ``VmHWM`` can be
    reset, else one per phase (its peak can then only be read when it exceeds the setup's)."""
    groups = [list(PHASES)] if _measure.can_reset_peak_rss() else [[p] for p in PHASES]
    merged: dict = {"rss": {}, "tracemalloc": {}}
    for phases in groups:
        proc = subprocess.run(
            [sys.executable, __file__, "--memory-child", method, "--rows", str(rows),
             "--channels", str(channels), "--phases", ",".join(phases)],
            capture_output=True, text=True,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"memory child for {method} failed:\n{proc.stderr}")
        part = json.loads(proc.stdout.strip().splitlines()[-1])
        merged["input_bytes"] = part["input_bytes"]
        merged["rss"].update(part["rss"])
        merged["tracemalloc"].update(part["tracemalloc"])
    return merged


# -- output ----------------------------------------------------------------------------------
def _verdict(value: float, target: float) -> str:
    return "PASS" if value <= target else "MISS"


def write_tables(result: dict, out: Path) -> str:
    """JSON and a Markdown table; returns the Markdown."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    mach = result["machine"]
    input_mb = result["input_bytes"] / MB
    lines = [
        f"# Statistical detectors: {result['rows']:,} rows x {result['channels']} channels",
        "",
        f"Input: float64, {input_mb:,.0f} MB. Median of {result['repeats']} interleaved repeats "
        f"on {mach['cpu']} ({mach['cores']} cores; {mach['caches']}), numpy {mach['numpy']}, "
        f"Python {mach['python']}, {mach['date']}. Reference: one `np.copy` of the same input "
        "(the memory-bandwidth floor), timed right before each call.",
        "",
        "| method | fit s | score s | np.copy s | score / copy (target <= 5) | score rows/s "
        "| score_channels s (/ copy) | score peak / input (target <= 3) "
        "| fit peak / input (target <= 3) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for m, r in result["methods"].items():
        t, mem = r["timing"], r["memory"]
        score_ratio = t["score"]["over_copy"]
        score_peak = mem["rss"]["score"] / mem["input_bytes"]
        fit_peak = mem["rss"]["fit"] / mem["input_bytes"]
        lines.append(
            f"| {m} | {t['fit']['seconds']:.2f} | {t['score']['seconds']:.3f} "
            f"| {result['np_copy']['seconds']:.3f} "
            f"| {score_ratio:.1f}x {_verdict(score_ratio, SCORE_OVER_COPY_TARGET)} "
            f"| {t['score']['rows_per_s'] / 1e6:.1f} M "
            f"| {t['score_channels']['seconds']:.3f} ({t['score_channels']['over_copy']:.1f}x) "
            f"| {score_peak:.2f}x {_verdict(score_peak, PEAK_OVER_INPUT_TARGET)} "
            f"| {fit_peak:.2f}x {_verdict(fit_peak, PEAK_OVER_INPUT_TARGET)} |"
        )
    lines += [
        "",
        "Peak memory above the memory in use just before each call, in MB (fresh process per "
        "method; RSS = rise of `VmHWM`, traced = peak of numpy's allocations under "
        "`tracemalloc`). Both include the call's own output: `score` returns "
        f"{result['rows'] * 8 / MB:,.0f} MB, `score_channels` {input_mb:,.0f} MB.",
        "",
        "| method | fit RSS | fit traced | score RSS | score traced "
        "| score_channels RSS | score_channels traced |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for m, r in result["methods"].items():
        mem = r["memory"]
        cells = []
        for phase in PHASES:
            for kind in ("rss", "tracemalloc"):
                b = mem[kind][phase]
                cells.append(f"{b / MB:,.0f} ({b / mem['input_bytes']:.2f}x)")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"- Seconds are medians over the repeats. np.copy s is the median of all "
        f"{result['np_copy']['count']} copies of the run (one right before every call; range "
        f"{result['np_copy']['min_seconds']:.3f} to {result['np_copy']['max_seconds']:.3f} s, "
        f"{result['np_copy']['bytes_per_s'] / 1e9:.1f} GB/s read + write at the median); the "
        "ratios are to it. Each call's ratio to the copy just before it is in the JSON "
        "(`over_paired_copy`).",
        "- fit runs on all rows; the targets are the issue's, applied to `score` and, for "
        "peak memory, to `fit` as well.",
        "",
        f"Command: `{result['command']}`",
    ]
    md = "\n".join(lines) + "\n"
    out.with_suffix(".md").write_text(md)
    return md


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--channels", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--methods", default=",".join(METHODS),
                        help="comma-separated, from: " + ", ".join(METHODS))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/statistical.json"))
    parser.add_argument("--memory-child", choices=METHODS, help=argparse.SUPPRESS)
    parser.add_argument("--phases", default=",".join(PHASES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        res = memory_child(args.memory_child, args.rows, args.channels, args.phases.split(","))
        print(json.dumps(res))
        return

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        parser.error(f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(METHODS)}")
    started = time.perf_counter()
    print(f"statistical: memory, {len(methods)} fresh processes ...", file=sys.stderr)
    memory = {m: measure_memory(m, args.rows, args.channels) for m in methods}
    print(f"statistical: timing, {args.repeats} interleaved repeats ...", file=sys.stderr)
    X = make_rows(args.rows, args.channels)
    timing, copy_ref = time_methods(X, methods, args.repeats)
    result = {
        "benchmark": "statistical",
        "rows": args.rows,
        "channels": args.channels,
        "repeats": args.repeats,
        "input_bytes": X.nbytes,
        "targets": {"score_over_copy": SCORE_OVER_COPY_TARGET,
                    "peak_over_input": PEAK_OVER_INPUT_TARGET},
        "machine": _measure.machine(),
        "np_copy": copy_ref,
        "command": "python benchmarks/bench_statistical.py " + " ".join(sys.argv[1:]),
        "wall_seconds": None,
        "methods": {m: {"timing": timing[m], "memory": memory[m]} for m in methods},
    }
    result["wall_seconds"] = round(time.perf_counter() - started, 1)
    print(write_tables(result, args.out))


if __name__ == "__main__":
    main()
