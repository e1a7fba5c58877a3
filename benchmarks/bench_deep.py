"""The deep detectors on this CPU: training throughput, ONNX scoring throughput against eager
torch on the same windows, single-window latency through onnxruntime, and the peak memory of
scoring 1M and 10M rows (it must not grow with the rows beyond the input and output).

Window 64, 8 channels (the issue's setting), seeded sine-plus-noise rows. Timings of ONNX and
torch are interleaved (each once per repeat, in turn) and reported as medians, because the
machine may be shared: read the ratios.

    PYTHONPATH=src python benchmarks/bench_deep.py            # about 6 minutes on 2 cores
    PYTHONPATH=src python benchmarks/bench_deep.py --quick    # a quick look (results/quick/)
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import machine  # noqa: E402

METHODS = ["autoencoder", "vae", "transformer", "gan"]
WINDOW, CHANNELS = 64, 8


def rows(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n)[:, None]
    return (np.sin(2 * np.pi * t / 64 + np.arange(CHANNELS)) + 0.1 * rng.normal(size=(n, CHANNELS)))


def measure_method(method: str, train_rows: int, score_rows: int, repeats: int) -> dict:
    import pandas as pd
    import torch

    import vigil
    from vigil.detectors.base import FIT_PROGRESS
    from vigil.detectors.deep.graph import run, session

    train = pd.DataFrame(rows(train_rows), columns=[f"c{j}" for j in range(CHANNELS)])
    epochs, stamps = 3, []
    token = FIT_PROGRESS.set(lambda epoch, total, note: stamps.append(time.perf_counter()))
    start = time.perf_counter()
    # patience above epochs: every epoch runs, each over all training windows
    model = vigil.Model(method, window=WINDOW, epochs=epochs, patience=epochs + 1,
                        max_windows=10**9).fit(train)
    fit_s = time.perf_counter() - start
    FIT_PROGRESS.reset(token)
    det = model.detector
    windows_per_epoch = int((train_rows - WINDOW + 1) * (1 - det.validation)) - WINDOW
    # epochs 2..N: the first one also pays torch's warm-up
    train_wps = windows_per_epoch * (len(stamps) - 1) / (stamps[-1] - stamps[0])

    test = pd.DataFrame(rows(score_rows, seed=1), columns=train.columns)
    windows = np.ascontiguousarray(det._windows(test.to_numpy()))
    net = det._torch_network
    onnx_s, eager_s, model_s = [], [], []
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(0, len(windows), 4096):
            run(det._runtime(), windows[i:i + 4096])
        onnx_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        with torch.no_grad():
            for i in range(0, len(windows), 4096):
                net(torch.from_numpy(windows[i:i + 4096]))
        eager_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        model.score(test)
        model_s.append(time.perf_counter() - start)
    one = windows[:1]
    sess = session(det._graph)
    for _ in range(200):
        run(sess, one)
    latency = []
    for _ in range(5000):
        start = time.perf_counter()
        run(sess, one)
        latency.append(time.perf_counter() - start)
    n = len(windows)
    return {
        "method": method,
        "train_windows_per_s": train_wps,
        "fit_s": fit_s,
        "epochs": int(det.epochs_),
        "onnx_windows_per_s": n / statistics.median(onnx_s),
        "eager_windows_per_s": n / statistics.median(eager_s),
        "onnx_over_eager": statistics.median(eager_s) / statistics.median(onnx_s),
        "model_score_rows_per_s": score_rows / statistics.median(model_s),
        "latency_p50_ms": float(np.quantile(latency, 0.5) * 1e3),
        "latency_p99_ms": float(np.quantile(latency, 0.99) * 1e3),
        "graph_bytes": len(det._graph),
        "raw": {"onnx_s": onnx_s, "eager_s": eager_s, "model_score_s": model_s},
    }


_MEMORY_CHILD = """
import sys, numpy as np, pandas as pd
sys.path.insert(0, {bench!r})
import vigil
from _measure import vm_kb, reset_peak_rss
from bench_deep import rows
model = vigil.load({model!r})
X = rows({n}, seed=1)
data = pd.DataFrame(X, columns=model.channels_) if {frame} else X
del X
reset_peak_rss()
before = vm_kb("VmRSS")
scores = model.score(data) if {frame} else model.detector.score(data)
print(before, vm_kb("VmHWM"), len(scores) * 8 * {channels}, scores.nbytes)
"""


def measure_memory(row_counts: list[int], out: Path) -> list[dict]:
    """Peak resident memory of scoring in a fresh process per row count: ``Model.score`` on a
    frame (the user's path, which reads the frame into one float64 array first) and
    ``Detector.score`` on that array (what the chunking bounds)."""
    import pandas as pd

    import vigil

    path = out / "memory_model.vigil"
    train = pd.DataFrame(rows(20_000), columns=[f"c{j}" for j in range(CHANNELS)])
    vigil.Model("autoencoder", window=WINDOW, epochs=2).fit(train).save(path)
    results = []
    for n in row_counts:
        for frame in (True, False):
            code = _MEMORY_CHILD.format(bench=str(Path(__file__).parent), model=str(path), n=n,
                                        frame=frame, channels=CHANNELS)
            done = subprocess.run([sys.executable, "-c", code], check=True,
                                  capture_output=True, text=True)
            before, peak, input_bytes, output_bytes = map(int, done.stdout.split()[-4:])
            rise = peak * 1024 - before * 1024
            results.append({"rows": n, "path": "Model.score(frame)" if frame else
                            "Detector.score(array)", "input_mb": input_bytes / 2**20,
                            "peak_rise_mb": rise / 2**20,
                            "rise_less_output_mb": (rise - output_bytes) / 2**20})
    path.unlink()
    return results


def markdown(results: list[dict], memory: list[dict], command: str, info: dict) -> str:
    lines = [
        "# Deep detectors", "",
        f"Command: `{command}`", "",
        f"Machine: {info['cpu']}, {info['cores']} cores; {info['date']}. Window {WINDOW}, "
        f"{CHANNELS} channels. Training: windows per second over epochs 2-3 of a 3-epoch fit "
        "(all training windows each epoch). Scoring: onnxruntime and eager torch on the same "
        "windows in batches of 4,096, interleaved, medians; `Model.score` is the user's path "
        "(a frame in, one score per row). Latency: one window through onnxruntime, 5,000 calls.",
        "",
        "| method | train windows/s | fit s | ONNX windows/s | eager torch windows/s | ONNX / "
        "eager | Model.score rows/s | latency p50 ms | latency p99 ms | graph KB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['method']} | {r['train_windows_per_s']:,.0f} | {r['fit_s']:.1f} | "
            f"{r['onnx_windows_per_s']:,.0f} | {r['eager_windows_per_s']:,.0f} | "
            f"{r['onnx_over_eager']:.2f} | {r['model_score_rows_per_s']:,.0f} | "
            f"{r['latency_p50_ms']:.3f} | {r['latency_p99_ms']:.3f} | {r['graph_bytes'] / 1024:.0f} |")
    lines += ["", "Targets: training >= 30,000 windows/s (autoencoder, vae); ONNX scoring >= "
              "300,000 windows/s and >= 2x eager torch; latency p99 < 1 ms.", "",
              "Peak memory of scoring with `autoencoder` (fresh process each; the rise of the "
              "peak resident set over the resident set just before the call; the input, "
              "float64, is already in memory):", "",
              "| rows | path | input MB | peak rise MB | rise less the output MB |",
              "|---|---|---|---|---|"]
    for m in memory:
        lines.append(f"| {m['rows']:,} | {m['path']} | {m['input_mb']:.0f} | "
                     f"{m['peak_rise_mb']:.0f} | {m['rise_less_output_mb']:.0f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rows and repeats")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--out-dir", type=Path, default=None)
    args = parser.parse_args()
    root = Path(__file__).resolve().parent / "results"
    out = args.out_dir or (root / "quick" if args.quick else root)
    out.mkdir(parents=True, exist_ok=True)
    train_rows, score_rows, repeats = (20_000, 50_000, 2) if args.quick else (60_000, 300_000, 3)
    results = []
    for method in args.methods.split(","):
        print(f"{method} ...", flush=True)
        results.append(measure_method(method, train_rows, score_rows, repeats))
    memory = measure_memory([100_000, 1_000_000] if args.quick else [1_000_000, 10_000_000], out)
    info = machine()
    command = "PYTHONPATH=src python benchmarks/bench_deep.py" + (" --quick" if args.quick else "")
    (out / "deep.json").write_text(json.dumps({"machine": info, "results": results,
                                               "memory": memory}, indent=2))
    (out / "deep.md").write_text(markdown(results, memory, command, info))
    print((out / "deep.md").read_text())


if __name__ == "__main__":
    main()
