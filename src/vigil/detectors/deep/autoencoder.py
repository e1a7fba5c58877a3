"""``autoencoder``: a window of every channel is squeezed through a narrow code and rebuilt;
a window unlike the training ones rebuilds badly."""

from __future__ import annotations

from typing import Any, ClassVar

from vigil.detectors.base import Param
from vigil.detectors.deep.base import DeepDetector


class Autoencoder(DeepDetector):
    """RMS reconstruction error of each window (all channels together) by an MLP autoencoder
    trained on the training windows; per-channel parts name the driver.

    Parameters:
        window: rows per window, or "auto": the dominant period of channel 0, in [8, 256].
        hidden, latent: the widths of the hidden layer and of the code.
        epochs, batch_size, learning_rate: training (Adam); at most ``epochs``, stopped
            early after ``patience`` epochs without a better validation loss.
        validation: the share of the training windows (the last ones) held out for it.
        max_windows: training windows per epoch at most (a seeded sample).
        random_state: seed of the weights and the batch order.
        row_error: "mean" (default) or "min": a row's error over the windows covering it
            (see :mod:`vigil.detectors.deep.base`; "min" keeps flags on the anomalous rows).
    """

    name = "autoencoder"
    params: ClassVar[dict[str, Param]] = {
        **DeepDetector._common,
        "hidden": Param(64, int, low=1, high=4096),
        "latent": Param(16, int, low=1, high=1024),
    }

    def _network(self, window: int, channels: int) -> Any:
        from vigil.detectors.deep.networks import WindowAutoencoder

        return WindowAutoencoder(window, channels, self.hidden, self.latent)
