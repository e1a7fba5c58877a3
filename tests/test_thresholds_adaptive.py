"""Tests for the dspot threshold (vigil.thresholds.adaptive): it agrees with pot on stationary
scores, follows a slow drift that pot cannot, still flags what rides on the drift, is causal,
gives the same thresholds in any chunking and after a save, and stays fast on long streams."""

from __future__ import annotations

import json
import math
import time
import warnings

import numpy as np
import pytest

from scipy import stats

from vigil.errors import ConfigError, DataError, FitWarning, NotFittedError
from vigil.evt import fit_gpd_scale, pot_quantile
from vigil.thresholds import DSPOT, POT, Threshold, make_threshold
from vigil.thresholds import _dspot_state


def fit_quietly(threshold: Threshold, scores, **kwargs) -> Threshold:
    """Fit and fail the test on any FitWarning: these data are meant to be enough."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", FitWarning)
        return threshold.fit(scores, **kwargs)


def drifting(n: int, rise: float, seed: int = 0) -> np.ndarray:
    """Normal scores whose level rises linearly by ``rise`` standard deviations over n rows."""
    return np.random.default_rng(seed).normal(size=n) + np.linspace(0.0, rise, n)


# --- what dspot is for ------------------------------------------------------------------------

@pytest.mark.parametrize("sample", [
    lambda rng, n: rng.normal(size=n),
    lambda rng, n: np.abs(rng.normal(size=n)),
    lambda rng, n: rng.gamma(2.0, size=n),
], ids=["normal", "half-normal", "gamma"])
def test_on_stationary_scores_dspot_false_alarms_as_often_as_pot(sample):
    rng = np.random.default_rng(1)
    train, new = sample(rng, 20_000), sample(rng, 500_000)
    pot = fit_quietly(POT(risk=1e-3), train).decide(new).mean()
    dspot = fit_quietly(DSPOT(risk=1e-3), train).decide(new).mean()
    assert 1e-3 / 2 < dspot < 1e-3 * 2
    assert pot / 1.5 < dspot < pot * 1.5


# pot at risk 1e-4 cuts about 4 sigma above the training level, so a rise of 3 sigma makes it
# flag 10% of the late rows (1,000 times its risk), and a rise of 6 sigma nearly all of them.
@pytest.mark.parametrize("rise, pot_share", [(3.0, 0.05), (6.0, 0.75)])
def test_on_drifting_scores_pot_flags_the_late_rows_and_dspot_does_not(rise, pot_share):
    # Fitted on the first 20% of the rows; the last 20% lie rise * 0.8..1 sigma higher.
    scores = drifting(100_000, rise)
    train, new = scores[:20_000], scores[20_000:]
    late = slice(-20_000, None)
    assert fit_quietly(POT(), train).decide(new)[late].mean() > pot_share
    assert fit_quietly(DSPOT(), train).decide(new)[late].mean() < 1e-3


def test_a_spike_on_top_of_the_drift_is_still_flagged():
    scores = drifting(100_000, 6.0, seed=2)
    spikes = np.arange(25_000, 100_000, 5_000)
    scores[spikes] += 8.0
    dspot = fit_quietly(DSPOT(), scores[:20_000])
    flagged = np.flatnonzero(dspot.decide(scores[20_000:])) + 20_000
    assert set(spikes) <= set(flagged) and len(flagged) < len(spikes) + 20


def test_a_long_anomaly_stays_flagged_as_the_window_never_learns_it():
    scores = drifting(60_000, 3.0, seed=3)
    scores[40_000:40_500] += 8.0  # 500 rows, five times the window
    dspot = fit_quietly(DSPOT(), scores[:20_000])
    flags = dspot.decide(scores[20_000:])
    assert flags[20_000:20_500].all() and flags[20_500:].sum() < 5


def dspot_row_by_row(state: dict, scores: np.ndarray) -> np.ndarray:
    """DSPOT as the paper writes it, one row at a time, with dspot's bounded refits."""
    s = dict(state, window=list(state["window"]), peaks=list(state["peaks"]),
             limits=[math.inf if v is None else v for v in state["limits"]])
    out = []
    for x in scores:
        mean = s["window_sum"] / len(s["window"])
        out.append(s["z"] + mean)
        if not x <= out[-1]:
            continue  # an alarm changes nothing
        if x - mean > s["initial"]:  # a peak: stored, and the tail refitted when due
            s["peaks"] = (s["peaks"] + [x - mean - s["initial"]])[-s["max_peaks"]:]
            limit = max(s["z"] - s["initial"], x - mean - s["initial"])
            s["limits"] = (s["limits"] + [limit])[-s["max_peaks"]:]
            s["n_peaks"] += 1
            s["since_refit"] += 1
        s["n"] += 1
        s["window_sum"] += x - s["window"][0]
        s["window"] = s["window"][1:] + [x]
        if s["since_refit"] == min(s["refit_every"], s["fitted_on"]):
            s["since_refit"], s["fitted_on"] = 0, len(s["peaks"])
            s["window_sum"] = math.fsum(s["window"])
            s["scale"] = fit_gpd_scale(np.array(s["peaks"]), s["shape"], s["scale"],
                                       np.array(s["limits"]))
            z = pot_quantile(s["initial"], s["shape"], s["scale"], s["risk"], s["n"],
                             s["n_peaks"])
            s["z"] = max(z, s["initial"])
    return np.array(out)


