"""Tests for vigil.evaluation: each metric on small cases worked out by hand (including the
quirks of TSB-AD 1.5 that vigil keeps on purpose), input checks, and agreement with the
reference implementation, TSB-AD 1.5's ``get_metrics`` and ``find_length_rank``, to 1e-6 on
random scores with varied event layouts and on real series from shared/datasets.

The reference is a test-only dependency installed apart by the README's test command (its
declared requirements pin numpy<2 and pull torch): ``pip install --no-deps tsb-ad==1.5``, with
statsmodels from the ``dev`` extra.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from vigil.errors import ConfigError, DataError
from vigil.evaluation import (
    METRIC_NAMES, POINT_ADJUST_NOTE, affiliation_f1, affiliation_precision_recall, auc_pr,
    auc_roc, best_f1, dominant_period, evaluate_scores, event_f1, point_adjusted_f1, range_f1,
    range_precision_recall, volume_under_surface,
)

DATASETS = Path(__file__).resolve().parents[3] / "shared" / "datasets"
if not DATASETS.is_dir():
    DATASETS = Path("/work/shared/datasets")


# --- point-wise metrics -------------------------------------------------------------------------

def test_auc_roc_pr_and_best_f1_by_hand():
    # Ranked: 0.8 (anomaly), 0.4 (normal), 0.35 (anomaly), 0.1 (normal).
    score, label = [0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]
    assert auc_roc(score, label) == pytest.approx(0.75)  # 3 of 4 (anomaly, normal) pairs right
    assert auc_pr(score, label) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    # Best cut at 0.35: precision 2/3, recall 1; TSB-AD adds 1e-5 to the F1 denominator.
    assert best_f1(score, label) == pytest.approx(2 * (2 / 3) / (5 / 3 + 1e-5), abs=1e-12)


def test_auc_roc_counts_ties_as_half():
    assert auc_roc([1, 1, 0, 1], [1, 0, 0, 0]) == pytest.approx(2 / 3)


# --- VUS ------------------------------------------------------------------------------------------

def test_vus_width_zero_is_one_range_auc_by_hand():
    # Flagging 1, 2, 3, 4 rows: TP 0, 1, 2, 2 of P = 2; the event is hit from the 2nd cut on.
    roc, pr = volume_under_surface([3, 2, 1, 0], [0, 1, 1, 0], 0)
    assert roc == pytest.approx(0.5)  # FPR is 1/2 until TPR reaches 1
    assert pr == pytest.approx(0.5 * 1 / 2 + 0.5 * 2 / 3)


def test_vus_buffer_weights_by_hand():
    # Width 2 puts rows 0 and 3 in the event's buffer with weight sqrt(1 - 1/2); widths 0 and 1
    # have no buffer. Average the three slices.
    score, label = np.array([3.0, 2, 1, 0]), np.array([0, 1, 1, 0])
    b = math.sqrt(0.5)
    tp = np.array([b, 1 + b, 2 + b, 2 + 2 * b])     # flagged rows: 1, 2, 3, 4
    buffer = np.array([b, b, b, 2 * b])
    p_new = 2 + buffer / 2
    tpr = np.r_[0, np.minimum(tp / p_new, 1), 1]
    fpr = np.r_[0, (np.arange(1, 5) - tp) / (4 - p_new), 1]
    roc2 = np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2)
    pr2 = np.sum(np.diff(tpr[:-1]) * tp / np.arange(1, 5))
    roc, pr = volume_under_surface(score, label, 2)
    assert roc == pytest.approx((0.5 + 0.5 + roc2) / 3, abs=1e-12)
    assert pr == pytest.approx((2 * (0.25 + 1 / 3) + pr2) / 3, abs=1e-12)


# --- range-based, event-wise and point-adjusted F1 -----------------------------------------------

def test_range_precision_recall_by_hand():
    label = [0, 1, 1, 1, 1, 0, 0, 0]
    # One run covering half the event: recall 0.2 + 0.8 * 2/4; runs [2,3] (all in) and [7] (out).
    assert range_precision_recall(label, [0, 0, 1, 1, 0, 0, 0, 1]) == pytest.approx((0.5, 0.6))
    # Two runs in one event: cardinality 1/2 halves the overlap reward.
    assert range_precision_recall(label, [0, 1, 0, 1, 0, 0, 0, 0]) == \
        pytest.approx((1.0, 0.2 + 0.8 * 0.5 / 2))
    assert range_precision_recall(label, [0] * 8) == (0.0, 0.0)


def test_range_f1_takes_the_best_of_the_oracle_grid():
    # Cuts below 1 flag rows 1-3 and 7: recall 0.8, precision 0.5, F1 8/13 (the best).
    assert range_f1([0, 3, 1, 2, 0, 0, 0, 2], [0, 1, 1, 1, 1, 0, 0, 0]) == pytest.approx(8 / 13)


def test_event_f1_by_hand():
    # Cuts below 5 flag rows 2 (event 1) and 8 (normal): event recall 1/2, point precision 1/2.
    score = [0, 0, 5, 0, 0, 0, 0, 0, 5, 0]
    label = [0, 1, 1, 0, 0, 1, 1, 0, 0, 0]
    assert event_f1(score, label) == pytest.approx(0.5)


def test_event_f1_keeps_tsb_ad_losing_the_last_row():
    # TSB-AD's _get_events ends an event that reaches the last row one row early: a one-row
    # event there can never be hit, even by a perfect score. Kept so the numbers agree.
    assert event_f1([0, 0, 0, 1], [0, 0, 0, 1]) == 0.0
    assert event_f1([0, 0, 1, 1], [0, 0, 1, 1]) == pytest.approx(1.0)


def test_point_adjusted_f1_by_hand_and_its_row_zero_quirk():
    # One flagged row of the event counts the whole event.
    assert point_adjusted_f1([0, 3, 0, 0, 0, 0, 0, 0], [0, 1, 1, 1, 1, 0, 0, 0]) == 1.0
    # TSB-AD's adjustment walks back to row 1, never row 0: TP 2, FN 1, F1 = 4/5.
    assert point_adjusted_f1([0, 5, 0, 0, 0], [1, 1, 1, 0, 0]) == pytest.approx(0.8)


def test_point_adjusted_f1_is_optimistic_on_random_scores():
    rng = np.random.default_rng(0)
    label = np.zeros(5000, dtype=int)
    label[1000:1500] = label[3000:3500] = 1
    score = rng.uniform(size=5000)
    # Flagging everything already gives point F1 2 x 0.2 / 1.2 = 1/3; PA-F1 claims far more.
    assert best_f1(score, label) < 0.4
    assert point_adjusted_f1(score, label) > 0.9
    assert "optimistic" in POINT_ADJUST_NOTE and "any one row" in POINT_ADJUST_NOTE


# --- affiliation ----------------------------------------------------------------------------------

def test_affiliation_precision_recall_by_hand():
    # Event J = [2, 4), zone [0, 10), flagged I = [6, 7). For x in I, d(x, J) = x - 4 in [2, 3]
    # and P(random zone point farther) = (6 - d) / 10: mean 0.35. For t in J, d(t, I) = 6 - t
    # and P = 1 - (min(d, t) + d) / 10: 0.4 on [2, 3], (2t - 2) / 10 on [3, 4]: (0.4 + 0.5) / 2.
    label = [0, 0, 1, 1, 0, 0, 0, 0, 0, 0]
    pred = [0, 0, 0, 0, 0, 0, 1, 0, 0, 0]
    assert affiliation_precision_recall(label, pred) == pytest.approx((0.35, 0.45))
    assert affiliation_precision_recall(label, label) == pytest.approx((1.0, 1.0))
    precision, recall = affiliation_precision_recall(label, [0] * 10)
    assert math.isnan(precision) and recall == 0.0


def test_affiliation_f1_of_a_constant_score_is_nan_as_in_tsb_ad():
    assert math.isnan(affiliation_f1(np.ones(20), np.r_[np.zeros(10), np.ones(10)]))


# --- dominant period ------------------------------------------------------------------------------

def test_dominant_period_by_hand():
    t = np.arange(3000)
    assert dominant_period(np.sin(2 * np.pi * t / 48)) == 48
    assert dominant_period(np.sin(2 * np.pi * t / 100).reshape(-1, 1)) == 100
    assert dominant_period(np.sin(2 * np.pi * t / 4)) == 125  # peak at lag 4 < 6: fallback
    assert dominant_period(np.full(500, 3.0)) == 125            # no autocorrelation at all


# --- the report and input checks ----------------------------------------------------------------

def test_report_has_tsb_ad_keys_and_marks_pa_f1_optimistic():
    label = np.zeros(200, dtype=int)
    label[50:60] = 1
    score = np.random.default_rng(1).normal(size=200) + 2 * label
    report = evaluate_scores(score, label, sliding_window=10)
    assert tuple(report) == METRIC_NAMES
    assert all(isinstance(v, float) for v in report.values())
    text = str(report)
    assert "PA-F1 (optimistic)" in text and POINT_ADJUST_NOTE in text
    assert "'PA-F1 (optimistic)'" in repr(report)


@pytest.mark.parametrize("score, label, match", [
    ([0.1, 0.2, 0.3], [0, 0, 0], "no anomaly"),
    ([0.1, 0.2, 0.3], [1, 1, 1], "no normal row"),
    ([0.1, 0.2], [0, 1, 0], "score has 2 rows but label has 3"),
    ([0.1, np.nan, 0.3], [0, 1, 0], "not finite at row 1"),
    ([0.1, 0.2, 0.3], [0, 2, 0], "only 0 and 1"),
])
def test_bad_inputs_are_refused_with_the_fix(score, label, match):
    with pytest.raises(DataError, match=match):
        evaluate_scores(score, label, sliding_window=2)


def test_bad_window_and_multichannel_period_are_refused():
    with pytest.raises(ConfigError, match="'sliding_window' parameter must be an int"):
        evaluate_scores([0.0, 1.0], [0, 1], sliding_window=-1)
    with pytest.raises(DataError, match="one channel"):
        dominant_period(np.zeros((100, 2)))


def test_importing_the_metrics_loads_neither_tsb_ad_nor_statsmodels():
    code = ("import sys, vigil.evaluation; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'TSB_AD', 'statsmodels', "
            "'sklearn', 'torch'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- agreement with TSB-AD 1.5 --------------------------------------------------------------------

def _reference_metrics(score, label, window) -> dict:
    import TSB_AD.evaluation.metrics as tsb_metrics
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn's zero-division and numpy's 0/0 inside TSB-AD
        return {k: float(v) for k, v in tsb_metrics.get_metrics(score, label, window).items()}


def _assert_agrees(score, label, window):
    expected = _reference_metrics(score, label, window)
    got = evaluate_scores(score, label, window)
    assert list(got) == list(expected)
    for name in expected:
        assert got[name] == pytest.approx(expected[name], abs=1e-6, nan_ok=True), name


def _random_case(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Events of varied length (1 to 40 rows), at the edges, adjacent, and tied scores."""
    rng = np.random.default_rng(seed)
    label = np.zeros(n, dtype=int)
    for _ in range(rng.integers(1, 7)):
        start = rng.integers(0, n)
        label[start:start + rng.integers(1, 40)] = 1
    if seed % 2:
        label[:rng.integers(1, 6)] = 1            # an event at row 0
        label[-1] = 1                             # and one ending at the last row
        label[n // 2:n // 2 + 3] = [1, 0, 1]      # two events one row apart
    score = rng.normal(size=n) + rng.uniform(0, 3) * label
    if seed % 3 == 0:
        score = np.round(score, 1)                # many ties
    return score, label


@pytest.mark.parametrize("seed, window", [(0, 0), (1, 5), (2, 20), (3, 60)])
def test_agrees_with_tsb_ad_on_random_scores(seed, window):
    score, label = _random_case(seed, 200)
    _assert_agrees(score, label, window)


def test_agrees_with_tsb_ad_on_binary_predictions():
    import TSB_AD.evaluation.affiliation.generics as from_generics
    from TSB_AD.evaluation.affiliation.metrics import pr_from_events
    from TSB_AD.evaluation.basic_metrics import basic_metricor

    grader = basic_metricor()
    for seed in range(4):
        score, label = _random_case(seed, 400)
        pred = (score > np.quantile(score, 0.85)).astype(int)
        precision = grader.range_recall_new(pred, label, 0)[0]
        recall = grader.range_recall_new(label, pred, 0.2)[0]
        assert range_precision_recall(label, pred) == pytest.approx((precision, recall), abs=1e-9)
        to_events = from_generics.convert_vector_to_events
        ref = pr_from_events(to_events(pred), to_events(label), (0, label.size))
        assert affiliation_precision_recall(label, pred) == pytest.approx(
            (ref["Affiliation_Precision"], ref["Affiliation_Recall"]), abs=1e-9)


def _series(collection: str, name: str) -> tuple[np.ndarray, np.ndarray, int]:
    import pandas as pd

    path = DATASETS / collection / name
    frame = pd.read_csv(path)
    data = frame.drop(columns=["timestamp", "label"]).to_numpy(dtype=float)
    manifest = json.loads((DATASETS / collection / "manifest.json").read_text())
    train_rows = next(s["train_rows"] for s in manifest["series"] if s["file"] == name)
    return data, frame["label"].to_numpy(dtype=int), train_rows


@pytest.mark.parametrize("collection, name", [
    ("skab", "valve1__2.csv"),
    ("nab", "realAdExchange__exchange-3_cpc_results.csv"),
])
def test_agrees_with_tsb_ad_on_real_series(collection, name):
    # BASELINES.md protocol: window from channel 0 of the whole series, metrics on rows [T, n),
    # score = the robust_z floor (|x - median| / MAD over the training rows, max over channels).
    data, label, train_rows = _series(collection, name)
    window = dominant_period(data[:, 0])
    median = np.median(data[:train_rows], axis=0)
    mad = np.median(np.abs(data[:train_rows] - median), axis=0)
    score = (np.abs(data - median) / np.maximum(1.4826 * mad, 1e-9)).max(axis=1)
    _assert_agrees(score[train_rows:], label[train_rows:], window)


def test_dominant_period_agrees_with_find_length_rank_on_every_series():
    import pandas as pd
    import TSB_AD.utils.slidingWindows as sliding

    files = sorted(DATASETS.glob("nab/*.csv")) + sorted(DATASETS.glob("skab/*.csv"))
    assert len(files) == 51
    disagree = []
    for path in files:
        first = pd.read_csv(path, usecols=[1]).to_numpy(dtype=float)  # channel 0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # statsmodels' 0/0 on a constant series
            expected = sliding.find_length_rank(first, rank=1)
        if dominant_period(first[:, 0]) != expected:
            disagree.append(path.name)
    assert disagree == [] and len(files) == 51


def test_chunked_thresholds_give_the_same_numbers(monkeypatch):
    # Long noisy scores are processed a few thresholds at a time; force tiny chunks here.
    from vigil.evaluation import _common

    score, label = _random_case(5, 500)
    pred = (score > np.median(score)).astype(int)
    whole = (range_f1(score, label), affiliation_f1(score, label),
             range_precision_recall(label, pred), affiliation_precision_recall(label, pred))
    monkeypatch.setattr(_common, "_MAX_RUNS_PER_CHUNK", 40)
    chunked = (range_f1(score, label), affiliation_f1(score, label),
               range_precision_recall(label, pred), affiliation_precision_recall(label, pred))
    assert chunked[:2] == pytest.approx(whole[:2], abs=1e-12)
    assert chunked[2:] == whole[2:]
