"""Tests for vigil.thresholds: each method on known data, POT against scipy and on fresh samples,
the fallback for too few scores, constant scores, save/load round-trips and spec parsing."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
from scipy import stats

from vigil.errors import ConfigError, DataError, FitWarning, NotFittedError
from vigil.evt import fit_gpd, gpd_log_likelihood
from vigil.thresholds import (
    POT, THRESHOLDS, Fixed, Quantile, Sigma, Threshold, make_threshold,
)


def fit_quietly(threshold: Threshold, scores, **kwargs) -> Threshold:
    """Fit and fail the test on any FitWarning: these data are meant to be enough."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", FitWarning)
        return threshold.fit(scores, **kwargs)


# --- each method on known data ---------------------------------------------------------------

def test_quantile_matches_numpy_and_flags_the_top_fraction():
    scores = np.random.default_rng(0).normal(size=10_000)
    threshold = fit_quietly(Quantile(q=0.99), scores)
    assert threshold.value_ == np.quantile(scores, 0.99)
    assert threshold.decide(scores).mean() == pytest.approx(0.01, abs=1e-3)
    assert threshold.fallback_used_ is False


def test_sigma_is_mean_plus_k_population_std():
    scores = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    threshold = fit_quietly(Sigma(k=2.0), scores)
    assert threshold.value_ == pytest.approx(3.0 + 2.0 * math.sqrt(2.0))
    assert threshold.decide([7.0, 5.0]).tolist() == [True, False]


def test_fixed_ignores_the_scores_and_needs_none():
    threshold = fit_quietly(Fixed(value=2.5), np.array([]))
    assert threshold.value_ == 2.5
    decisions = threshold.decide(np.array([[2.5, 2.6], [np.nan, -1.0]]))
    assert decisions.tolist() == [[False, True], [False, False]]


def test_decide_before_fit_raises_not_fitted():
    with pytest.raises(NotFittedError, match="call fit"):
        Quantile().decide([1.0])


# --- POT ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [0.3, 0.0, -0.2])
def test_gpd_fit_is_at_least_as_likely_as_scipys(shape):
    peaks = stats.genpareto.rvs(shape, scale=2.0, size=2000, random_state=np.random.default_rng(1))
    gamma, sigma = fit_gpd(peaks)
    scipy_gamma, _, scipy_sigma = stats.genpareto.fit(peaks, floc=0)
    scipy_ll = gpd_log_likelihood(peaks, scipy_gamma, scipy_sigma)
    assert gpd_log_likelihood(peaks, gamma, sigma) >= scipy_ll - 1e-6
    assert gamma == pytest.approx(scipy_gamma, abs=1e-3)
    assert sigma == pytest.approx(scipy_sigma, rel=1e-3)
    assert gamma == pytest.approx(shape, abs=0.1)  # and near the truth, 2000 samples


@pytest.mark.parametrize("sample", [
    lambda rng, n: rng.exponential(size=n),
    lambda rng, n: stats.genpareto.rvs(0.2, size=n, random_state=rng),
    lambda rng, n: rng.normal(size=n),
], ids=["exponential", "gpd", "gaussian"])
def test_pot_exceedance_rate_on_fresh_data_is_close_to_risk(sample):
    rng = np.random.default_rng(2)
    threshold = fit_quietly(POT(risk=1e-3), sample(rng, 50_000))
    rate = threshold.decide(sample(rng, 2_000_000)).mean()
    assert 1e-3 / 1.5 < rate < 1e-3 * 1.5
    assert threshold.value_ > threshold.details_["initial"]


def test_pot_on_exponential_recovers_the_exponential_tail():
    scores = np.random.default_rng(3).exponential(scale=2.0, size=50_000)
    threshold = fit_quietly(POT(risk=1e-4), scores)
    assert threshold.details_["shape"] == pytest.approx(0.0, abs=0.1)
    assert threshold.details_["scale"] == pytest.approx(2.0, rel=0.1)
    assert threshold.value_ == pytest.approx(-2.0 * math.log(1e-4), rel=0.1)  # true quantile


def test_pot_risk_above_peak_rate_is_guarded_to_the_initial_threshold():
    # risk 0.5 > N_t/n = 0.02: the formula extrapolates below t, the guard keeps t.
    scores = np.random.default_rng(4).exponential(size=5000)
    threshold = fit_quietly(POT(risk=0.5), scores)
    assert threshold.value_ == threshold.details_["initial"] == np.quantile(scores, 0.98)