def test_the_vectorised_stream_is_the_papers_row_by_row_loop():
    scores = drifting(60_000, 3.0, seed=13)
    scores[[25_000, 40_000]] += 9.0
    scores[30_000:30_200] += 9.0
    dspot = fit_quietly(DSPOT(), scores[:10_000])
    assert np.array_equal(dspot.values(scores[10_000:]),
                          dspot_row_by_row(dspot.state(), scores[10_000:]))


def test_the_scale_refit_accounts_for_the_peaks_the_alarms_took_away():
    # Peaks of a GPD (shape 0.1, scale 2) seen only below their 95% quantile, as a stream's
    # peaks are only seen below its threshold: fitted as complete, the scale comes out 16% low.
    peaks = stats.genpareto.rvs(0.1, scale=2.0, size=20_000, random_state=0)
    limit = stats.genpareto.ppf(0.95, 0.1, scale=2.0)
    seen = peaks[peaks <= limit]
    assert fit_gpd_scale(seen, 0.1, 1.0, np.full(seen.size, limit)) == pytest.approx(2.0, rel=0.03)
    assert fit_gpd_scale(seen, 0.1, 1.0) < 1.8


# --- causal, chunked, stateless ----------------------------------------------------------------

def test_values_are_causal_a_prefix_gives_the_prefix_of_thresholds():
    scores = drifting(60_000, 3.0, seed=4)
    scores[30_000:30_050] += 10.0
    dspot = fit_quietly(DSPOT(), scores[:10_000])
    new = scores[10_000:]
    whole = dspot.values(new)
    for k in (1, 17, 20_000, 20_049, 40_000):
        assert np.array_equal(dspot.values(new[:k]), whole[:k])
    changed = new.copy()
    changed[25_000:] = 100.0  # the future changes nothing before it
    assert np.array_equal(dspot.values(changed)[:25_001], whole[:25_001])


def test_chunks_of_any_size_give_the_thresholds_of_one_call():
    # Long enough for tail refits, with alarm runs, and a save to JSON between every chunk.
    scores = drifting(220_000, 3.0, seed=5)
    scores[[60_000, 90_000, 150_000]] += 9.0
    scores[120_000:120_300] += 9.0
    dspot = fit_quietly(DSPOT(), scores[:20_000])
    new = scores[20_000:]
    whole = dspot.values(new)
    rng = np.random.default_rng(6)
    stepper, parts, i = dspot.stepper(), [], 0
    while i < new.size:
        k = int(rng.choice([1, 2, 7, 64, 1000, 5000, 30_000]))
        parts.append(stepper.update(new[i:i + k]))
        state = json.loads(json.dumps(stepper.to_dict()))
        stepper, i = dspot.stepper(state), i + k
    assert np.array_equal(np.concatenate(parts), whole)
    assert np.array_equal(dspot.values(new[100_000:], state=_state_after(dspot, new[:100_000])),
                          whole[100_000:])
    assert stepper.scale != dspot.state()["scale"]  # the tail was refitted on the way


