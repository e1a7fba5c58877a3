"""``auto``: vigil's default method, chosen by evidence on the labeled series of
``shared/datasets`` (``benchmarks/choose_auto.py``): an ensemble whose members' scores are put on
one scale by their own training scores (robust z-score: median and MAD, or the mean absolute
deviation where most training scores are equal and the MAD is 0), combined by a rule
that depends only on the shape of the data:

- one channel: the largest of subsequence k-means, subsequence PCA and the forecast residual
  (windows of a shape never seen, or of a level never seen, or values wrong for their place in
  the curve: whichever member is most surprised speaks);
- several channels: the mean of subsequence PCA, the robust z-score and the Mahalanobis
  distance (each channel's shape and range, plus how the channels move together: a broken
  correlation between channels that are each in range). Without Mahalanobis the mean VUS-PR on
  skab is 0.909 instead of 0.904, but on the bundled plant data, whose channels follow one
  another, it is 0.29 instead of 0.43: the joint member is kept for data beyond these files.

Both rules also watch for stuck sensors (``stuck``): a run of one repeated value half again as
long as any normal hold in training scores ten times the ensemble's largest training score (or
more), so a frozen reading, in range and invisible to every other member, is flagged.

Nothing is keyed to a file, a collection or a label. Training parts too short for windowed
models (under ``MIN_WINDOWED_ROWS`` rows) use the robust z-score alone, with a warning.
"""

from __future__ import annotations

import warnings
from typing import ClassVar

import numpy as np

from vigil.detectors.base import Detector, Param
from vigil.detectors.state import StateSpec
from vigil.detectors.statistical import MAD_TO_SIGMA, MEAN_AD_TO_SIGMA, _floor_scale
from vigil.errors import FitWarning, ModelFileError

#: Every member method, in a fixed order (the model file's ``use_`` mask relies on it).
MEMBERS = ("subsequence_kmeans", "subsequence_pca", "forecast", "robust_zscore", "mahalanobis",
           "stuck")
WINDOWED = {"subsequence_kmeans", "subsequence_pca", "forecast"}
#: Members that are rules rather than scores: where one passes its own natural threshold, the
#: row scores RULE_MARGIN times the ensemble's largest training score (times how far past it
#: is), so the rule decides whatever threshold the training scores give; its rows are left out
#: of the training scores a threshold is fitted on (they are anomalies by the rule's verdict).
RULE_MEMBERS = ("stuck",)
#: Our choice: far above any cut-off fitted on the training scores.
RULE_MARGIN = 10.0
#: channels -> (members, how their scores combine); see the module docstring for the evidence.
RULES = {
    "one channel": (("subsequence_kmeans", "subsequence_pca", "forecast", "stuck"), "max"),
    "several channels": (("subsequence_pca", "robust_zscore", "mahalanobis", "stuck"), "mean"),
    "short": (("robust_zscore",), "mean"),
}
#: Ten windows of the windowed members' smallest window (6 rows): fewer rows cannot fit them.
MIN_WINDOWED_ROWS = 60