# --- too few scores, constant scores, bad scores ------------------------------------------------

def test_four_scores_fall_back_to_the_detectors_cut_off_with_one_warning():
    with pytest.warns(FitWarning) as record:
        threshold = POT().fit(np.array([0.1, 0.5, 2.0, 1.0]), fallback=3.5)
    assert [str(w.message) for w in record] == [
        "pot threshold: 4 training scores are too few to fit a threshold from data "
        "(needs >= 500 for level 0.98); using the detector's default cut-off 3.5"]
    assert threshold.value_ == 3.5 and threshold.fallback_used_ is True


@pytest.mark.parametrize("threshold", [Quantile(), Sigma(), POT()])
def test_too_few_scores_without_fallback_flag_nothing_in_training(threshold):
    scores = np.array([0.1, 0.5])
    expected = r"2 training scores are too few.*largest training score 0.5 \(nothing"
    with pytest.warns(FitWarning, match=expected):
        threshold.fit(scores)
    assert threshold.value_ == 0.5 and not threshold.decide(scores).any()


def test_empty_scores_use_the_fallback_or_say_what_to_do():
    with pytest.warns(FitWarning, match="0 training scores"):
        assert Quantile().fit(np.array([]), fallback=3.0).value_ == 3.0
    with pytest.raises(DataError, match="no training scores and no fallback"):
        Quantile().fit(np.array([]))


def test_minimum_scores_follow_the_documented_rules():
    assert Quantile(q=0.99).min_scores == 100 and Quantile(q=0.9).min_scores == 10
    assert Sigma().min_scores == 3 and Fixed(value=1.0).min_scores == 0
    assert POT(level=0.98).min_scores == 500 and POT(level=0.9).min_scores == 100


@pytest.mark.parametrize("threshold", [Quantile(), Sigma(), Sigma(k=0.5), POT()])
# 0.3: the rounded mean of 1000 copies is below 0.3 and their computed std is not 0.
@pytest.mark.parametrize("constant", [2.0, 0.3])
def test_constant_scores_give_a_finite_value_and_flag_nothing(threshold, constant):
    scores = np.full(1000, constant)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)  # POT: all peaks equal -> fallback
        threshold.fit(scores)
    assert math.isfinite(threshold.value_) and not threshold.decide(scores).any()


def test_pot_with_all_peaks_equal_warns_and_uses_the_fallback():
    scores = np.r_[np.zeros(980), np.full(20, 5.0)]
    with pytest.warns(FitWarning, match="20 peaks .* are equal.*default cut-off 7"):
        assert POT().fit(scores, fallback=7.0).value_ == 7.0


def test_non_finite_training_scores_are_a_data_error():
    with pytest.raises(DataError, match="1 of 3 training scores are non-finite"):
        Sigma().fit(np.array([1.0, np.nan, 2.0]))


# --- save / load --------------------------------------------------------------------------------

@pytest.mark.parametrize("threshold", [
    Fixed(value=2.5), Quantile(q=0.95), Sigma(k=2), POT(risk=1e-3)])
def test_to_dict_from_dict_round_trip_through_json(threshold):
    rng = np.random.default_rng(5)
    fit_quietly(threshold, rng.gamma(2.0, size=20_000))
    saved = json.loads(json.dumps(threshold.to_dict()))
    restored = make_threshold(saved)
    assert type(restored) is type(threshold) and restored.value_ == threshold.value_
    assert restored.to_dict() == threshold.to_dict()
    fresh = rng.gamma(2.0, size=10_000)
    assert np.array_equal(restored.decide(fresh), threshold.decide(fresh))


def test_pot_to_dict_has_the_fitted_tail():
    threshold = fit_quietly(POT(), np.random.default_rng(6).exponential(size=1000))
    saved = threshold.to_dict()
    assert saved["name"] == "pot" and saved["params"] == {"risk": 1e-4, "level": 0.98}
    assert {"initial", "shape", "scale", "n_peaks"} <= saved.keys() and saved["n_peaks"] == 20


def test_fallback_flag_survives_a_round_trip():
    with pytest.warns(FitWarning):
        threshold = Sigma().fit([1.0], fallback=4.0)
    restored = Threshold.from_dict(json.loads(json.dumps(threshold.to_dict())))
    assert restored.fallback_used_ is True and restored.value_ == 4.0


