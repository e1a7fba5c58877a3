"""``auto``: vigil's default method, an ensemble of complementary detectors chosen by evidence
on labeled sensor and metric series (``benchmarks/results/bench``): each member's score is put
on a common scale by its own training scores (robust z-score: median and MAD), and the row's
score is the mean over members.

The members see different things: a forecast residual catches values wrong for their place in
the curve, subsequence k-means catches windows of a shape never seen in training, and the
robust z-score catches values out of the channel's range. The same rule applies to any input;
nothing is keyed to a file, a collection or a label. Training parts too short for windowed
models (under ``MIN_WINDOWED_ROWS`` rows) use the row-wise members alone, with a warning.
"""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import numpy as np

from vigil.detectors.base import Detector, Param
from vigil.detectors.statistical import MAD_TO_SIGMA, _floor_scale
from vigil.errors import FitWarning

#: (method, parameters, windowed) of each member, in a fixed order (the model file relies on it).
MEMBERS: tuple[tuple[str, dict[str, Any], bool], ...] = (
    ("forecast", {}, True),
    ("subsequence_kmeans", {}, True),
    ("robust_zscore", {}, False),
)
#: Ten windows of the windowed members' smallest window (6 rows): fewer rows cannot fit them.
MIN_WINDOWED_ROWS = 60


class Auto(Detector):
    """Mean of the members' robust z-scored scores (see the module docstring).

    Examples:
        >>> import numpy as np
        >>> t = np.arange(3000)
        >>> X = (np.sin(2 * np.pi * t / 50) + 0.05 * np.random.default_rng(0).normal(size=3000))
        >>> X = X[:, None]; X[2000:2010, 0] = 0.0  # a flat stretch where the wave should be
        >>> scores = Auto().fit(X[:1500]).score(X)
        >>> bool(scores[2000:2010].max() > np.quantile(scores[:1500], 0.999))
        True
    """

    name = "auto"
    attributes: ClassVar[bool] = True
    params = {"window": Param("auto", int, low=2, allow_auto=True), "random_state": Param(0, int)}

    def _make_members(self) -> list[Detector]:
        from vigil.detectors import make_detector

        members = []
        for method, params, windowed in MEMBERS:
            chosen = dict(params)
            if windowed:
                chosen["window"] = self.window
            if "random_state" in _param_names(method):
                chosen["random_state"] = self.random_state
            members.append(make_detector(method, **chosen))
        return members

    def _fit(self, X: np.ndarray) -> None:
        members = self._make_members()
        use = np.array([not windowed or len(X) >= MIN_WINDOWED_ROWS for *_, windowed in MEMBERS])
        if not use.all():
            skipped = ", ".join(m for (m, *_), u in zip(MEMBERS, use) if not u)
            warnings.warn(f"auto: {len(X)} training rows are too few for {skipped} (needs >= "
                          f"{MIN_WINDOWED_ROWS}); using the other members alone", FitWarning,
                          stacklevel=3)
        self.use_ = use.astype(np.int8)
        centers, scales = np.zeros(len(MEMBERS)), np.ones(len(MEMBERS))
        for i, member in enumerate(members):
            if use[i]:
                train = member.fit(X).score(X)
                centers[i] = np.median(train)
                scales[i] = MAD_TO_SIGMA * np.median(np.abs(train - centers[i]))
        self.center_ = centers
        self.scale_ = _floor_scale(scales, centers)
        self._members = members

    def _active(self) -> list[tuple[int, Detector]]:
        return [(i, m) for i, m in enumerate(self._members) if self.use_[i]]

    def _score(self, X: np.ndarray) -> np.ndarray:
        total = np.zeros(len(X))
        for i, member in self._active():
            total += (member.score(X) - self.center_[i]) / self.scale_[i]
        return total / len(self._active())

    def _score_channels(self, X: np.ndarray) -> np.ndarray:
        total = np.zeros(X.shape)
        for i, member in self._active():
            parts = member.score_channels(X)
            total += (parts - self.center_[i]) / self.scale_[i]
        return total / len(self._active())

    def _context_rows(self) -> int:
        return max(m._context_rows() for _, m in self._active())

    def _lookahead_rows(self) -> int:
        return max(m._lookahead_rows() for _, m in self._active())

    def get_state(self) -> dict[str, np.ndarray]:
        """Own state plus each member's, its keys prefixed ``m<i>.``."""
        state = super().get_state()
        for i, member in self._active():
            state.update({f"m{i}.{k}": v for k, v in member.get_state().items()})
        return state

    def set_state(self, state: dict[str, np.ndarray]) -> Auto:
        """Restore own and member state saved by :meth:`get_state`."""
        own = {k: v for k, v in state.items() if "." not in k}
        super().set_state(own)
        self._members = self._make_members()
        for i, member in self._active():
            prefix = f"m{i}."
            member.set_state({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})
        return self


def _param_names(method: str) -> set[str]:
    from vigil.detectors import get_class

    return set(get_class(method).params)
