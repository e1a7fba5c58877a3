"""Fast scoring of isolation trees, kept apart from the detector so the kernels can be tested
(and swapped) on their own.

Every tree is stored as a complete binary heap of depth ``D`` (scikit-learn's ``max_depth``,
``ceil(log2(max_samples))``): internal node ``h`` has children ``2h+1`` (go left,
``x <= threshold``) and ``2h+2``, so no child pointers are stored or loaded. A leaf of
scikit-learn's tree above depth ``D`` becomes a chain of nodes with threshold ``+inf`` (always
left), and its path-length value is copied to every bottom slot below it: a traversal is then
exactly ``D`` branch-free steps and one load of a precomputed value.

Two engines give bit-identical results (same comparisons, same summation order as
scikit-learn: tree by tree from 0.0): ``"numba"`` (the optional extra ``vigil[fast]``) and
``"numpy"`` (a level-by-level traversal, several times slower).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

ENGINES = ("numba", "numpy")
#: Rows one numba task scores tree by tree: 512 float32 rows of a few channels and one tree
#: (~6 KB at max_samples=256) stay in L1 cache while every tree passes over them.
_BLOCK_ROWS = 512


def average_path_length(n: np.ndarray | int) -> np.ndarray:
    """c(n): average path length of an unsuccessful BST search among ``n`` points (Liu et al.
    2008, eq. 1), as scikit-learn computes it (0 for n <= 1, 1 for n == 2)."""
    n = np.asarray(n, dtype=np.float64)
    safe = np.maximum(n, 3.0)  # keeps log() away from n <= 2, which np.where overrides
    general = 2.0 * (np.log(safe - 1.0) + np.euler_gamma) - 2.0 * (safe - 1.0) / safe
    return np.where(n <= 1, 0.0, np.where(n == 2, 1.0, general))


def floor_to_float32(threshold: np.ndarray) -> np.ndarray:
    """The largest float32 at or below each float64 threshold.

    scikit-learn rounds inputs to float32 and compares ``x32 <= t64``; for any float32 ``x``
    that is the same as ``x <= floor32(t64)``, so thresholds can be stored in half the bytes.
    """
    t32 = threshold.astype(np.float32)
    above = t32.astype(np.float64) > threshold
    return np.where(above, np.nextafter(t32, np.float32(-np.inf)), t32)


def heap_from_sklearn(forest: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flatten a fitted ``sklearn.ensemble.IsolationForest`` into heap arrays.

    Returns ``feature`` (int32[T, 2^D - 1], column of the scored row), ``threshold``
    (float32[T, 2^D - 1]) and ``leaf_value`` (float64[T, 2^D]: the leaf's depth plus
    c(samples in the leaf), i.e. scikit-learn's ``depth + c(n) - 1`` with a root depth of 1).
    """
    def path_length(tree: Any) -> np.ndarray:
        # exactly scikit-learn's per-leaf expression, so the sums match bit for bit
        return tree.compute_node_depths() + average_path_length(tree.n_node_samples) - 1.0

    depth = int(np.ceil(np.log2(max(forest.max_samples_, 2))))
    trees = [est.tree_ for est in forest.estimators_]
    return heap_from_trees(trees, forest.estimators_features_, depth, path_length)


