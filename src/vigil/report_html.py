"""A detection result as one self-contained HTML file (``vigil detect|evaluate --report``).

The page holds everything it shows: the plots are inline PNGs (``data:`` URIs drawn by
:func:`vigil.report.plot`), the style is inline, and a Content-Security-Policy forbids any other
source, so it opens the same offline, attached to an e-mail or years later. It shows what was
run (file, method, threshold and how it was fitted, alarm rules), a summary (anomaly events,
the rows inside them), the plots of every channel with the score and threshold beneath, the
table of the model's anomaly events (:func:`vigil.alarms.event_table`: start, end, duration,
rows, peak score and the channel that drove it), and the metrics when ``vigil evaluate``
computed them.

Every string that comes from the user (file names, column names, series names) is HTML-escaped.
"""

from __future__ import annotations

import base64
import html
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vigil.alarms import event_table
from vigil.errors import DataError
from vigil.report import duration_text, plot, roles, rules_text

#: Events listed in the table; beyond this the ones with the highest peak score are kept.
MAX_EVENTS = 200
#: Channels per figure (each figure repeats the score panel beneath its channels).
CHANNELS_PER_FIGURE = 10
#: Channels plotted at most; beyond this the ones that drove the most anomalies are kept.
MAX_PLOTTED_CHANNELS = 60

# Only inline styles, inline scripts and data: images may load: no network at view time.
_CSP = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
        "script-src 'unsafe-inline'; base-uri 'none'; form-action 'none'")

_STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;
  color:#1f2328;margin:0;background:#f6f8fa}
