"""Extreme value theory for thresholds: the maximum-likelihood fit of a generalized Pareto
distribution to the peaks of scores over a high initial threshold (Grimshaw's method, as used by
Siffer et al.'s SPOT, KDD 2017). ``vigil.thresholds.POT`` turns the fit into a cut-off.
``pot_quantile`` is Siffer's cut-off from a fitted tail, and ``fit_gpd_scale`` refits the scale
alone on peaks seen only below a limit (the drifting ``dspot`` threshold's refits)."""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import brentq


def gpd_log_likelihood(peaks: np.ndarray, shape: float, scale: float) -> float:
    """Log-likelihood of a generalized Pareto (location 0) on ``peaks``; -inf off its support."""
    peaks = np.asarray(peaks, dtype=float)
    if scale <= 0:
        return -math.inf
    if shape == 0.0:
        return float(-peaks.size * math.log(scale) - peaks.sum() / scale)
    z = 1.0 + shape * peaks / scale
    if np.any(z <= 0):
        return -math.inf
    return float(-peaks.size * math.log(scale) - (1.0 + 1.0 / shape) * np.log(z).sum())


def _grimshaw_roots(peaks: np.ndarray, n_grid: int = 200) -> list[float]:
    """Roots x != 0 of u(x) v(x) = 1 (Grimshaw, Technometrics 35(2), 1993; Siffer et al. 2017),
    with u(x) = mean(1 / (1 + x Y)), v(x) = 1 + mean(log(1 + x Y)), searched on the paper's
    intervals (-1/Y_max, 0) and (0, 2 (mean Y - Y_min) / Y_min^2): bracket sign changes on a grid
    (log-spaced, since x spans many decades), then refine each with Brent's method."""
    y_min, y_max, y_mean = float(peaks.min()), float(peaks.max()), float(peaks.mean())

    def w(x: float) -> float:
        s = 1.0 + x * peaks
        return float(np.mean(1.0 / s) * (1.0 + np.mean(np.log(s))) - 1.0)

    # x * Y_max below 1e-6 means |gamma| < ~1e-6: indistinguishable from the exponential candidate.
    tiny = 1e-6 / y_max
    left = -np.geomspace(tiny, 1.0 / y_max, n_grid)
    # Approach the left end -1/Y_max (where 1 + x Y_max -> 0) geometrically as well.
    left = np.concatenate([left[:-1], -(1.0 - np.geomspace(0.5, 1e-9, n_grid // 4)) / y_max])
    upper = 2.0 * (y_mean - y_min) / y_min**2
    right = np.geomspace(tiny, upper, n_grid) if upper > tiny else np.empty(0)
    roots = []
    for grid in (np.sort(left), right):
        values = np.array([w(x) for x in grid])
        for i in np.flatnonzero(np.sign(values[:-1]) * np.sign(values[1:]) < 0):
            roots.append(brentq(w, grid[i], grid[i + 1], xtol=1e-300, rtol=4 * np.finfo(float).eps))
        roots.extend(grid[values == 0.0])
    return roots


def fit_gpd(peaks: np.ndarray) -> tuple[float, float]:
    """Maximum-likelihood (shape gamma, scale sigma) of a generalized Pareto on positive ``peaks``,
    by Grimshaw's trick: each root x gives gamma = v(x) - 1, sigma = gamma / x; the exponential
    case gamma = 0 (sigma = mean) is always a candidate; the highest log-likelihood wins."""
    peaks = np.asarray(peaks, dtype=float)
    best = (0.0, float(peaks.mean()))
    best_ll = gpd_log_likelihood(peaks, *best)
    for x in _grimshaw_roots(peaks):
        shape = float(np.mean(np.log1p(x * peaks)))
        if shape == 0.0:
            continue
        candidate = (shape, shape / x)
        ll = gpd_log_likelihood(peaks, *candidate)
        if ll > best_ll:
            best, best_ll = candidate, ll
    return best


def pot_quantile(initial: float, shape: float, scale: float, risk: float, n: int,
                 n_peaks: int) -> float:
    """Siffer et al. 2017's extreme quantile z_q from a tail fitted above ``initial``:
    z_q = t + sigma/gamma * ((q n / N_t)^-gamma - 1), and t - sigma log(q n / N_t) when
    gamma == 0 (exponential tail); expm1 keeps it exact for small gamma. ``n`` scores were seen,
    ``n_peaks`` of them above t. Overflow gives inf; the caller guards (e.g. falls back to t)."""
    log_ratio = math.log(risk * n / n_peaks)
    if shape == 0.0:
        return initial - scale * log_ratio
    try:
        return initial + scale / shape * math.expm1(-shape * log_ratio)
    except OverflowError:
        return math.inf


def _truncated_nll(log_scale: float, shape: float, peaks: np.ndarray, limits: np.ndarray) -> float:
    """Minus the log-likelihood of peaks each observed only at or below its (finite) limit."""
    scale = math.exp(log_scale)
    ll = gpd_log_likelihood(peaks, shape, scale)
    if not math.isfinite(ll):
        return 1e300
    if shape == 0.0:
        log_survival = -limits / scale
    else:
        z = 1.0 + shape * limits / scale
        # Beyond a bounded tail's end (shape < 0) a limit truncates nothing: log F = 0.
        log_survival = np.where(z > 0, -np.log(np.maximum(z, 1e-300)) / shape, -np.inf)
    return float(-ll + np.log(-np.expm1(log_survival)).sum())


def fit_gpd_scale(peaks: np.ndarray, shape: float, start: float,
                  limits: np.ndarray | None = None) -> float:
    """Maximum-likelihood scale of a generalized Pareto of known ``shape`` on positive
    ``peaks``, where peak i was only observed because it lay at or below ``limits[i]`` (inf or
    None: no limit), so its density is divided by F(limit). Bounded Brent search on log scale
    within e^-3 .. e^3 of ``start`` (deterministic), kept inside the support for shape < 0."""
    from scipy.optimize import minimize_scalar

    peaks = np.asarray(peaks, dtype=float)
    limits = np.full(peaks.size, math.inf) if limits is None else np.asarray(limits, float)
    limits = limits[np.isfinite(limits)]
    low, high = math.log(start) - 3.0, math.log(start) + 3.0
    if shape < 0:  # support: every peak below the end -scale/shape
        low = max(low, math.log(-shape * float(peaks.max())) + 1e-9)
    if not low < high:
        return start
    result = minimize_scalar(_truncated_nll, bounds=(low, high), method="bounded",
                             args=(shape, peaks, limits), options={"xatol": 1e-7})
    return math.exp(float(result.x)) if result.fun < 1e300 else start
