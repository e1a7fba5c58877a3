"""``transformer``: self-attention over patches of the window, for long dependencies."""

from __future__ import annotations

from typing import Any, ClassVar

from vigil.detectors.base import Param
from vigil.detectors.deep.base import DeepDetector


class Transformer(DeepDetector):
    """RMS reconstruction error of each window by a patch Transformer encoder (see
    :class:`~vigil.detectors.deep.networks.PatchTransformer`) trained on the training windows.

    Parameters:
        window: rows per window (a multiple of ``patch``), or "auto": the dominant period of
            channel 0 in [8, 256], rounded down to a multiple of ``patch``.
        patch: rows per token; attention runs over ``window / patch`` tokens.
        width, layers, heads: the encoder's model width, depth and attention heads.
        epochs, batch_size, learning_rate, validation, patience, max_windows, random_state:
            training, as for ``autoencoder``; row_error too.
    """

    name = "transformer"
    params: ClassVar[dict[str, Param]] = {
        **DeepDetector._common,
        "patch": Param(8, int, low=1, high=256),
        "width": Param(32, int, low=2, high=1024),
        "layers": Param(2, int, low=1, high=12),
        "heads": Param(4, int, low=1, high=32),
    }

    @property
    def _window_multiple(self) -> int:  # type: ignore[override]
        return int(self.patch)

    def _validate_extra(self) -> None:
        from vigil.errors import ConfigError

        if self.width % self.heads:
            raise ConfigError(f"transformer width {self.width} must be a multiple of heads "
                              f"({self.heads}).")

    def _network(self, window: int, channels: int) -> Any:
        from vigil.detectors.deep.networks import PatchTransformer

        return PatchTransformer(window, channels, self.width, self.layers, self.heads,
                                self.patch)
