"""What every deep detector shares: windows of every channel together, the scaling fitted on
the training rows, training (:mod:`.training`) and scoring through the exported ONNX graph.

The network gives each value of a window an error (its squared reconstruction error); a row's
error in a channel is the mean over the windows covering it (``row_error="mean"``), so every
row is scored, the first ones too, and a stream scores a row ``window - 1`` rows later. An
anomaly distorts the reconstruction of every window that holds it, so with the mean its flags
spread up to a window around it; ``row_error="min"`` takes the least error over the covering
windows instead (some window context explains a normal row next to an anomaly, none explains
the anomaly), which keeps flags on the anomalous rows. Measured with ``vigil bench``, the mean
ranks better on nab, whose labels are wide windows around each anomaly (VUS-PR vae 0.248
against 0.214, autoencoder 0.237 against 0.154), and both rank alike on skab (0.80-0.83), so
the mean is the default. The row score is the RMS over channels;
``score_channels`` gives each channel's part, so ``driver`` names the channel the network
reconstructed worst.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from vigil.detectors.base import FIT_PROGRESS, Detector, Param
from vigil.detectors.state import PER_CHANNEL, PER_CHANNEL_SCALE, StateSpec
from vigil.detectors.statistical import channel_scale
from vigil.errors import DataError, ModelFileError
from vigil.preprocess import dominant_period

#: Smallest and largest window ``window="auto"`` picks (the dominant period, clipped).
MIN_WINDOW, MAX_AUTO_WINDOW = 8, 256
#: Fewest windows a network is trained on.
MIN_WINDOWS = 32
GRAPH = "network"


class DeepDetector(Detector):
    """Base of the deep detectors: a network on windows of ``window`` rows x all channels.

    Subclasses set ``name``, their ``params`` (``_common`` plus their own) and write
    ``_network(window, channels)`` (the untrained torch module, see :mod:`.networks`).
    """

    attributes: ClassVar[bool] = True
    reports_progress: ClassVar[bool] = True
    natural_threshold: ClassVar[float | None] = None
    chunk_bytes: ClassVar[int] = 16 * 2**20
    _common: ClassVar[dict[str, Param]] = {
        "window": Param("auto", int, low=2, allow_auto=True),
        "epochs": Param(30, int, low=1, high=10_000),
        "batch_size": Param(256, int, low=1),
        "learning_rate": Param(1e-3, float, low=0.0, low_open=True, high=1.0),
        "validation": Param(0.2, float, low=0.0, high=0.5),
        "patience": Param(5, int, low=1),
        "max_windows": Param(20_000, int, low=1),
        "random_state": Param(0, int),
        "row_error": Param("mean", str, choices=("mean", "min")),
    }
    fitted_state = {
        "window_": StateSpec("iu", (), low=2, param="window"),
        "center_": PER_CHANNEL,
        "scale_": PER_CHANNEL_SCALE,
        "epochs_": StateSpec("iu", (), low=1),
        "validation_loss_": StateSpec("f", (), low=0.0),
    }
    #: The window must be a multiple of this (the transformer's patch).
    _window_multiple: ClassVar[int] = 1

    # -- fitting ------------------------------------------------------------------------
    def _network(self, window: int, channels: int) -> Any:
        raise NotImplementedError

    def _fit(self, X: np.ndarray) -> None:
        from vigil._optional import require
        from vigil.detectors.deep.training import export, fit_network

        torch = require("torch", "deep", f"fitting {self.name}")  # a clear error without it

        self.window_ = self._fitted_window(X)
        if len(X) - self.window_ + 1 < MIN_WINDOWS:
            raise DataError(
                f"{self.name} needs at least {MIN_WINDOWS} training windows; {len(X)} rows give "
                f"{max(0, len(X) - self.window_ + 1)} of {self.window_} rows: give more rows "
                "or lower window.")
        self.center_ = X.mean(axis=0)
        self.scale_ = channel_scale(X.std(axis=0), X)
        windows = self._windows(X)
        torch.manual_seed(self.random_state)
        net = self._network(self.window_, X.shape[1])
        net, self.epochs_, self.validation_loss_ = fit_network(
            net, windows, epochs=self.epochs, batch_size=self.batch_size,
            learning_rate=float(self.learning_rate), validation=float(self.validation),
            patience=self.patience, max_windows=self.max_windows, seed=self.random_state,
            name=self.name, progress=FIT_PROGRESS.get())
        sample = np.ascontiguousarray(windows[:: max(1, len(windows) // 256)][:256])
        self._graph = export(net, self.window_, X.shape[1], sample, self.name)
        self._session = None
        self._torch_network = net  # kept for torch scoring in tests and benchmarks, never saved

    def _fitted_window(self, X: np.ndarray) -> int:
        m = self._window_multiple
        if self.window == "auto":
            period = dominant_period(X[:, 0])
            window = int(min(max(period, MIN_WINDOW), MAX_AUTO_WINDOW, max(2, len(X) // 4)))
            return max(m, window // m * m)
        if self.window % m:
            raise DataError(f"{self.name}'s window must be a multiple of its patch ({m}); got "
                            f"{self.window}.")
        if self.window > len(X):
            raise DataError(f"window {self.window} is longer than the training rows "
                            f"({len(X)}): lower window or give more rows.")
        return int(self.window)

    def _windows(self, X: np.ndarray) -> np.ndarray:
        """Every window of ``window_`` rows in training z units: a float32 view, windows x
        window x channels."""
        from numpy.lib.stride_tricks import sliding_window_view

        z = ((X - self.center_) / self.scale_).astype(np.float32)
        return sliding_window_view(z, self.window_, axis=0).transpose(0, 2, 1)

    # -- scoring ------------------------------------------------------------------------
    def _value_errors(self, X: np.ndarray) -> np.ndarray:
        """Each value's error in each window covering it (float32, windows x window x
        channels); data shorter than a window is padded by repeating its last row."""
        if len(X) < self.window_:
            X = np.concatenate([X, np.repeat(X[-1:], self.window_ - len(X), axis=0)])
        from vigil.detectors.deep.graph import run

        return run(self._runtime(), self._windows(X))

    def _parts(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Row scores and channel parts: each value's error over the windows covering it (their
        mean, or with ``row_error="min"`` the least), as an RMS."""
        errors = self._value_errors(X)
        windows, window = len(errors), self.window_
        rows = windows + window - 1
        if self.row_error == "min":
            mean = np.full((rows, errors.shape[2]), np.inf)
            for k in range(window):  # window s covers row s + k at its position k
                np.minimum(mean[k : k + windows], errors[:, k, :], out=mean[k : k + windows])
        else:
            mean = np.zeros((rows, errors.shape[2]))
            counts = np.zeros(rows)
            for k in range(window):
                mean[k : k + windows] += errors[:, k, :]
                counts[k : k + windows] += 1.0
            mean /= counts[:, None]
        n = len(X)
        return np.sqrt(mean.mean(axis=1))[:n], np.sqrt(mean)[:n]

    def _score(self, X: np.ndarray) -> np.ndarray:
        return self._parts(X)[0]

    def _score_channels(self, X: np.ndarray) -> np.ndarray:
        return self._parts(X)[1]

    def score_with_channels(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """``score(X)`` and ``score_channels(X)`` from one pass of the network."""
        from vigil.detectors.base import _check_finite

        X = self._check_fitted_array(X, finite=False)
        scores, parts = np.empty(len(X)), np.empty(X.shape)
        for start, stop, lead, trail in self._chunks(X):
            chunk = _check_finite(X[start - lead : stop + trail], start - lead)
            s, p = self._parts(chunk)
            scores[start:stop], parts[start:stop] = s[lead : lead + stop - start], p[
                lead : lead + stop - start]
        return scores, parts

    def _runtime(self) -> Any:
        if getattr(self, "_session", None) is None:
            from vigil.detectors.deep.graph import session

            self._session = session(self._graph)
        return self._session

    def _context_rows(self) -> int:
        return self.window_ - 1

    def _lookahead_rows(self) -> int:
        return self.window_ - 1

    def _row_bytes(self) -> int:
        # the float32 window copy onnxruntime is given, its activations, the point filters
        return 4 * self.window_ * self.n_channels_ * 3 + 8 * (4 * self.n_channels_ + 8)

    # -- the graph, for the model file --------------------------------------------------
    def get_graphs(self) -> dict[str, bytes]:
        """The exported network, ``network``: saved as ``detector/network.onnx``."""
        self._require_fitted()
        return {GRAPH: self._graph}

    def set_graphs(self, graphs: dict[str, bytes]) -> DeepDetector:
        """Take the network read from a model file; it is checked in :meth:`set_state`, once
        the window and channel count it must fit are known."""
        if set(graphs) != {GRAPH}:
            raise ModelFileError(f"{self.name} needs exactly one graph, {GRAPH!r}; the file has "
                                 f"{sorted(graphs) or 'none'}")
        self._graph, self._session = bytes(graphs[GRAPH]), None
        return self

    def _check_state(self) -> None:
        from vigil.detectors.deep.graph import check_graph

        if getattr(self, "_graph", None) is None:
            raise ModelFileError(f"{self.name} state has no network graph")
        if self.window_ % self._window_multiple:
            raise ModelFileError(f"{self.name} window {self.window_} is not a multiple of its "
                                 f"patch {self._window_multiple}; the file is damaged")
        check_graph(self._graph, GRAPH, self.window_, self.n_channels_)

    def check_training_rows(self, rows: int) -> None:
        """The window fits in the training rows, as ``fit`` requires."""
        if self.window_ > rows:
            raise ModelFileError(f"{self.name} window {self.window_} is longer than the {rows} "
                                 "training rows it was fitted on; the file is damaged")
