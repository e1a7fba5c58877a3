"""The Spark engine against the local engine, on this machine, through the paths a user takes.

For each method and row count: a Parquet file of ``rows`` x 4 channels (float64, a time column,
one series or ``--series`` series), a model fitted locally on its first 10,000 rows of each
series, then, each repeat in turn:

- **local**: ``Model.detect(pd.read_parquet(path))`` (what ``vigil detect`` computes; the
  scores, flags and events) and ``Model.score`` of the same frame (scores only);
- **spark**: ``vigil.engines.spark.score(spark.read.parquet(path), model)`` written to Parquet
  (``local[2]``, the session started once, before timing).

Quoted: median seconds, rows/s, and Spark over local detect and over local score. Peak driver
memory (the driver process's resident set, ``VmHWM``) is read after the Spark runs.

Writes ``benchmarks/results/spark.md`` and ``spark.json``.

    python benchmarks/bench_spark.py --rows 1000000 10000000 --repeats 2   # the committed numbers
    python benchmarks/bench_spark.py --quick          # 200k rows, one repeat
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _measure  # noqa: E402

import vigil  # noqa: E402
from vigil.engines import spark as vs  # noqa: E402


def write_data(path: Path, rows: int, series: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(rows, 4))
    values[::10_000] += 8
    per = rows // series
    frame = pd.DataFrame(values, columns=["a", "b", "c", "d"])
    frame.insert(0, "timestamp", pd.Timestamp("2024-01-01") + pd.to_timedelta(
        np.arange(rows) % per * 60, unit="s"))
    if series > 1:
        frame.insert(1, "machine", np.repeat([f"m{i}" for i in range(series)], per)[:rows])
    frame.to_parquet(path, index=False)


def run(spark, method: str, rows: int, series: int, repeats: int, tmp: Path) -> dict:
    path = tmp / f"data-{rows}-{series}.parquet"
    if not path.exists():
        write_data(path, rows, series)
    frame = pd.read_parquet(path)
    series_column = "machine" if series > 1 else None
    train = frame.groupby(series_column).head(10_000) if series_column else frame.head(10_000)
    model = vigil.Model(method, series_column=series_column).fit(train)
    timings = {"local_detect": [], "local_score": [], "spark": []}
    for _ in range(repeats):
        start = time.perf_counter()
        model.detect(pd.read_parquet(path))
        timings["local_detect"].append(time.perf_counter() - start)
        start = time.perf_counter()
        model.score(pd.read_parquet(path))
        timings["local_score"].append(time.perf_counter() - start)
        out = tmp / "out.parquet"
        shutil.rmtree(out, ignore_errors=True)
        start = time.perf_counter()
        with vs.executor_errors():
            vs.score(spark.read.parquet(str(path)), model).write.parquet(str(out))
        timings["spark"].append(time.perf_counter() - start)
    medians = {k: statistics.median(v) for k, v in timings.items()}
    return {"method": method, "rows": rows, "series": series, "repeats": timings,
            "median_s": medians, "spark_over_detect": medians["spark"] / medians["local_detect"],
            "spark_over_score": medians["spark"] / medians["local_score"],
            "driver_peak_mb": _measure.vm_kb("VmHWM") / 1024}


def table(results: list[dict], args: argparse.Namespace) -> str:
    info = _measure.machine()
    lines = [f"# The Spark engine against the local engine ({info.get('cpu', '')}, "
             f"{info.get('cores', '?')} cores, local[2])", "",
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. Medians of {args.repeats} "
             f"run(s). Command: `python benchmarks/bench_spark.py"
             f"{' --quick' if args.quick else ''}`.", "",
             "| method | rows | series | local detect s | local score s | spark s | spark rows/s "
             "| spark / local detect | spark / local score |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        m = r["median_s"]
        lines.append(f"| {r['method']} | {r['rows']:,} | {r['series']} | {m['local_detect']:.2f} "
                     f"| {m['local_score']:.2f} | {m['spark']:.2f} | {r['rows'] / m['spark']:,.0f} "
                     f"| {r['spark_over_detect']:.2f} | {r['spark_over_score']:.2f} |")
    lines += ["", f"Peak driver memory after the runs: {max(r['driver_peak_mb'] for r in results):,.0f} MB."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=None)
    parser.add_argument("--methods", default="zscore,robust_zscore,iqr,isolation_forest")
    parser.add_argument("--series", type=int, nargs="+", default=[1],
                        help="series counts to run each row count with (rows split evenly)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out-dir", type=Path, default=None)
    args = parser.parse_args()
    if args.quick:
        args.rows, args.repeats = args.rows or [200_000], 1
    args.rows = args.rows or [1_000_000, 10_000_000]
    out = args.out_dir or Path(__file__).resolve().parent / "results" / (
        "quick" if args.quick else "")
    out.mkdir(parents=True, exist_ok=True)
    warnings.simplefilter("ignore")
    spark = vs.session("local[2]", conf={"spark.sql.shuffle.partitions": "4",
                                         "spark.driver.memory": "6g"})
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for rows in args.rows:
            for series in args.series:
                for method in args.methods.split(","):
                    results.append(run(spark, method, rows, series, args.repeats, Path(tmp)))
                print(json.dumps({k: v for k, v in results[-1].items() if k != "repeats"}),
                      flush=True)
    (out / "spark.json").write_text(json.dumps({"machine": _measure.machine(),
                                                "results": results}, indent=1))
    (out / "spark.md").write_text(table(results, args))
    print((out / "spark.md").read_text())


if __name__ == "__main__":
    main()