def _state_after(dspot: DSPOT, scores: np.ndarray) -> dict:
    stepper = dspot.stepper()
    stepper.update(scores)
    return stepper.to_dict()


def test_values_leave_the_fitted_threshold_unchanged():
    scores = drifting(80_000, 3.0, seed=7)
    dspot = fit_quietly(DSPOT(), scores[:20_000])
    before = dspot.to_dict()
    first = dspot.values(scores[20_000:])
    assert dspot.to_dict() == before and np.array_equal(dspot.values(scores[20_000:]), first)


def test_decide_is_scores_above_their_own_thresholds():
    scores = drifting(30_000, 3.0, seed=8)
    dspot = fit_quietly(DSPOT(risk=1e-2), scores[:10_000])
    new = scores[10_000:]
    assert np.array_equal(dspot.decide(new), new > dspot.values(new))
    assert dspot.values(new)[0] == dspot.value_  # value_: the threshold after training


def test_a_nan_score_is_not_flagged_and_changes_nothing():
    scores = drifting(30_000, 3.0, seed=9)
    dspot = fit_quietly(DSPOT(), scores[:10_000])
    new = scores[10_000:]
    holed = np.insert(new, 5_000, np.nan)
    assert not dspot.decide(holed)[5_000]
    assert np.array_equal(np.delete(dspot.values(holed), 5_000), dspot.values(new))


def test_scores_must_be_one_series_in_time_order():
    dspot = fit_quietly(DSPOT(), drifting(5_000, 0.0))
    with pytest.raises(DataError, match=r"1-D sequence of scores in time order.*\(2, 3\)"):
        dspot.values(np.zeros((2, 3)))
    with pytest.raises(NotFittedError, match="call fit"):
        DSPOT().values([1.0])


# --- bounded cost ------------------------------------------------------------------------------

def test_a_million_scores_take_a_bounded_number_of_tail_fits(monkeypatch):
    fits = []
    real = _dspot_state.fit_gpd_scale
    monkeypatch.setattr(_dspot_state, "fit_gpd_scale", lambda *a: fits.append(1) or real(*a))
    scores = drifting(1_020_000, 3.0, seed=10)
    dspot = fit_quietly(DSPOT(), scores[:20_000])
    start = time.perf_counter()
    stepper = dspot.stepper()
    stepper.update(scores[20_000:])
    elapsed = time.perf_counter() - start
    # ~20,000 peaks at level 0.98: refits on doubling (400 -> 800 -> 1600) then every 500.
    assert len(fits) <= stepper.n_peaks / DSPOT.REFIT_EVERY + 3
    assert len(stepper.peaks) == DSPOT.MAX_PEAKS  # the stored peaks stay capped
    assert elapsed < 10.0  # about 0.2 s measured; the bound only catches a per-row loop


# --- save / load, fallback, parameters -----------------------------------------------------------

def test_to_dict_from_dict_round_trip_through_json_gives_identical_thresholds():
    scores = drifting(100_000, 3.0, seed=11)
    dspot = fit_quietly(DSPOT(risk=1e-3), scores[:20_000])
    saved = json.loads(json.dumps(dspot.to_dict()))
    restored = make_threshold(saved)
    assert type(restored) is DSPOT and restored.to_dict() == dspot.to_dict()
    assert restored.value_ == dspot.value_
    assert np.array_equal(restored.values(scores[20_000:]), dspot.values(scores[20_000:]))
    assert saved["params"] == {"risk": 1e-3, "level": 0.98, "depth": 100.0}
    assert len(saved["state"]["window"]) == 100 and saved["n_peaks"] == 398