def heap_from_trees(trees: list[Any], columns: list[np.ndarray], depth: int,
                    node_value: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flatten fitted scikit-learn trees (``tree_`` objects) of depth at most ``depth`` into
    heap arrays ``feature``, ``threshold`` and ``leaf_value`` (see :func:`heap_from_sklearn`);
    ``columns[t]`` maps tree ``t``'s features to columns of the scored row, and
    ``node_value(tree)`` gives a value per node, read at the leaves.
    """
    n_trees, n_internal = len(trees), 2**depth - 1
    feature = np.zeros((n_trees, n_internal), dtype=np.int32)
    threshold = np.full((n_trees, n_internal), np.inf, dtype=np.float32)
    # one slot per heap position of all D + 1 levels; pushed down to the bottom level below
    value = np.full((n_trees, 2 * n_internal + 1), np.nan)
    for t, (tree, cols) in enumerate(zip(trees, columns)):
        node_depth = tree.compute_node_depths()  # the root has depth 1
        if node_depth.max() > depth + 1:
            raise ValueError(f"tree {t} is deeper than {depth}")
        heap = _heap_positions(tree.children_left, tree.children_right, node_depth)
        internal = tree.children_left != -1
        feature[t, heap[internal]] = np.asarray(cols)[tree.feature[internal]]
        threshold[t, heap[internal]] = floor_to_float32(tree.threshold[internal])
        value[t, heap[~internal]] = np.asarray(node_value(tree))[~internal]
    for level in range(depth):  # a leaf above the bottom hands its value to both children
        first, last = 2**level - 1, 2 ** (level + 1) - 1
        for side in (1, 2):
            child = value[:, 2 * first + side : 2 * last + side : 2]
            np.copyto(child, value[:, first:last], where=np.isnan(child))
    return feature, threshold, np.ascontiguousarray(value[:, n_internal:])


def checked_heaps(det: Any) -> None:
    """Set ``det``'s heap arrays (``feature_``, ``threshold_``, ``leaf_value_``) to the dtypes
    the kernels read, or raise ModelFileError where their shapes do not fit together or a
    feature column lies outside ``window x channels``: the numba kernel does no bounds
    checks, so a tampered model file must not reach it."""
    from vigil.errors import ModelFileError

    try:
        det.feature_ = np.ascontiguousarray(det.feature_, dtype=np.int32)
        det.threshold_ = np.ascontiguousarray(det.threshold_, dtype=np.float32)
        det.leaf_value_ = np.ascontiguousarray(det.leaf_value_, dtype=np.float64)
        n_trees, n_internal = det.feature_.shape
    except (AttributeError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{det.name} state is incomplete or malformed: {exc}") from exc
    n_columns = (det.window or 1) * det.n_channels_
    if (
        n_internal < 1
        or n_internal & (n_internal + 1)  # not 2^D - 1
        or det.threshold_.shape != (n_trees, n_internal)
        or det.leaf_value_.shape != (n_trees, n_internal + 1)
        or det.feature_.min() < 0
        or det.feature_.max() >= n_columns
    ):
        raise ModelFileError(
            f"{det.name} state arrays do not fit together (or do not match window="
            f"{det.window} and {det.n_channels_} channel(s)); the model file is damaged or "
            "from another version: fit the model again.")


def _heap_positions(left: np.ndarray, right: np.ndarray, node_depth: np.ndarray) -> np.ndarray:
    """Heap index of every node of one scikit-learn tree, one level at a time."""
    heap = np.zeros(len(left), dtype=np.int64)
    internal = left != -1
    for level in range(1, int(node_depth.max())):
        parents = np.flatnonzero(internal & (node_depth == level))
        heap[left[parents]] = 2 * heap[parents] + 1
        heap[right[parents]] = 2 * heap[parents] + 2
    return heap


_forced_engine: str | None = None


@contextlib.contextmanager
def use_engine(engine: str) -> Iterator[None]:
    """Send all scoring inside the ``with`` block through one engine (tests, benchmarks)."""
    global _forced_engine
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}; got {engine!r}.")
    previous, _forced_engine = _forced_engine, engine
    try:
        yield
    finally:
        _forced_engine = previous


def default_engine() -> str:
    """The engine set by :func:`use_engine`, else ``"numba"`` where numba imports, else
    ``"numpy"``."""
    if _forced_engine is not None:
        return _forced_engine
    try:
        _numba_kernel()
    except ImportError:
        return "numpy"
    return "numba"


def path_length_sums(
    rows: np.ndarray,
    feature: np.ndarray,
    threshold: np.ndarray,
    leaf_value: np.ndarray,
    engine: str | None = None,
) -> np.ndarray:
    """Sum over trees of each row's path length, ``float64[n]``.

    ``rows`` is ``float32[n, k]``: the rounding scikit-learn applies before comparing. A strided
    view whose rows overlap (``trailing_windows``) is read in place, never copied.
    """
    engine = engine or default_engine()
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}; got {engine!r}.")
    rows = np.asarray(rows, dtype=np.float32)
    if feature.size and not 0 <= feature.min() <= feature.max() < rows.shape[1]:
        # the numba kernel does not check bounds: refuse rather than read past the rows
        raise ValueError(f"the trees use columns up to {feature.max()}; rows have {rows.shape[1]}.")
    flat, stride = _flat_rows(rows)
    out = np.empty(len(rows))
    if len(rows) == 0:
        return out
    if engine == "numba":
        _numba_kernel()(flat, stride, len(rows), feature, threshold, leaf_value, out)
    else:
        _path_sums_numpy(flat, stride, len(rows), feature, threshold, leaf_value, out)
    return out


def _flat_rows(rows: np.ndarray) -> tuple[np.ndarray, int]:
    """A read-only 1-D float32 array and a row stride: row ``i`` starts at ``flat[i * stride]``.

    One array type for every caller means numba compiles (and caches) a single specialisation.
    """
    size = rows.itemsize
    step = rows.strides[0] if rows.ndim == 2 else -1
    if rows.ndim != 2 or rows.strides[1] != size or step < 0 or step % size:
        rows = np.ascontiguousarray(rows)
    stride = rows.strides[0] // size if len(rows) > 1 else rows.shape[1]
    span = (len(rows) - 1) * stride + rows.shape[1] if len(rows) else 0
    return as_strided(rows, shape=(span,), strides=(size,), writeable=False), stride


def _path_sums_numpy(flat, stride, n_rows, feature, threshold, leaf_value, out) -> None:
    """Tree by tree, level by level over all rows at once (the fallback without numba)."""
    n_trees, n_internal = feature.shape
    depth = n_internal.bit_length()
    starts = np.arange(n_rows, dtype=np.intp) * stride
    out[:] = 0.0
    node = np.empty(n_rows, dtype=np.intp)
    for t in range(n_trees):
        node[:] = 0
        for _ in range(depth):
            right = flat[starts + feature[t, node]] > threshold[t, node]
            node *= 2
            node += 1
            node += right
        out += leaf_value[t, node - n_internal]


def _path_sums_python(flat, stride, n_rows, feature, threshold, leaf_value, out):  # noqa: C901
    """The numba kernel's source (compiled by :func:`_numba_kernel`).

    Row blocks run in parallel; inside a block each tree passes over all rows while it sits in
    L1. Eight rows descend together: one descent is a chain of dependent loads (node ->
    feature -> value), so interleaving eight independent chains keeps the core busy (measured
    ~2-3x faster than one row at a time). No fastmath: the comparisons and the tree-by-tree
    summation order must stay exactly scikit-learn's.
    """
    n_trees, n_internal = feature.shape
    depth = 0
    while (1 << depth) - 1 < n_internal:
        depth += 1
    n_blocks = (n_rows + _BLOCK_ROWS - 1) // _BLOCK_ROWS
    for b in _prange(n_blocks):
        lo = b * _BLOCK_ROWS
        hi = min(n_rows, lo + _BLOCK_ROWS)
        acc = np.zeros(hi - lo)
        for t in range(n_trees):
            ft, tt, lv = feature[t], threshold[t], leaf_value[t]
            i = lo
            while i + 8 <= hi:
                s = i * stride
                a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = 0
                for _ in range(depth):
                    a0 = 2 * a0 + 1 + (flat[s + ft[a0]] > tt[a0])
                    a1 = 2 * a1 + 1 + (flat[s + stride + ft[a1]] > tt[a1])
                    a2 = 2 * a2 + 1 + (flat[s + 2 * stride + ft[a2]] > tt[a2])
                    a3 = 2 * a3 + 1 + (flat[s + 3 * stride + ft[a3]] > tt[a3])
                    a4 = 2 * a4 + 1 + (flat[s + 4 * stride + ft[a4]] > tt[a4])
                    a5 = 2 * a5 + 1 + (flat[s + 5 * stride + ft[a5]] > tt[a5])
                    a6 = 2 * a6 + 1 + (flat[s + 6 * stride + ft[a6]] > tt[a6])
                    a7 = 2 * a7 + 1 + (flat[s + 7 * stride + ft[a7]] > tt[a7])
                k = i - lo
                acc[k] += lv[a0 - n_internal]
                acc[k + 1] += lv[a1 - n_internal]
                acc[k + 2] += lv[a2 - n_internal]
                acc[k + 3] += lv[a3 - n_internal]
                acc[k + 4] += lv[a4 - n_internal]
                acc[k + 5] += lv[a5 - n_internal]
                acc[k + 6] += lv[a6 - n_internal]
                acc[k + 7] += lv[a7 - n_internal]
                i += 8
            while i < hi:  # the block's last rows, one at a time
                node = 0
                for _ in range(depth):
                    node = 2 * node + 1 + (flat[i * stride + ft[node]] > tt[node])
                acc[i - lo] += lv[node - n_internal]
                i += 1
        out[lo:hi] = acc


_prange = range  # replaced by numba.prange inside the compiled kernel


@functools.cache
def _numba_kernel():
    """Compile (or load from numba's on-disk cache) the kernel; ImportError without numba."""
    import numba

    global _prange  # the kernel's loop over row blocks becomes numba's parallel loop
    _prange = numba.prange
    return numba.njit(parallel=True, cache=True, nogil=True)(_path_sums_python)
