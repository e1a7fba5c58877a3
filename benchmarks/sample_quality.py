"""Detection quality of every vigil method on the bundled sample data (``vigil/data/sensors.csv``).

The file's first ``sample_data.TRAIN_ROWS`` rows (a week) are clean; the rest hold twelve labelled
anomalies, two of each kind. Every method configuration is run under two protocols:

``train``   fit on the first TRAIN_ROWS rows (``vigil detect --train-rows``), flag every row with
            the model's own fitted threshold (POT by default), evaluate the rows after TRAIN_ROWS.
``detect``  fit on all rows (``vigil detect`` without ``--train-rows``: the anomalies are in the
            fitting data), evaluate the rows after TRAIN_ROWS.

Per anomaly kind: event recall (events with at least one flagged row inside them) and row recall.
Overall: point precision and recall, event recall, false-positive rows, and AUC-PR
(``sklearn.metrics.average_precision_score``) of the raw score, threshold-free. Writes a Markdown
report and a JSON file next to it.

    .venv/bin/python benchmarks/sample_quality.py
    .venv/bin/python benchmarks/sample_quality.py --methods robust_zscore isolation_forest:window=60
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from vigil.detectors import parse_param_value

PROTOCOLS = ("train", "detect")
#: Extra configurations run by default on top of every registered method with its defaults.
EXTRA_CONFIGS = ("isolation_forest:window=10", "isolation_forest:window=60")


def parse_config(text: str) -> tuple[str, dict[str, Any]]:
    """``"method"`` or ``"method:name=value,name=value"`` -> (method, params)."""
    method, _, rest = text.partition(":")
    params: dict[str, Any] = {}
    for pair in filter(None, (p.strip() for p in rest.split(","))):
        name, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"bad parameter {pair!r} in {text!r}: expected name=value")
        params[name.strip()] = parse_param_value(value.strip())
    return method.strip(), params


def default_configs() -> list[str]:
    import vigil

    return list(vigil.methods()) + list(EXTRA_CONFIGS)


def evaluate(flags: np.ndarray, scores: np.ndarray, labels: np.ndarray,
             events: list[tuple[str, int, int]], first: int, kinds: list[str]) -> dict[str, Any]:
    """Metrics on rows ``first:`` (event positions are absolute row numbers)."""
    from sklearn.metrics import average_precision_score

    f, s, y = flags[first:], scores[first:], labels[first:].astype(bool)
    tp = int(np.count_nonzero(f & y))
    flagged = int(np.count_nonzero(f))
    per_kind: dict[str, Any] = {}
    hits_all = []
    for kind in kinds:
        runs = [(a, b) for k, a, b in events if k == kind and a >= first]
        hits = [bool(flags[a:b].any()) for a, b in runs]
        rows = sum(b - a for a, b in runs)
        caught = sum(int(np.count_nonzero(flags[a:b])) for a, b in runs)
        hits_all += hits
        per_kind[kind] = {
            "events": len(runs),
            "events_caught": int(sum(hits)),
            "event_recall": sum(hits) / len(runs) if runs else None,
            "rows": rows,
            "rows_flagged": caught,
            "row_recall": caught / rows if rows else None,
            # first flagged row after the event's start, per event (None: missed)
            "delays": [int(np.argmax(flags[a:b])) if flags[a:b].any() else None
                       for a, b in runs],
        }
    positives = int(y.sum())
    return {
        "rows": int(len(f)),
        "flagged": flagged,
        "true_positive_rows": tp,
        "false_positive_rows": flagged - tp,
        "precision": tp / flagged if flagged else None,
        "recall": tp / positives if positives else None,
        "event_recall": sum(hits_all) / len(hits_all) if hits_all else None,
        "events_caught": int(sum(hits_all)),
        "events": len(hits_all),
        "auc_pr": float(average_precision_score(y, s)) if positives else None,
        "per_kind": per_kind,
    }


def run_one(config: str, protocol: str, ds: Any, train_rows: int,
            events: list[tuple[str, int, int]], kinds: list[str]) -> dict[str, Any]:
    import vigil
    from vigil import io

    method, params = parse_config(config)
    if protocol == "train":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # same columns as the whole file, already checked
            fit_data = io.from_frame(ds.frame.iloc[ds.order[:train_rows]], channels=ds.channels,
                                     time_column=ds.time_column, label_column=ds.label_column)
    else:
        fit_data = ds
    start = time.perf_counter()
    model = vigil.Model(method, **params).fit(fit_data)
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    result = model.detect(ds)
    detect_s = time.perf_counter() - start
    flags = result["is_anomaly"].to_numpy(dtype=bool)[ds.order]
    scores = result["score"].to_numpy(dtype=float)[ds.order]
    labels = ds.labels()[ds.order]
    metrics = evaluate(flags, scores, labels, events, train_rows, kinds)
    metrics.update(
        config=config, method=method, params=params, protocol=protocol,
        threshold=model.threshold_, threshold_details=_jsonable(model.threshold.to_dict()),
        flagged_in_training_part=int(np.count_nonzero(flags[:train_rows])),
        fit_s=round(fit_s, 3), detect_s=round(detect_s, 3),
    )
    return metrics


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f}%"


def _num(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def markdown(results: list[dict[str, Any]], kinds: list[str], command: str,
             header: dict[str, Any]) -> str:
    short = {"spike": "spike", "level_shift": "shift", "drift": "drift", "stuck": "stuck",
             "variance_burst": "var.burst", "broken_correlation": "broken corr."}
    lines = [
        "# vigil detection quality on the bundled sample data",
        "",
        "```",
        command,
        "```",
        "",
        f"Data: `{header['data']}` ({header['rows']} rows, {len(header['channels'])} channels: "
        f"{', '.join(header['channels'])}); evaluation on rows {header['train_rows']}.."
        f"{header['rows'] - 1} ({header['eval_rows']} rows, {header['positive_rows']} labelled "
        f"anomalous, {header['events']} events: two per kind). Threshold: each model's own "
        "fitted threshold (POT, default). vigil "
        f"{header['vigil']}, Python {header['python']}.",
        "",
        f"Protocols: **train** = fit on the first {header['train_rows']} rows (clean; "
        f"`vigil detect --train-rows {header['train_rows']}`); **detect** = fit on all rows, anomalies included "
        "(`vigil detect` default). Both evaluate only the rows after TRAIN_ROWS.",
        "",
        "Per-kind cells: event recall (events with >= 1 flagged row) and, in brackets, row "
        "recall. Precision / recall are per row; FP = false-positive rows in the evaluation part; "
        "AUC-PR = average precision of the raw score (threshold-free; base rate "
        f"{header['positive_rows'] / header['eval_rows']:.3f}).",
    ]
    for protocol in PROTOCOLS:
        rows = [r for r in results if r["protocol"] == protocol]
        lines += ["", f"## Protocol: {protocol}", ""]
        cols = ["method"] + [short.get(k, k) for k in kinds] + [
            "precision", "recall", "event recall", "FP rows", "AUC-PR", "threshold"]
        lines.append("| " + " | ".join(cols) + " |")
        lines.append("|" + "|".join(["---"] + ["---:"] * (len(cols) - 1)) + "|")
        for r in rows:
            cells = [f"`{r['config']}`"]
            for k in kinds:
                pk = r["per_kind"][k]
                cells.append(f"{pk['events_caught']}/{pk['events']} ({_pct(pk['row_recall'])})")
            cells += [_num(r["precision"]), _num(r["recall"]),
                      f"{r['events_caught']}/{r['events']}", str(r["false_positive_rows"]),
                      _num(r["auc_pr"]), f"{r['threshold']:.4g}"]
            lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Flagged rows inside the (clean) training part, for reference:", ""]
    lines.append("| method | " + " | ".join(PROTOCOLS) + " |")
    lines.append("|---|" + "---:|" * len(PROTOCOLS))
    for config in dict.fromkeys(r["config"] for r in results):
        cells = [str(next(r["flagged_in_training_part"] for r in results
                          if r["config"] == config and r["protocol"] == p)) for p in PROTOCOLS]
        lines.append(f"| `{config}` | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", nargs="+", default=None, metavar="CONFIG",
                        help="method configurations, 'method' or 'method:name=value,...' "
                             "(default: every registered method plus "
                             + ", ".join(EXTRA_CONFIGS) + ")")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/sample_quality.md"),
                        help="Markdown report; the JSON goes next to it with a .json suffix")
    args = parser.parse_args(argv)

    import vigil
    from vigil import sample_data

    configs = args.methods or default_configs()
    path = sample_data.path()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = vigil.read(path, label_column="label")
    frame = ds.frame.iloc[ds.order].reset_index(drop=True)
    events = sample_data.events(frame)
    kinds = [k for k in sample_data.KINDS if any(e[0] == k for e in events)]
    train_rows = sample_data.TRAIN_ROWS
    labels = ds.labels()[ds.order]
    assert not labels[:train_rows].any(), "the training part should be clean"

    results = []
    for config in configs:
        for protocol in PROTOCOLS:
            r = run_one(config, protocol, ds, train_rows, events, kinds)
            results.append(r)
            print(f"{config:32s} {protocol:6s} P={_num(r['precision'])} R={_num(r['recall'])} "
                  f"events={r['events_caught']}/{r['events']} FP={r['false_positive_rows']} "
                  f"AUC-PR={_num(r['auc_pr'])}", file=sys.stderr)

    command = "cd /work/main && .venv/bin/python benchmarks/sample_quality.py" + "".join(
        f" {a}" for a in map(shlex.quote, sys.argv[1:] if argv is None else argv))
    header = {
        "data": "vigil/data/sensors.csv", "rows": len(ds), "channels": list(ds.channels),
        "train_rows": train_rows, "eval_rows": len(ds) - train_rows,
        "positive_rows": int(labels[train_rows:].sum()), "events": len(events),
        "vigil": vigil.__version__, "python": platform.python_version(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(markdown(results, kinds, command, header))
    payload = {"command": command, **header, "kinds": kinds,
               "event_list": [list(e) for e in events], "results": _jsonable(results)}
    args.out.with_suffix(".json").write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {args.out} and {args.out.with_suffix('.json')}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
