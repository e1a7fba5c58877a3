"""``gan``: adversarially trained reconstruction with a critic, in the spirit of TadGAN."""

from __future__ import annotations

from typing import Any, ClassVar

from vigil.detectors.base import Param
from vigil.detectors.deep.base import DeepDetector


class GAN(DeepDetector):
    """An autoencoder trained against a critic (see
    :class:`~vigil.detectors.deep.networks.WindowGAN`); a window's score combines its
    reconstruction error per channel with the critic's doubt that it is real.

    Parameters:
        window, hidden, latent: as for ``autoencoder``.
        adversarial: weight of fooling the critic in the generator's loss.
        epochs, batch_size, learning_rate, validation, patience, max_windows, random_state:
            training, as for ``autoencoder`` (early stopping watches the reconstruction loss);
            row_error too.
    """

    name = "gan"
    params: ClassVar[dict[str, Param]] = {
        **DeepDetector._common,
        "hidden": Param(64, int, low=1, high=4096),
        "latent": Param(16, int, low=1, high=1024),
        "adversarial": Param(0.1, float, low=0.0),
    }

    def _network(self, window: int, channels: int) -> Any:
        from vigil.detectors.deep.networks import WindowGAN

        return WindowGAN(window, channels, self.hidden, self.latent, float(self.adversarial))