# --- make_threshold and parameter validation ---------------------------------------------------

@pytest.mark.parametrize("spec, cls, params", [
    ("pot", POT, {"risk": 1e-4, "level": 0.98}),
    ("pot:1e-3", POT, {"risk": 1e-3, "level": 0.98}),
    ("quantile:0.995", Quantile, {"q": 0.995}),
    (" Sigma : 4 ", Sigma, {"k": 4.0}),
    ("fixed:2.5", Fixed, {"value": 2.5}),
    ("2.5", Fixed, {"value": 2.5}),
    (3, Fixed, {"value": 3.0}),
    ({"name": "quantile", "params": {"q": 0.9}}, Quantile, {"q": 0.9}),
])
def test_make_threshold_parses_specs(spec, cls, params):
    threshold = make_threshold(spec)
    assert type(threshold) is cls and threshold.get_params() == params


def test_make_threshold_returns_an_instance_as_is():
    threshold = Sigma(k=2.0)
    assert make_threshold(threshold) is threshold


@pytest.mark.parametrize("spec, message", [
    ("median", "Unknown threshold 'median' in 'median'; valid names: pot, quantile, sigma, fixed"),
    ("quantile:abc", "Cannot read 'abc' in 'quantile:abc' as a number for the 'q' parameter"),
    ("fixed", "fixed threshold needs a value"),
    ("quantile:1.5", "The 'q' parameter of quantile must be a float in (0, 1). Got 1.5."),
    ("nan", "The 'value' parameter of fixed must be a float in (-inf, inf). Got nan."),
    (True, "A threshold must be"),
    ({"name": "nope"}, "needs 'name' in"),
])
def test_make_threshold_errors_name_the_problem(spec, message):
    with pytest.raises(ConfigError, match=None) as info:
        make_threshold(spec)
    assert message in str(info.value)


@pytest.mark.parametrize("threshold, message", [
    (Quantile(q=1.5), "The 'q' parameter of quantile must be a float in (0, 1). Got 1.5."),
    (Sigma(k=0), "The 'k' parameter of sigma must be a float in (0, inf). Got 0."),
    (POT(level="high"), "The 'level' parameter of pot must be a float in (0, 1). Got 'high'."),
    (POT(risk=True), "The 'risk' parameter of pot must be a float in (0, 1). Got True."),
])
def test_parameters_are_validated_at_fit_with_one_message(threshold, message):
    with pytest.raises(ConfigError) as info:
        threshold.fit(np.arange(1000.0))
    assert str(info.value) == message


def test_unknown_parameter_and_bad_fallback_are_config_errors():
    with pytest.raises(ConfigError, match=r"takes the parameters \['q'\]. Got \['quantile'\]"):
        Threshold.from_dict({"name": "quantile", "params": {"quantile": 0.9}})
    with pytest.raises(ConfigError, match="value is required"):
        make_threshold({"name": "fixed", "params": {}})
    with pytest.raises(ConfigError, match="fallback must be a finite float"):
        Sigma().fit(np.arange(10.0), fallback=float("nan"))


def test_registry_lists_every_method_with_a_description():
    assert list(THRESHOLDS) == ["pot", "quantile", "sigma", "fixed", "dspot"]
    assert all(cls.name == name and cls.description for name, cls in THRESHOLDS.items())


def test_pot_is_not_hidden_by_an_anomaly_among_its_training_scores():
    # One huge training score fattens a naive tail fit until the threshold lies above it;
    # the outlier test leaves it out, as SPOT never lets an alarm update its tail.
    scores = np.abs(np.random.default_rng(0).normal(size=1000))
    scores[700] = 11.0
    threshold = POT().fit(scores)
    assert threshold.decide(scores).nonzero()[0].tolist() == [700]
    assert threshold.details_["n_excluded"] == 1
    clean = POT().fit(np.abs(np.random.default_rng(1).normal(size=100_000)))
    assert clean.details_["n_excluded"] == 0


def test_pot_warns_when_anomalies_fill_the_training_tail():
    rng = np.random.default_rng(2)
    scores = np.concatenate([np.abs(rng.normal(size=9000)), rng.pareto(1.0, size=1000) * 5 + 3])
    with pytest.warns(FitWarning, match="tail is very heavy.*--train-rows"):
        POT().fit(scores)