main{max-width:1320px;margin:0 auto;padding:24px 28px 48px;background:#fff;min-height:100vh}
h1{font-size:22px;margin:0 0 4px}
h2{font-size:17px;margin:28px 0 10px;border-bottom:1px solid #d0d7de;padding-bottom:4px}
.sub{color:#57606a;margin:0 0 16px;word-break:break-all}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin:16px 0}
.card{border:1px solid #d0d7de;border-radius:6px;padding:10px 14px;min-width:150px}
.card b{display:block;font-size:20px}.card span{color:#57606a;font-size:12px}
.card.alert b{color:#cf222e}
dl.kv{display:grid;grid-template-columns:max-content 1fr;gap:4px 16px;margin:0}
dl.kv dt{color:#57606a}dl.kv dd{margin:0;word-break:break-word}
figure{margin:12px 0}figure img{max-width:100%;height:auto;border:1px solid #d0d7de}
figcaption{color:#57606a;font-size:12px}
table{border-collapse:collapse;font-size:13px;font-variant-numeric:tabular-nums}
th,td{border:1px solid #d0d7de;padding:4px 10px;text-align:left}
th{background:#f6f8fa}td.num{text-align:right}
tbody tr:nth-child(even){background:#fbfcfd}
.note{color:#57606a;font-size:12px;max-width:900px}
.warn{color:#9a6700}
footer{margin-top:32px;color:#8c959f;font-size:12px}
"""

# Marks on <body> how many images decoded (``data-images-ok="2/2"``), for automated checks.
_SCRIPT = """
window.addEventListener("load", function () {
  var images = document.images, ok = 0;
  for (var i = 0; i < images.length; i++) { if (images[i].naturalWidth > 0) ok++; }
  document.body.setAttribute("data-images-ok", ok + "/" + images.length);
});
"""


def write_report(result: pd.DataFrame, path: str | os.PathLike[str], *, model: Any = None,
                 metrics: Mapping[str, Any] | None = None,
                 source: str | os.PathLike[str] | None = None, title: str | None = None,
                 notes: Sequence[str] = ()) -> Path:
    """Write ``result`` (from ``Model.detect``) as a self-contained HTML report; return its path.

    ``model`` (the fitted model) adds the threshold and how it was fitted; ``metrics`` (the
    dict of ``vigil evaluate``) adds the metrics table; ``source`` names the data file;
    ``title`` replaces the heading and ``notes`` are extra lines under the summary.
    """
    path = Path(path)
    path.write_text(render(result, model=model, metrics=metrics, source=source, title=title,
                           notes=notes), encoding="utf-8")
    return path


def render(result: pd.DataFrame, *, model: Any = None, metrics: Mapping[str, Any] | None = None,
           source: str | os.PathLike[str] | None = None, title: str | None = None,
           notes: Sequence[str] = ()) -> str:
    """The HTML text of :func:`write_report`."""
    from vigil import __version__

    meta = roles(result)
    method = meta.get("method") or getattr(model, "method", None) or "unknown method"
    name = os.fspath(source) if source is not None else "data"
    heading = title or f"vigil report: {Path(name).name}"
    events = _events(result, meta)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(heading)}</title><style>{_STYLE}</style></head>",
        "<body><main>",
        f"<h1>{_e(heading)}</h1>",
        f'<p class="sub">{_e(name)} &middot; method <b>{_e(method)}</b> &middot; '
        f"{len(result):,} rows &middot; {len(meta['channels'])} channel"
        f"{'s' if len(meta['channels']) != 1 else ''}</p>",
        _summary(result, meta, events, notes),
        _threshold_section(result, model),
    ]
    if metrics:
        parts.append(_metrics_section(metrics))
    parts.append(_plots_section(result, meta, len(events)))
    parts.append(_events_table(events, meta))
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts += [f"<footer>Written by vigil {_e(__version__)} on {stamp}. Self-contained: "
              "this file loads nothing from the network.</footer>",
              f"</main><script>{_SCRIPT}</script></body></html>", ""]
    return "\n".join(parts)


# -- events ------------------------------------------------------------------------------------
def _events(result: pd.DataFrame, meta: Mapping[str, Any]) -> pd.DataFrame:
    """The model's events (:func:`vigil.alarms.event_table` of ``result``, its column roles
    ``meta``): the ``event`` column ``Model.detect`` writes, never re-derived from flags."""
    if "event" not in result:
        raise DataError("the result has no 'event' column: give the frame Model.detect returns "
                        "(or a scores file vigil wrote, read back).")
    view = result.copy(deep=False)
    view.attrs = {"vigil": dict(meta)}
    return event_table(view)


# -- sections ----------------------------------------------------------------------------------
def _summary(result: pd.DataFrame, meta: Mapping[str, Any], events: pd.DataFrame,
             notes: Sequence[str]) -> str:
    n = len(result)
    flagged = int(result["is_anomaly"].sum())
    share = f"{100 * flagged / n:.2f}% of rows" if n else "no rows"
    cards = [("anomaly events", f"{len(events):,}", "by the model's alarm rules",
              len(events) > 0),
             ("rows inside events", f"{flagged:,}", share, flagged > 0),
             ("rows", f"{n:,}", _span(result, meta), False)]
    label = meta.get("label_column")
    if label and label in result:
        truth = result[label].to_numpy() == 1
        windows = int(np.sum(np.diff(np.r_[0, truth.astype(np.int8), 0]) == 1))
        cards.append(("labelled anomaly rows", f"{int(truth.sum()):,}",
                      f"in {windows:,} labelled window{'s' if windows != 1 else ''}", False))
    if "driver" in result and flagged:
        top = result.loc[result["is_anomaly"].to_numpy(bool), "driver"].value_counts()
        cards.append(("top driver", _e(top.index[0]), f"drove {int(top.iloc[0]):,} of the "
                      f"{flagged:,} anomalous rows", False))
    out = ['<h2>Summary</h2><div class="cards">']
    for caption, value, detail, alert in cards:
        out.append(f'<div class="card{" alert" if alert else ""}"><span>{_e(caption)}</span>'
                   f"<b>{value}</b><span>{_e(detail)}</span></div>")
    out.append("</div>")
    channels = ", ".join(str(c) for c in meta["channels"])
    out.append(f'<dl class="kv"><dt>channels</dt><dd>{_e(channels)}</dd>')
    for key in ("time_column", "label_column", "series_column"):
        if meta.get(key):
            out.append(f"<dt>{_e(key.replace('_', ' '))}</dt><dd>{_e(meta[key])}</dd>")
    out.append("</dl>")
    out += [f'<p class="note">{_e(note)}</p>' for note in notes]
    return "\n".join(out)


def _threshold_section(result: pd.DataFrame, model: Any) -> str:
    value = float(result["threshold"].iloc[0]) if len(result) else math.nan
    cut = f"a score above <b>{_num(value)}</b> is an anomaly"
    if model is not None and hasattr(model, "models_") and len(result):
        low, high = float(result["threshold"].min()), float(result["threshold"].max())
        cut = (f"each series has its own: a score above its threshold (<b>{_num(low)}</b> to "
               f"<b>{_num(high)}</b>) is an anomaly")
    out = ['<h2>Threshold</h2><dl class="kv">', f"<dt>cut-off</dt><dd>{cut}</dd>"]
    if model is not None and hasattr(model, "models_"):  # a bundle: a model per series
        out.append(f"<dt>models</dt><dd>one {_e(model.method)} model per series of "
                   f"{_e(model.series_column)} ({len(model.models_)} series), each with its own "
                   "threshold fitted on its own training rows</dd>")
        out.append(f"<dt>alarm rules</dt><dd>{_e(rules_text(model.alarms))}</dd>")
    elif model is not None:
        if getattr(model, "params", None):
            params = ", ".join(f"{k}={v!r}" for k, v in model.params.items())
            out.append(f"<dt>method parameters</dt><dd>{_e(params)}</dd>")
        described = dict(model.threshold.to_dict())
        name, params = described.pop("name", "?"), described.pop("params", {}) or {}
        described.pop("value", None)
        fallback = described.pop("fallback_used", False)
        args = ", ".join(f"{k}={v}" for k, v in params.items())
        how = f"{name}({args})" if args else str(name)
        training = getattr(model, "training_", None) or {}
        fitted_on = ""
        if training.get("rows") and name != "fixed":
            fitted_on = f" on the model's scores of {int(training['rows']):,} training rows"
            if training.get("start") and training.get("end"):
                fitted_on += f" ({training['start']} to {training['end']})"
        out.append(f"<dt>fitted by</dt><dd>{_e(how)}{_e(fitted_on)}</dd>")
        for key, item in described.items():
            out.append(f"<dt>{_e(str(key).replace('_', ' '))}</dt><dd>{_e(_fmt(item))}</dd>")
        if fallback:
            out.append(f'<dt>note</dt><dd class="warn">{_e(name)} could not be fitted as asked '
                       "(too few or unsuitable training scores): a fallback cut-off is used "
                       "(the run's warning says which)</dd>")
        out.append(f"<dt>alarm rules</dt><dd>{_e(rules_text(model.alarms))}</dd>")
    out.append("</dl>")
    return "\n".join(out)


def _metrics_section(metrics: Mapping[str, Any]) -> str:
    from vigil.evaluation.metrics import ORACLE_NOTE
    from vigil.evaluation.range_based import POINT_ADJUST_NOTE

    rows = []
    for key, value in metrics.items():
        shown = f"{key} (optimistic)" if key == "PA-F1" else str(key)
        rows.append(f'<tr><td>{_e(shown)}</td><td class="num">{_e(_fmt(value))}</td></tr>')
    return "\n".join([
        '<h2>Metrics</h2><table class="metrics"><thead><tr><th>metric</th><th>value</th></tr>'
        "</thead><tbody>", *rows, "</tbody></table>",
        f'<p class="note">{_e(POINT_ADJUST_NOTE)}</p>',
        f'<p class="note">{_e(ORACLE_NOTE)}</p>'])


def _plots_section(result: pd.DataFrame, meta: Mapping[str, Any], events: int) -> str:
    """The plots, ``CHANNELS_PER_FIGURE`` channels a figure, each with the score beneath
    (``events``: how many anomaly events, for the titles)."""
    out = ["<h2>Plots</h2>"]
    channels = list(meta["channels"])
    if not len(result) or not channels:
        return out[0] + '<p class="note">Nothing to plot: no rows.</p>'
    shown = _plotted_channels(result, channels)
    if len(shown) < len(channels):
        out.append(f'<p class="note">{len(channels)} channels: the {len(shown)} that drove the '
                   "most anomalies are plotted.</p>")
    out.append('<p class="note">Each channel over time, its anomalies in red (on the channel '
               "that drove each one, where the method can tell), labelled anomaly windows "
               "shaded orange; the score with its threshold (dashed) beneath, each anomaly "
               "event shaded red.</p>")
    chunks = [shown[i:i + CHANNELS_PER_FIGURE] for i in range(0, len(shown), CHANNELS_PER_FIGURE)]
    with tempfile.TemporaryDirectory(prefix="vigil-report-") as tmp:
        for number, chunk in enumerate(chunks, 1):
            view = result.copy(deep=False)
            view.attrs = {"vigil": {**meta, "channels": chunk}}
            caption = (f"channels {', '.join(map(str, chunk))}" if len(chunks) == 1 else
                       f"figure {number} of {len(chunks)}: {', '.join(map(str, chunk))}")
            png = Path(tmp) / f"plot{number}.png"
            plot(view, png, title=None if len(chunks) == 1 else
                 f"{events} anomaly event{'s' if events != 1 else ''} "
                 f"({int(result['is_anomaly'].sum())} rows of "
                 f"{len(result)}; figure {number} of {len(chunks)})")
            data = base64.b64encode(png.read_bytes()).decode("ascii")
            below = f"<figcaption>{_e(caption)}</figcaption>" if len(chunks) > 1 else ""
            out.append(f'<figure><img src="data:image/png;base64,{data}" '
                       f'alt="{_e(caption)}">{below}</figure>')
    return "\n".join(out)


def _plotted_channels(result: pd.DataFrame, channels: list[Any]) -> list[Any]:
    if len(channels) <= MAX_PLOTTED_CHANNELS:
        return channels
    counts = (result.loc[result["is_anomaly"].to_numpy(bool), "driver"].value_counts()
              if "driver" in result else pd.Series(dtype=int))
    rank = sorted(range(len(channels)), key=lambda i: (-int(counts.get(channels[i], 0)), i))
    keep = sorted(rank[:MAX_PLOTTED_CHANNELS])
    return [channels[i] for i in keep]


def _events_table(events: pd.DataFrame, meta: Mapping[str, Any]) -> str:
    """The table of anomaly events (at most ``MAX_EVENTS``: those with the highest peaks)."""
    out = ["<h2>Anomaly events</h2>"]
    if not len(events):
        return out[0] + ('<p class="note">No anomaly events: no run of rows above the threshold '
                         "passed the alarm rules.</p>")
    shown = events
    if len(events) > MAX_EVENTS:
        keep = np.argsort(-events["peak score"].to_numpy(float), kind="stable")[:MAX_EVENTS]
        shown = events.iloc[np.sort(keep)]
        out.append(f'<p class="note">Showing the {MAX_EVENTS} events with the highest peak '
                   f"score of {len(events):,}, in time order (every row with its event "
                   "number: <code>--out</code>).</p>")
    series_col = meta.get("series_column")
    head = ["#"] + (["series"] if series_col else []) + ["start", "end", "duration", "rows",
                                                          "peak score", "driver at peak"]
    out.append('<table class="events"><thead><tr>' + "".join(f"<th>{_e(h)}</th>" for h in head)
               + "</tr></thead><tbody>")
    out += [_event_row(event, series_col, bool(meta.get("time_column")))
            for event in shown.to_dict("records")]  # per-column types, unlike iterrows
    out.append("</tbody></table>")
    if "driver" not in events:
        out.append('<p class="note">This method does not tell which channel drove a score.</p>')
    return "\n".join(out)


def _event_row(event: Mapping[str, Any], series_col: str | None, timed: bool) -> str:
    """One ``<tr>`` of the events table (start and end as times, else as row labels)."""
    def where(value: Any) -> str:
        return str(value) if timed else f"row {value}"

    driver = event.get("driver")
    cells = [f'<td class="num">{int(event["event"])}</td>']
    if series_col:
        cells.append(f"<td>{_e(event[series_col])}</td>")
    cells += [f"<td>{_e(where(event['start']))}</td>", f"<td>{_e(where(event['end']))}</td>",
              f'<td class="num">{_e(duration_text(event["duration"]))}</td>',
              f'<td class="num">{int(event["rows"]):,}</td>',
              f'<td class="num">{_num(event["peak score"])}</td>',
              f"<td>{_e(driver) if driver is not None else '&mdash;'}</td>"]
    return "<tr>" + "".join(cells) + "</tr>"


# -- formatting --------------------------------------------------------------------------------
def _span(result: pd.DataFrame, meta: Mapping[str, Any]) -> str:
    time_col = meta.get("time_column")
    if not len(result) or not time_col or time_col not in result:
        return "in row order"
    times = result[time_col]
    return f"{times.min()} to {times.max()}"


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _num(value: Any) -> str:
    value = float(value)
    return "nan" if math.isnan(value) else f"{value:.4g}"


def _fmt(value: Any) -> str:
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return "nan" if math.isnan(value) else f"{float(value):.4f}" if abs(value) < 1e4 \
            else f"{float(value):.4g}"
    return str(value)