class Auto(Detector):
    """An ensemble of robust z-scored member scores (see the module docstring).

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
    #: Own state; each used member's state is saved beside it as ``m<i>.<name>`` (i its place
    #: in MEMBERS) and checked against that member's own declaration.
    #: use_, center_, scale_: one entry per member; older files, saved before the last
    #: members existed, hold fewer (padded by set_state: those members are not used).
    fitted_state = {
        "use_": StateSpec("iu", (f"<={len(MEMBERS)}",), low=0, high=1),
        "combine_max_": StateSpec("iu", (), low=0, high=1),
        "center_": StateSpec("f", ("use_[0]",)),
        "scale_": StateSpec("f", ("use_[0]",), positive=True),  # divides member scores
        "rule_scale_": StateSpec("f", (), positive=True, optional=True),  # 1.0 before rules
    }

    @property
    def natural_threshold(self) -> float | None:  # type: ignore[override]
        """The robust z-score's 3.5 when it stands alone (short training data); otherwise
        none (an ensemble score has no textbook cut-off: the threshold is fitted)."""
        use = getattr(self, "use_", None)
        if use is not None and use.sum() == 1 and use[MEMBERS.index("robust_zscore")]:
            return 3.5
        return None

    def _make_members(self) -> list[Detector]:
        from vigil.detectors import get_class, make_detector

        members = []
        for method in MEMBERS:
            names = set(get_class(method).params)
            chosen = {k: v for k, v in (("window", self.window),
                                         ("random_state", self.random_state)) if k in names}
            members.append(make_detector(method, **chosen))
        return members

    def _fit(self, X: np.ndarray) -> None:
        rule = "one channel" if X.shape[1] == 1 else "several channels"
        if len(X) < MIN_WINDOWED_ROWS:
            warnings.warn(f"auto: {len(X)} training rows are too few for windowed models "
                          f"(needs >= {MIN_WINDOWED_ROWS}); using robust_zscore alone",
                          FitWarning, stacklevel=3)
            rule = "short"
        chosen, combine = RULES[rule]
        self.use_ = np.array([m in chosen for m in MEMBERS], dtype=np.int8)
        self.combine_max_ = int(combine == "max")
        members = self._make_members()
        centers, scales = np.zeros(len(MEMBERS)), np.ones(len(MEMBERS))
        for i, member in enumerate(members):
            if self.use_[i]:
                member.fit(X)
                if rule != "short" and MEMBERS[i] not in RULE_MEMBERS:
                    train = member.score(X)  # alone, a member keeps its own scale and cut-off
                    centers[i] = np.median(train)
                    deviation = np.abs(train - centers[i])
                    scales[i] = MAD_TO_SIGMA * np.median(deviation)
                    if not scales[i] > 0:  # most training scores equal (a median row scores 0)
                        scales[i] = MEAN_AD_TO_SIGMA * deviation.mean()
        self.center_ = centers
        self.scale_ = _floor_scale(scales, centers)
        self._members = members
        self.rule_scale_ = 1.0
        if any(self.use_[MEMBERS.index(m)] for m in RULE_MEMBERS):
            self.rule_scale_ = max(float(self._combine(self._parts(X, "score")).max()), 1.0)

    def _active(self) -> list[tuple[int, Detector]]:
        return [(i, m) for i, m in enumerate(self._members) if self.use_[i]]

    def _parts(self, X: np.ndarray, how: str) -> list[np.ndarray]:
        """The score members' normalised scores (``how``: "score" or "score_channels")."""
        return [(getattr(m, how)(X) - self.center_[i]) / self.scale_[i]
                for i, m in self._active() if MEMBERS[i] not in RULE_MEMBERS]

    def _combine(self, parts: list[np.ndarray]) -> np.ndarray:
        if self.combine_max_:
            return np.maximum.reduce(parts)
        return np.mean(parts, axis=0)

    def _with_rules(self, X: np.ndarray, how: str) -> np.ndarray:
        out = self._combine(self._parts(X, how))
        for i, m in self._active():
            if MEMBERS[i] in RULE_MEMBERS:
                rule = getattr(m, how)(X) / m.natural_threshold
                fired = np.where(rule > 1.0, RULE_MARGIN * self.rule_scale_ * rule, -np.inf)
                np.maximum(out, fired, out=out)
        return out

    def training_scores(self, X: np.ndarray) -> np.ndarray:
        """The score members' combined scores of the training rows, without the rules."""
        return self._combine(self._parts(self._check_fitted_array(X), "score"))

    def _score(self, X: np.ndarray) -> np.ndarray:
        return self._with_rules(X, "score")

    def _score_channels(self, X: np.ndarray) -> np.ndarray:
        return self._with_rules(X, "score_channels")

    @property
    def kinds(self) -> tuple[str, ...]:  # type: ignore[override]
        return ("spike", "stuck")

    def _context_rows(self) -> int:
        return max(m._context_rows() for _, m in self._active())

    def _lookahead_rows(self) -> int:
        return max(m._lookahead_rows() for _, m in self._active())

    def state_spec(self) -> dict[str, StateSpec]:
        """Own state, then every member's declaration under its ``m<i>.`` prefix (which of
        them a file holds depends on ``use_``: checked by :meth:`set_state`)."""
        spec = super().state_spec()
        for i, member in enumerate(self._spec_members()):
            spec.update({f"m{i}.{k}": s for k, s in member.state_spec().items()})
        return spec

    def declared(self, key: str) -> tuple[Detector, StateSpec] | None:
        """A member's key is declared by that member (its parameters size its arrays)."""
        head, dot, rest = key.partition(".")
        if not dot:
            return super().declared(key)
        members = {f"m{i}": member for i, member in enumerate(self._spec_members())}
        return members[head].declared(rest) if head in members else None

    def _spec_members(self) -> list[Detector]:
        if getattr(self, "_unfitted_members", None) is None:
            self._unfitted_members = self._make_members()
        return self._unfitted_members

    def get_state(self) -> dict[str, np.ndarray]:
        """Own state plus each member's, its keys prefixed ``m<i>.``."""
        state = super().get_state()
        for i, member in self._active():
            state.update({f"m{i}.{k}": v for k, v in member.get_state().items()})
        return state

    def set_state(self, state: dict[str, np.ndarray]) -> Auto:
        """Restore own and member state saved by :meth:`get_state`: own state against
        ``fitted_state``, each used member's against its own declaration; state of a member
        ``use_`` leaves out, or of no member at all, is refused."""
        if not isinstance(state, dict):
            raise ModelFileError(f"auto state must be named arrays; got {type(state).__name__}")
        own = {k: v for k, v in state.items() if "." not in k}
        sizes = {np.shape(own[k]) for k in ("use_", "center_", "scale_") if k in own}
        if len(sizes) > 1:
            raise ModelFileError(f"auto state use_, center_ and scale_ differ in shape "
                                 f"({sorted(sizes)}); the file is damaged")
        # Files saved before a member was added: it is simply not used.
        for key, fill in (("use_", 0), ("center_", 0.0), ("scale_", 1.0)):
            value = own.get(key)
            if isinstance(value, np.ndarray) and value.ndim == 1 and value.size < len(MEMBERS):
                own[key] = np.r_[value, np.full(len(MEMBERS) - value.size, fill, value.dtype)]
        own.setdefault("rule_scale_", np.asarray(1.0))
        super().set_state(own)
        members = self._make_members()
        for key in state:
            if "." in key and self.declared(key) is None:
                raise ModelFileError(f"auto has no fitted state named {key[:80]!r}: member "
                                     f"state is m<i>.<name>, i < {len(MEMBERS)}")
        for i, member in enumerate(members):
            prefix = f"m{i}."
            part = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
            if not self.use_[i]:
                if part:
                    raise ModelFileError(f"auto state holds {prefix}* arrays of member "
                                         f"{MEMBERS[i]}, which its use_ leaves out")
                continue
            try:
                member.set_state(part)
            except ModelFileError as exc:
                raise ModelFileError(f"auto member {prefix[:-1]} ({MEMBERS[i]}): {exc}") from None
            if member.n_channels_ != self.n_channels_:
                raise ModelFileError(f"auto member {prefix[:-1]} ({MEMBERS[i]}) was fitted on "
                                     f"{member.n_channels_} channel(s), auto on "
                                     f"{self.n_channels_}")
        self._members = members
        return self

    def _check_state(self) -> None:
        """At least one scoring (not rule) member is used: the ensemble combines them."""
        if not any(self.use_[i] for i, m in enumerate(MEMBERS) if m not in RULE_MEMBERS):
            raise ModelFileError("auto state 'use_' selects no scoring member; the file is "
                                 "damaged")
