"""How the Spark engine's cost grows, on this machine, through the paths a user takes.

**rows**: zscore and isolation_forest on one series of 1M, 10M and 100M rows x 4 channels
(Parquet in, written in 1M-row pieces; results written to Parquet), each size in a fresh
process with its own ``local[2]`` session (started, and warmed by scoring 10,000 rows, before
timing), the model fitted locally on the first 10,000 rows. Quoted: seconds, microseconds per
row (the target: flat within 1.5 x from 10M to 100M rows) and the peak resident memory of the
Python driver and of the JVM (``VmHWM``; in local mode the JVM runs the executors too, within
``spark.driver.memory``).

**fleet**: ``series`` series x ``rows`` rows each (default 1,000 x 10,000), one ``auto`` model
per series: ``vigil.spark.fit(per_series=True)`` on the first 5,000 rows of each series (on the
executors), then ``score`` of every row written to Parquet, end to end. The reference, in the
same run: fitting ``sample`` of the same series one by one locally (``vigil.Model("auto")``
on the same rows), per series.

Writes ``benchmarks/results/spark_scaling.md`` and ``spark_scaling.json``.

    python benchmarks/bench_spark_scaling.py                       # both parts, the committed numbers
    python benchmarks/bench_spark_scaling.py --part rows --rows 1000000 10000000
    python benchmarks/bench_spark_scaling.py --part fleet --series 100 --quick
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _measure  # noqa: E402

PIECE = 1_000_000


def write_rows(path: Path, rows: int, series: int = 1, seed: int = 0) -> None:
    """``rows`` x 4 normal channels with a spike every 10,000 rows, a minute apart, in
    ``series`` series of equal length (a ``machine`` column when more than one), written a
    million rows at a time so that no size needs the whole table in memory."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    per = rows // series
    writer = None
    for start in range(0, rows, PIECE):
        n = min(PIECE, rows - start)
        values = rng.normal(size=(n, 4))
        at = np.arange(start, start + n)
        values[at % 10_000 == 0] += 8
        frame = pd.DataFrame(values, columns=["a", "b", "c", "d"])
        frame.insert(0, "timestamp", pd.Timestamp("2024-01-01")
                     + pd.to_timedelta(at % per * 60, unit="s"))
        if series > 1:
            frame.insert(1, "machine", [f"m{i:04d}" for i in at // per])
        table = pa.Table.from_pandas(frame, preserve_index=False)
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table)
    writer.close()


def _session():
    from vigil.engines import spark as vs

    return vs.session("local[2]", conf={"spark.sql.shuffle.partitions": "4",
                                        "spark.driver.memory": "6g"})


def _jvm_peak_mb(spark) -> float:
    pid = spark.sparkContext._gateway.proc.pid
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def rows_child(path: str, method: str, rows: int) -> dict:
    """One size, one method, in this (fresh) process."""
    import vigil
    from vigil.engines import spark as vs

    warnings.simplefilter("ignore")
    first = _head(path)
    model = vigil.Model(method).fit(first)
    spark = _session()
    out = Path(path).with_name(f"out-{method}-{rows}.parquet")
    vs.score(spark.createDataFrame(first), model).collect()  # JVM and Python workers warm
    start = time.perf_counter()
    with vs.executor_errors():
        vs.score(spark.read.parquet(path), model).write.parquet(str(out))
    seconds = time.perf_counter() - start
    written = spark.read.parquet(str(out)).count()
    shutil.rmtree(out, ignore_errors=True)
    assert written == rows, (written, rows)
    return {"method": method, "rows": rows, "seconds": seconds,
            "us_per_row": seconds / rows * 1e6,
            "python_driver_peak_mb": _measure.vm_kb("VmHWM") / 1024,
            "jvm_peak_mb": _jvm_peak_mb(spark)}


def _head(path: str) -> pd.DataFrame:
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).read_row_group(0).to_pandas().head(10_000)


def fleet_child(path: str, series: int, rows: int, train_rows: int, sample: int) -> dict:
    """The fleet, end to end on Spark, then ``sample`` series fitted one by one locally."""
    import vigil
    from vigil.engines import spark as vs

    warnings.simplefilter("ignore")
    spark = _session()
    df = spark.read.parquet(path)
    out = Path(path).with_name("out-fleet.parquet")
    start = time.perf_counter()
    with vs.executor_errors():
        bundle = vs.fit(df, "auto", series_column="machine", train_rows=train_rows,
                        per_series=True)
        fitted = time.perf_counter() - start
        vs.score(df, bundle).write.parquet(str(out))
    seconds = time.perf_counter() - start
    written = spark.read.parquet(str(out)).count()
    shutil.rmtree(out, ignore_errors=True)
    assert written == series * rows and len(bundle.models_) == series
    frame = pd.read_parquet(path)
    names = frame["machine"].unique()[:sample]
    start = time.perf_counter()
    for name in names:
        part = frame[frame["machine"] == name].head(train_rows)
        vigil.Model("auto", series_column="machine").fit(part)
    local = (time.perf_counter() - start) / len(names)
    return {"series": series, "rows_per_series": rows, "train_rows": train_rows,
            "seconds": seconds, "fit_seconds": fitted, "spark_s_per_series": seconds / series,
            "spark_fit_s_per_series": fitted / series, "local_fit_s_per_series": local,
            "local_sample": len(names), "python_driver_peak_mb": _measure.vm_kb("VmHWM") / 1024,
            "jvm_peak_mb": _jvm_peak_mb(spark)}


