"""Run every benchmark and collect their tables in ``benchmarks/results/SUMMARY.md``.

    python benchmarks/run.py            # 10 million rows x 4 channels, the committed numbers
    python benchmarks/run.py --quick    # 1 million rows, fewer repeats, to benchmarks/results/quick/

Each benchmark runs as its own subprocess (a fresh interpreter, so one cannot warm or fragment
memory for the next) and writes ``<name>.json`` and ``<name>.md`` to the results folder; this
script then writes ``SUMMARY.md`` from those Markdown tables. A benchmark that fails does not
stop the others; the exit status is then 1 and the summary says which failed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"

#: name -> (script, title in the summary)
BENCHMARKS = {
    "statistical": ("bench_statistical.py", "Statistical detectors (zscore, robust_zscore, iqr, mahalanobis)"),
    "isolation_forest": ("bench_isolation_forest.py", "Isolation Forest"),
}


def command(name: str, args: argparse.Namespace, out_dir: Path) -> list[str]:
    """The benchmark's command line: its own defaults, with the row count and output folder
    passed through (and fewer repeats under ``--quick``)."""
    script, _ = BENCHMARKS[name]
    out = out_dir / f"{name}.json"
    if out.is_relative_to(ROOT):  # the benchmark runs in ROOT; a short path reads better
        out = out.relative_to(ROOT)
    cmd = [sys.executable, str((HERE / script).relative_to(ROOT)), "--rows", str(args.rows),
           "--out", str(out)]
    if args.quick:
        cmd += ["--repeats", "2" if name == "statistical" else "1"]
    return cmd


def run_one(name: str, args: argparse.Namespace, out_dir: Path) -> dict:
    """Run one benchmark; its progress and table stream through to the terminal."""
    cmd = command(name, args, out_dir)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")]))
    print(f"\n== {name}: {' '.join(cmd)}", flush=True)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env)
    seconds = time.perf_counter() - start
    print(f"== {name}: exit {proc.returncode} after {seconds:.0f} s", flush=True)
    return {"returncode": proc.returncode, "seconds": seconds}


def write_summary(out_dir: Path, runs: dict, args: argparse.Namespace) -> Path:
    """``SUMMARY.md``: every benchmark's Markdown table, with a line on when it was made."""
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# vigil benchmarks",
        "",
        f"Collected by `python benchmarks/run.py{' --quick' if args.quick else ''}"
        f"{f' --rows {args.rows}' if args.rows != default_rows(args) else ''}"
        f"{' --summary-only' if args.summary_only else ''}` on {now}. "
        "Each figure is beside a reference measured in the same run; see "
        "`benchmarks/README.md` for what is measured and the targets.",
        "",
    ]
    for name, (_, title) in BENCHMARKS.items():
        md = out_dir / f"{name}.md"
        body = md.read_text().splitlines() if md.exists() else []
        if body and body[0].startswith("# "):  # its own title, one level down
            lines += ["#" + body.pop(0), ""]
        else:
            lines += [f"## {title}", ""]
        run = runs.get(name)
        if run is not None and run["returncode"] != 0:
            lines.append(f"**This run of `{BENCHMARKS[name][0]}` failed (exit "
                         f"{run['returncode']}).**" + (" The table below is from an earlier run."
                                                        if md.exists() else ""))
            lines.append("")
        elif run is None and md.exists():
            made = dt.datetime.fromtimestamp(md.stat().st_mtime, dt.timezone.utc)
            lines.append(f"_Not re-run by this command; table written "
                         f"{made.strftime('%Y-%m-%d %H:%M UTC')}._")
            lines.append("")
        if md.exists():
            lines += body[1:] if body and not body[0].strip() else body
        else:
            lines.append("_No results yet._")
        lines.append("")
    path = out_dir / "SUMMARY.md"
    path.write_text("\n".join(lines).rstrip() + "\n")
    return path


def default_rows(args: argparse.Namespace) -> int:
    return 1_000_000 if args.quick else 10_000_000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=None,
                        help="rows per benchmark (default 10,000,000; 1,000,000 with --quick)")
    parser.add_argument("--quick", action="store_true",
                        help="1M rows and fewer repeats, written to benchmarks/results/quick/")
    parser.add_argument("--only", default=",".join(BENCHMARKS),
                        help="comma-separated benchmarks to run (default: all of "
                             f"{', '.join(BENCHMARKS)}); the summary still includes the others' "
                             "latest tables")
    parser.add_argument("--summary-only", action="store_true",
                        help="run nothing; rewrite SUMMARY.md from the tables already there")
    parser.add_argument("--out-dir", type=Path, default=None,
                        help="results folder (default benchmarks/results, or "
                             "benchmarks/results/quick with --quick)")
    args = parser.parse_args()
    if args.rows is None:
        args.rows = default_rows(args)
    only = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = sorted(set(only) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from "
                     f"{', '.join(BENCHMARKS)}")
    out_dir = args.out_dir.resolve() if args.out_dir else (RESULTS / "quick" if args.quick else RESULTS)
    out_dir.mkdir(parents=True, exist_ok=True)
    if args.quick and args.out_dir is None:  # development numbers are never committed
        (out_dir / ".gitignore").write_text("*\n")

    runs = {} if args.summary_only else {name: run_one(name, args, out_dir) for name in only}
    summary = write_summary(out_dir, runs, args)
    total = sum(r["seconds"] for r in runs.values())
    failed = [n for n, r in runs.items() if r["returncode"] != 0]
    print(f"\nWrote {summary.relative_to(ROOT) if summary.is_relative_to(ROOT) else summary} "
          f"({total / 60:.1f} min)" + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
