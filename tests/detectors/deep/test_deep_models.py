"""The deep detectors: trained repeatably, exported to ONNX that agrees with torch, scoring
every row with per-channel attribution, and clear errors for data they cannot learn."""

import numpy as np
import pytest
import torch

from vigil.detectors import make_detector
from vigil.detectors.base import FIT_PROGRESS
from vigil.errors import ConfigError, DataError
from vigil.testing import check_detector

DEEP = ["autoencoder", "vae", "transformer", "gan"]


def sines(n=3000, d=3, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n)[:, None]
    return np.sin(2 * np.pi * t / 48 + np.arange(d)) + 0.1 * rng.normal(size=(n, d))


@pytest.fixture(scope="module", params=DEEP)
def fitted(request):
    X = sines()
    return make_detector(request.param, epochs=8).fit(X[:2000]), X


def test_onnx_scores_agree_with_torch(fitted):
    det, X = fitted
    windows = np.ascontiguousarray(det._windows(X)[:500])
    with torch.no_grad():
        expected = det._torch_network(torch.from_numpy(windows)).numpy()
    got = det._value_errors(X)[:500]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())


def test_a_short_bump_scores_highest_on_its_rows_and_names_its_channel(fitted):
    det, X = fitted
    bumped = X.copy()
    bumped[2500:2510, 2] += 2.0
    scores, parts = det.score_with_channels(bumped)
    assert 2490 <= int(scores.argmax()) < 2520
    assert int(parts[2505].argmax()) == 2
    assert scores.shape == (3000,) and np.isfinite(scores).all()  # the first rows too


def test_training_is_repeatable_bit_for_bit():
    X = sines(1200)
    first, second = (make_detector("vae", epochs=3).fit(X).score(X) for _ in range(2))
    assert np.array_equal(first, second)


def test_early_stopping_keeps_the_best_epoch_and_reports_each():
    seen = []
    token = FIT_PROGRESS.set(lambda epoch, epochs, text: seen.append((epoch, epochs, text)))
    try:
        det = make_detector("autoencoder", epochs=200, patience=2, learning_rate=0.01).fit(
            sines(1500))
    finally:
        FIT_PROGRESS.reset(token)
    assert det.epochs_ < 200  # stopped early
    assert [s[0] for s in seen] == list(range(1, det.epochs_ + 1))
    assert all("validation loss" in s[2] for s in seen)


def test_too_short_data_for_the_window_says_what_to_change():
    with pytest.raises(DataError, match="lower window"):
        make_detector("autoencoder", window=64).fit(sines(80))


def test_a_diverging_training_says_to_lower_the_learning_rate():
    from vigil.detectors.deep.networks import WindowAutoencoder
    from vigil.detectors.deep.training import fit_network

    net = WindowAutoencoder(8, 3, 16, 4)
    with torch.no_grad():
        net.decoder[0].weight.fill_(float("inf"))  # what a blown-up step leaves behind
    windows = np.lib.stride_tricks.sliding_window_view(
        sines(500).astype(np.float32), 8, axis=0).transpose(0, 2, 1)
    with pytest.raises(ConfigError, match="lower learning_rate"):
        fit_network(net, windows, epochs=3, batch_size=64, learning_rate=1e-3, validation=0.2,
                    patience=2, max_windows=1000, seed=0, name="autoencoder")


def test_the_transformer_window_is_a_multiple_of_its_patch():
    det = make_detector("transformer", epochs=1).fit(sines(1000))
    assert det.window_ % det.patch == 0
    with pytest.raises(DataError, match="multiple of its patch"):
        make_detector("transformer", window=20, patch=8).fit(sines(1000))


@pytest.mark.parametrize("method", DEEP)
def test_deep_methods_keep_the_contract_with_a_fixed_window(method):
    check_detector(make_detector(method, window=16, epochs=2))