def _child(*args: str) -> dict:
    done = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True,
                          text=True)
    if done.returncode:
        raise SystemExit(f"child {args} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(rows: list[dict], fleet: dict | None, command: str) -> str:
    info = _measure.machine()
    lines = [f"# How the Spark engine's cost grows ({info.get('cpu', '')}, "
             f"{info.get('cores', '?')} cores, local[2])", "",
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. Command: `{command}`.", ""]
    if rows:
        lines += ["| method | rows | spark s | us per row | per row / 10M's | Python driver peak MB "
                  "| JVM peak MB |", "|---|---|---|---|---|---|---|"]
        for r in rows:
            ref = next((x for x in rows if x["method"] == r["method"] and x["rows"] == 10_000_000),
                       None)
            ratio = f"{r['us_per_row'] / ref['us_per_row']:.2f}" if ref else "-"
            lines.append(f"| {r['method']} | {r['rows']:,} | {r['seconds']:.1f} | "
                         f"{r['us_per_row']:.2f} | {ratio} | {r['python_driver_peak_mb']:,.0f} | "
                         f"{r['jvm_peak_mb']:,.0f} |")
        lines.append("")
    if fleet:
        f = fleet
        lines += [f"Fleet: {f['series']:,} series x {f['rows_per_series']:,} rows, one auto model "
                  f"per series fitted on its first {f['train_rows']:,} rows, then every row "
                  f"scored and written: **{f['seconds']:.0f} s** end to end "
                  f"({f['fit_seconds']:.0f} s fitting), {f['spark_s_per_series']:.3f} s per series "
                  f"({f['spark_fit_s_per_series']:.3f} s of it fitting) against "
                  f"{f['local_fit_s_per_series']:.3f} s to fit one series locally (mean of "
                  f"{f['local_sample']}): Spark fits "
                  f"{f['local_fit_s_per_series'] / f['spark_fit_s_per_series']:.2f} x as many "
                  f"series a second. Peak memory: Python driver "
                  f"{f['python_driver_peak_mb']:,.0f} MB, JVM {f['jvm_peak_mb']:,.0f} MB.", ""]
    return "\n".join(lines)


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        kind, *rest = sys.argv[2:]
        result = (rows_child(rest[0], rest[1], int(rest[2])) if kind == "rows" else
                  fleet_child(rest[0], *map(int, rest[1:])))
        print(json.dumps(result))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("rows", "fleet", "both"), default="both")
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000,
                                                                 100_000_000])
    parser.add_argument("--methods", default="zscore,isolation_forest")
    parser.add_argument("--series", type=int, default=1000)
    parser.add_argument("--series-rows", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true", help="fleet of 20 x 2,000 rows; 1M rows")
    parser.add_argument("--out-dir", type=Path, default=None)
    args = parser.parse_args()
    if args.quick:
        args.rows, args.series, args.series_rows = [1_000_000], 20, 2_000
    out = args.out_dir or Path(__file__).resolve().parent / "results"
    out.mkdir(parents=True, exist_ok=True)
    rows, fleet = [], None
    with tempfile.TemporaryDirectory() as tmp:
        if args.part in ("rows", "both"):
            for n in args.rows:
                path = Path(tmp) / f"rows-{n}.parquet"
                write_rows(path, n)
                for method in args.methods.split(","):
                    rows.append(_child("rows", str(path), method, str(n)))
                    print(json.dumps(rows[-1]), flush=True)
                path.unlink()
        if args.part in ("fleet", "both"):
            path = Path(tmp) / "fleet.parquet"
            write_rows(path, args.series * args.series_rows, args.series)
            fleet = _child("fleet", str(path), str(args.series), str(args.series_rows),
                           str(args.series_rows // 2), "20")
            print(json.dumps(fleet), flush=True)
    command = "python benchmarks/bench_spark_scaling.py " + " ".join(sys.argv[1:])
    (out / "spark_scaling.json").write_text(json.dumps(
        {"machine": _measure.machine(), "rows": rows, "fleet": fleet}, indent=1))
    (out / "spark_scaling.md").write_text(table(rows, fleet, command.strip()))
    print((out / "spark_scaling.md").read_text())


if __name__ == "__main__":
    main()