def test_too_few_scores_fall_back_to_a_constant_threshold():
    with pytest.warns(FitWarning, match="dspot threshold: 300 training scores are too few to "
                      r"fit a threshold from data \(needs >= 600 for depth 100\); using the "
                      "detector's default cut-off 3.5"):
        dspot = DSPOT().fit(drifting(300, 0.0), fallback=3.5)
    assert dspot.fallback_used_ and dspot.value_ == 3.5
    assert dspot.values(np.arange(5.0)).tolist() == [3.5] * 5
    assert dspot.state() == {"constant": 3.5}
    restored = Threshold.from_dict(json.loads(json.dumps(dspot.to_dict())))
    assert restored.fallback_used_ and restored.decide([3.0, 4.0]).tolist() == [False, True]


def test_constant_scores_fall_back_and_flag_nothing():
    with pytest.warns(FitWarning, match="on the 900 residuals from the moving mean"):
        dspot = DSPOT().fit(np.full(1000, 2.0))
    assert not dspot.decide(np.full(100, 2.0)).any()


@pytest.mark.parametrize("edit, message", [
    (lambda s: s["window"].__setitem__(3, float("nan")),
     "A dspot state's 'window' must be a non-empty list of finite floats. Got nan at index 3."),
    (lambda s: s.__setitem__("peaks", s["peaks"] * 20),
     "A dspot state's 'peaks' must be a list of 1 to 398 finite floats > 0. Got 7960 entries."),
    (lambda s: s.__setitem__("limits", s["limits"][:-1]),
     "A dspot state's 'limits' must be a list as long as 'peaks' (398) of finite floats > 0 "
     "or null. Got 397 entries."),
    (lambda s: s.__setitem__("limits", [-1.0] * 398),
     "A dspot state's 'limits' must be a list as long as 'peaks' (398) of finite floats > 0 "
     "or null. Got -1.0 at index 0."),
    (lambda s: s.__setitem__("window_sum", s["window_sum"] + 1.0),
     "A dspot state's 'window_sum' must be the sum of 'window'"),
    (lambda s: s.__setitem__("n", 1.5), "A dspot state's 'n' must be an integer >= 0. Got 1.5."),
    (lambda s: s.__setitem__("risk", 2.0), "A dspot state's 'risk' must be in (0, 1). Got 2.0."),
    (lambda s: s.pop("peaks"), "A dspot state must be a dict with the keys ["),
])
def test_a_damaged_state_is_a_one_line_config_error(edit, message):
    dspot = fit_quietly(DSPOT(), drifting(20_000, 0.0, seed=12))
    saved = json.loads(json.dumps(dspot.to_dict()))
    edit(saved["state"])
    with pytest.raises(ConfigError) as info:
        make_threshold(saved)
    assert str(info.value).startswith(message) and "\n" not in str(info.value)
    del saved["state"]
    with pytest.raises(ConfigError, match="needs its 'state'"):
        make_threshold(saved)


def test_spec_and_defaults():
    assert make_threshold("dspot:1e-3").get_params() == {"risk": 1e-3, "level": 0.98,
                                                         "depth": 100}
    pot = POT().get_params()  # dspot's risk and level are pot's
    assert {k: DSPOT().get_params()[k] for k in pot} == pot
    assert DSPOT(depth=10).min_scores == 10 + POT().min_scores
    with pytest.raises(ConfigError, match=r"^The 'depth' parameter of dspot must be an integer "
                       r">= 1. Got 2.5.$"):
        DSPOT(depth=2.5).fit(np.arange(1000.0))
    assert math.isfinite(make_threshold({"name": "dspot", "params": {"depth": 20}})
                         .fit(drifting(2_000, 0.0)).value_)
