"""``vae``: a variational autoencoder on windows, in the manner of DONUT (Xu et al., WWW 2018)."""

from __future__ import annotations

from typing import Any, ClassVar

from vigil.detectors.base import Param
from vigil.detectors.deep.base import DeepDetector


class VAE(DeepDetector):
    """A VAE trained on the training windows (all channels together) by its evidence lower
    bound; a window's score is its reconstruction error from the latent mean with the KL term,
    ``sqrt(mean squared error + beta KL / values)`` per channel.

    Parameters:
        window: rows per window, or "auto": the dominant period of channel 0, in [8, 256].
        hidden, latent: the widths of the hidden layer and of the latent Gaussian.
        beta: weight of the KL term, in training and in the score.
        epochs, batch_size, learning_rate, validation, patience, max_windows, random_state:
            training, as for ``autoencoder``; row_error too.

    Examples:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> x = np.sin(np.arange(2000) / 5) + 0.1 * rng.normal(size=2000)
        >>> det = VAE(window=16, epochs=5).fit(x[:1500, None])
        >>> bumped = x.copy(); bumped[1800:1810] += 2.0
        >>> 1790 <= int(det.score(bumped[:, None]).argmax()) < 1820
        True
    """

    name = "vae"
    params: ClassVar[dict[str, Param]] = {
        **DeepDetector._common,
        "hidden": Param(64, int, low=1, high=4096),
        "latent": Param(8, int, low=1, high=1024),
        "beta": Param(1.0, float, low=0.0),
    }

    def _network(self, window: int, channels: int) -> Any:
        from vigil.detectors.deep.networks import WindowVAE

        return WindowVAE(window, channels, self.hidden, self.latent, float(self.beta))
