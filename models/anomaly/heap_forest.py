"""Isolation-forest scoring with every tree padded to a complete binary tree: a fixed-length, branchless walk.

Why (profiled at batch 1, 100 trees of depth <= 8, on fresh rows): walking the fitted trees as they
are, each step ends in a data-dependent branch (leaf or not, left or right) that the CPU mispredicts
about half the time, and each tree's walk must finish before the next one starts. That kernel made
~115k rows/s on rows it had not seen (~170k when the same row is scored again and again, because the
branch predictor then learns the row's paths). Here:

- every tree is padded to depth ``D`` (the forest's deepest tree) and stored in heap order, so the
  children of node ``k`` are ``2k + 1`` and ``2k + 2``: a step is ``k = 2k + 1 + (x[f] > t)``, no
  child array and no leaf test; a leaf of the fitted tree above depth ``D`` is copied to every
  heap leaf below it, and the padding nodes in between send everything left (threshold ``+inf``);
- the walk has exactly ``D`` steps, so the loop branch is predictable and the comparison becomes a
  ``setcc``: no mispredictions;
- eight trees are walked in lockstep, so the CPU overlaps eight independent chains of dependent loads
  (the tree count is padded to a multiple of four with trees whose leaves add 0.0, and a last block of
  four is walked four-wide: 100 trees walked as 104 spent ~4 % of the walk on padding);
- a row holding a NaN takes a careful walk that follows each node's NaN direction.

The compact layout (session 14; profiled at batch 1: of ~4.0 µs per call, ~2.3 µs was the walk,
~0.7 µs numba's unboxing of eight arguments and ~1.0 µs the Python wrapper):

- thresholds are float32, rounded toward -inf (:func:`float32_floor`), and the walk compares the
  row's value rounded to float32 with them, which is exactly scikit-learn's decision (see there);
  the kernel rounds the batch once into a private float32 copy: rounding in the walk put a
  conversion on every step's chain of dependent loads (the copy is ~12-17 % faster at batch 8-1024,
  and at batch 1 its allocation about cancels what it saves);
- split columns are uint16, and each heap leaf holds a uint16 index into one table of the forest's
  distinct leaf values (float64, a few hundred of them: it stays in L1): ~270 KB for 100 trees of
  depth 8 (the clean walk reads ~210 KB of it) instead of ~660 KB (int64 columns, float64 thresholds
  and leaves), so more of the forest stays in cache between the worker's calls;
- node indices are unsigned: numba then omits the negative-index fix-up of every array access
  (with the rounding in the walk, the walk went from 1.8 to 1.2 µs per row in one A/B; unsigned
  indices alone to 1.4);
- a batch is checked for NaN while it is rounded: a batch without NaN, the usual case, is walked
  as it is, and a batch with one is scored row by row, each row by the lockstep walk or, if it
  holds a NaN, by the careful one;
- the split columns, the leaves' table indices and the NaN directions share one uint16 array, and the
  depth is implied by its shape: numba unboxes each array argument for ~75 ns, so the layout's
  sections must not become arguments of their own. (One byte array holding every section would
  save two more, but its typed views cost numba ~35 ns each and a reshape ~40 ns: no gain.)

Scores are scikit-learn's: each tree's leaf value (``depth + c(n_leaf) - 1``, the same float operations)
is added in tree order, and the score is ``-2^(-sum / denominator)``. Only that last power can differ,
by one unit in the last place, because numpy computes it with its own SIMD ``pow``.

The padded layout costs ``2^(D+1)`` entries per tree, so it is used up to depth
:data:`MAX_HEAP_DEPTH`; deeper forests (``max_samples`` above 1024) keep the node-by-node walker.

Thread safety: the kernel writes only ``out`` and its own rounded copy of the rows, so one forest
may score from several threads at once (the worker calls it from one).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final

import numba
import numpy as np
import numpy.typing as npt

from models.anomaly.detector import FloatArray
from models.arrays import IntArray
from models.numba_config import SealedKernel, inline_kernel, kernel

__all__ = ["MAX_HEAP_DEPTH", "HeapForest", "HeapTree", "build_heap_forest", "float32_floor"]

MAX_HEAP_DEPTH: Final = 10  # 2047 heap positions per tree: ~1 MB for 100 trees
Float32Array = npt.NDArray[np.float32]
Uint16Array = npt.NDArray[np.uint16]
_LANES: Final = 8  # trees walked in lockstep; at batch 1, 4 lanes beat 1 by ~2.5x and 8 beat 4 by ~18 %
_TAIL_LANES: Final = 4  # the last block of trees when the count is not a multiple of _LANES
_MAX_INDEX: Final = 1 << 16  # split columns and leaf-table indices are uint16


@dataclass(frozen=True, slots=True)
class HeapTree:
    """One fitted tree as scikit-learn stores it, with each node's precomputed leaf value."""

    left: IntArray  # child ids, -1 at a leaf
    right: IntArray
    feature: IntArray  # column of the forest's input (already mapped through the tree's feature subset)
    threshold: FloatArray
    nan_right: IntArray  # 1 when a NaN goes right at this node
    leaf_value: FloatArray  # depth + c(n_leaf) - 1 at leaves
    max_depth: int


@dataclass(frozen=True, slots=True)
class HeapForest:
    """All trees padded to depth ``depth``, in heap order: ``2^depth - 1`` split nodes per tree, then
    ``2^depth`` leaves.

    ``n_trees`` (the rows of every array) is the forest's tree count rounded up to a multiple of
    four; the extra trees score 0. Blocks of eight are walked in lockstep, then a last block of four.
    """

    n_features: int  # the width of the rows it scores
    depth: int
    thresholds: Float32Array  # (n_trees, 2^depth - 1): float32_floor of each split's threshold
    # (n_trees, 3 * 2^depth - 2), by heap position k: for a split node (k < 2^depth - 1) its column,
    # for a leaf its index into table, and at 2^(depth+1) - 1 + k 1 when a NaN goes right at split k.
    nodes: Uint16Array
    # The distinct leaf values (depth + c(n_leaf) - 1), then the denominator (n_trees * c(max_samples),
    # the forest's real tree count) and the width: numba unboxes a scalar argument for ~20 ns, an array
    # it reads anyway carries them for free.
    table: FloatArray

    def scores(self, features: object, sign: float) -> FloatArray | None:
        """``sign * score_samples(features)``, or None unless ``features`` is a C-contiguous float64
        ``(n, n_features)`` array: the caller then checks it (and raises) and calls :meth:`score_into`.

        At batch 1 the Python around the kernel cost a quarter of the call (~1 µs: attribute checks,
        method calls). Here the kernel is called straight away with compilation disabled, so numba's
        dispatcher checks the types in C as part of the call and raises TypeError for anything else,
        and the kernel checks the width.
        """
        if type(features) is not np.ndarray or not _SEALED.ready:
            return None
        try:
            out = np.empty(len(features))
            fits = _heap_walk_kernel(
                features,
                self.thresholds,
                self.nodes,
                self.table,
                sign,
                out,
            )
        except TypeError:
            return None
        return out if fits else None

    def score_into(self, features: FloatArray, sign: float, out: FloatArray) -> None:
        """``out[i] = sign * score_samples(features)[i]``; ``features`` C-contiguous float64 (n, f)."""
        _SEALED.seal()
        dispatcher: Any = _heap_walk_kernel
        # Valid but not one of the sealed types (an ndarray subclass): a plain array, the same memory.
        features = np.asarray(features)
        if not dispatcher(features, self.thresholds, self.nodes, self.table, sign, out):
            raise ValueError(f"features: expected shape (n, {self.n_features}), got {features.shape}")


def float32_floor(thresholds: FloatArray) -> Float32Array:
    """Each threshold rounded toward -inf to float32: the largest float32 ``T`` with ``T <= t``.

    For every float32 ``x`` (the row's value, rounded as scikit-learn rounds ``X``), ``x <= t`` if
    and only if ``x <= T``: if ``x <= T`` then ``x <= T <= t``; if ``x <= t`` then ``x`` is a float32
    not above ``t``, and ``T`` is the largest of those, so ``x <= T``. Hence ``x > T`` is exactly
    scikit-learn's "go right" (``not x <= t``) for every non-NaN ``x``, infinities included: a ``t``
    above the largest float32 gives ``T = FLT_MAX`` (only ``x = +inf`` goes right), one below
    ``-FLT_MAX`` gives ``T = -inf`` (every ``x`` but ``-inf`` goes right), and ``t = +inf`` (padding
    nodes) gives ``+inf``. Round-to-nearest would not do: a ``t`` just below a float32 ``v`` rounds up
    to ``v``, and ``x = v`` would go left instead of right.
    """
    t = np.asarray(thresholds, dtype=np.float64)
    with np.errstate(over="ignore"):  # beyond float32's range: inf, stepped back below
        nearest = t.astype(np.float32)
    above = nearest.astype(np.float64) > t
    nearest[above] = np.nextafter(nearest[above], np.float32(-np.inf))
    return nearest


def build_heap_forest(trees: list[HeapTree], denominator: float, n_features: int) -> HeapForest | None:
    """The padded layout of ``trees``, or None when the deepest tree is deeper than MAX_HEAP_DEPTH
    (or, which no forest of that depth reaches, a column or leaf-value count does not fit uint16)."""
    depth = max((tree.max_depth for tree in trees), default=0)
    if depth > MAX_HEAP_DEPTH or not trees:
        return None
    if n_features > _MAX_INDEX:
        return None
    n_internal = 2**depth - 1
    n_heap = 2 * n_internal + 1
    n_trees = -(-len(trees) // _TAIL_LANES) * _TAIL_LANES
    features = np.zeros((n_trees, n_internal), dtype=np.uint16)
    nan_right = np.zeros((n_trees, n_internal), dtype=np.uint16)
    # Padding nodes: threshold +inf sends every value left (NaN too, with nan_right 0).
    thresholds = np.full((n_trees, n_internal), np.inf)
    leaves = np.zeros((n_trees, n_heap - n_internal))  # padding trees: every leaf adds 0.0
    for t, tree in enumerate(trees):
        stack = [(0, 0, 0)]  # (node id in the fitted tree, heap position, depth)
        while stack:
            node, position, level = stack.pop()
            if tree.left[node] == -1:
                # Every heap leaf under this position carries the fitted leaf's value: a contiguous range.
                span = 2 ** (depth - level)
                first = (position + 1) * span - 1 - n_internal
                leaves[t, first : first + span] = tree.leaf_value[node]
                continue
            features[t, position] = tree.feature[node]
            nan_right[t, position] = tree.nan_right[node]
            thresholds[t, position] = tree.threshold[node]
            stack.append((int(tree.left[node]), 2 * position + 1, level + 1))
            stack.append((int(tree.right[node]), 2 * position + 2, level + 1))
    table, leaf_index = np.unique(leaves, return_inverse=True)  # exact float64 values, no rounding
    if table.shape[0] > _MAX_INDEX:
        return None
    nodes = np.concatenate([features, leaf_index.reshape(leaves.shape).astype(np.uint16), nan_right], axis=1)
    return HeapForest(
        n_features=n_features,
        depth=depth,
        thresholds=np.ascontiguousarray(float32_floor(thresholds)),
        nodes=np.ascontiguousarray(nodes),
        table=np.ascontiguousarray(np.append(table, [denominator, n_features]), dtype=np.float64),
    )


@kernel
def _heap_walk_kernel(
    x: FloatArray,
    thresholds: Float32Array,
    nodes: Uint16Array,
    table: FloatArray,
    sign: float,
    out: FloatArray,
) -> bool:
    """Scores ``x`` into ``out``; False (and nothing written) when ``x`` has not the forest's width."""
    denominator = table[table.shape[0] - 2]
    if x.shape[1] != table[table.shape[0] - 1] or out.shape[0] != x.shape[0]:
        return False
    depth = 0
    while (1 << depth) - 1 < thresholds.shape[1]:
        depth += 1
    n = x.shape[0]
    n_trees = thresholds.shape[0]
    tail = n_trees - n_trees % _LANES  # the last block: _TAIL_LANES trees (or none)
    # The rows rounded to float32 as scikit-learn rounds them, once, not at every step (the module
    # docstring says why): ``rounded > T`` is its decision (float32_floor says why).
    rounded = np.empty((n, x.shape[1]), dtype=np.float32)
    clean = True  # no NaN: NaN is the one value whose walk is not ``x > T``
    for i in range(n):
        for j in range(x.shape[1]):
            rounded[i, j] = x[i, j]
            clean &= not math.isnan(x[i, j])
    if n == 1 or not clean:
        # Row by row: at batch 1 the running sum stays in a register (~0.2 µs faster than the loop
        # below); a batch holding a NaN comes here too, so the fast loop below has no NaN branch
        # (which cost it ~0.3 µs per row even when not taken). A row holding a NaN walks its trees
        # one after another.
        for i in range(n):
            total = 0.0
            if clean or _rows_are_clean(x[i : i + 1]):
                for t in range(0, tail, _LANES):
                    lanes = _walk_lanes(rounded, i, t, depth, thresholds, nodes)
                    total = _add_leaves(total, t, lanes, nodes, table)
                if tail < n_trees:
                    last = _walk_tail(rounded, i, tail, depth, thresholds, nodes)
                    total = _add_tail(total, tail, last, nodes, table)
            else:
                for t in range(n_trees):
                    total += table[nodes[t, _walk_one(rounded, i, t, depth, thresholds, nodes)]]
            out[i] = sign * _score(total, denominator)
        return True
    # Tree-block major: eight trees' nodes stay in L1 while every row walks them (at batch 256, ~25 %
    # faster than row by row). Each row still adds its trees in tree order.
    out[:] = 0.0
    for t in range(0, tail, _LANES):
        for i in range(n):
            out[i] = _add_leaves(
                out[i], t, _walk_lanes(rounded, i, t, depth, thresholds, nodes), nodes, table
            )
    if tail < n_trees:
        for i in range(n):
            out[i] = _add_tail(
                out[i], tail, _walk_tail(rounded, i, tail, depth, thresholds, nodes), nodes, table
            )
    for i in range(n):
        out[i] = sign * _score(out[i], denominator)
    return True


def _kernel_signatures() -> list[tuple[Any, ...]]:
    # Rows may be read-only (a view of a decoded frame); the forest's arrays are built here.
    types = numba.types
    return [
        (
            types.Array(types.float64, 2, "C", readonly=readonly),
            types.Array(types.float32, 2, "C"),
            types.Array(types.uint16, 2, "C"),
            types.Array(types.float64, 1, "C"),
            types.float64,
            types.Array(types.float64, 1, "C"),
        )
        for readonly in (False, True)
    ]


_SEALED: Final = SealedKernel(_heap_walk_kernel, _kernel_signatures)


_Lanes = tuple[np.uint64, np.uint64, np.uint64, np.uint64, np.uint64, np.uint64, np.uint64, np.uint64]


@inline_kernel
def _walk_lanes(
    x: Float32Array,
    i: int,
    t: int,
    depth: int,
    thresholds: Float32Array,
    nodes: Uint16Array,
) -> _Lanes:
    """The heap leaves row ``i`` (without NaN) reaches in trees ``t`` to ``t + 7``, walked in lockstep."""
    one = np.uint64(1)
    a = b = c = d = e = f = g = h = np.uint64(0)
    for _ in range(depth):
        a = a + a + one + np.uint64(x[i, nodes[t, a]] > thresholds[t, a])
        b = b + b + one + np.uint64(x[i, nodes[t + 1, b]] > thresholds[t + 1, b])
        c = c + c + one + np.uint64(x[i, nodes[t + 2, c]] > thresholds[t + 2, c])
        d = d + d + one + np.uint64(x[i, nodes[t + 3, d]] > thresholds[t + 3, d])
        e = e + e + one + np.uint64(x[i, nodes[t + 4, e]] > thresholds[t + 4, e])
        f = f + f + one + np.uint64(x[i, nodes[t + 5, f]] > thresholds[t + 5, f])
        g = g + g + one + np.uint64(x[i, nodes[t + 6, g]] > thresholds[t + 6, g])
        h = h + h + one + np.uint64(x[i, nodes[t + 7, h]] > thresholds[t + 7, h])
    return a, b, c, d, e, f, g, h


_Tail = tuple[np.uint64, np.uint64, np.uint64, np.uint64]


@inline_kernel
def _walk_tail(
    x: Float32Array,
    i: int,
    t: int,
    depth: int,
    thresholds: Float32Array,
    nodes: Uint16Array,
) -> _Tail:
    """:func:`_walk_lanes` for the last block, trees ``t`` to ``t + 3``."""
    one = np.uint64(1)
    a = b = c = d = np.uint64(0)
    for _ in range(depth):
        a = a + a + one + np.uint64(x[i, nodes[t, a]] > thresholds[t, a])
        b = b + b + one + np.uint64(x[i, nodes[t + 1, b]] > thresholds[t + 1, b])
        c = c + c + one + np.uint64(x[i, nodes[t + 2, c]] > thresholds[t + 2, c])
        d = d + d + one + np.uint64(x[i, nodes[t + 3, d]] > thresholds[t + 3, d])
    return a, b, c, d


@inline_kernel
def _add_leaves(total: float, t: int, lanes: _Lanes, nodes: Uint16Array, table: FloatArray) -> float:
    """``total`` plus the leaf values of trees ``t`` to ``t + 7``, added in tree order."""
    a, b, c, d, e, f, g, h = lanes
    total += table[nodes[t, a]]
    total += table[nodes[t + 1, b]]
    total += table[nodes[t + 2, c]]
    total += table[nodes[t + 3, d]]
    total += table[nodes[t + 4, e]]
    total += table[nodes[t + 5, f]]
    total += table[nodes[t + 6, g]]
    total += table[nodes[t + 7, h]]
    return total


@inline_kernel
def _add_tail(total: float, t: int, lanes: _Tail, nodes: Uint16Array, table: FloatArray) -> float:
    """``total`` plus the leaf values of trees ``t`` to ``t + 3``, added in tree order."""
    a, b, c, d = lanes
    total += table[nodes[t, a]]
    total += table[nodes[t + 1, b]]
    total += table[nodes[t + 2, c]]
    total += table[nodes[t + 3, d]]
    return total


@inline_kernel
def _score(total: float, denominator: float) -> float:
    return -(2.0 ** (-(total / denominator))) if denominator != 0.0 else -1.0


@inline_kernel
def _rows_are_clean(x: FloatArray) -> bool:
    """No NaN in ``x`` (NaN is the one value whose walk is not ``x > T``)."""
    clean = True
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            clean &= not math.isnan(x[i, j])
    return clean


@kernel
def _walk_one(
    x: Float32Array, i: int, t: int, depth: int, thresholds: Float32Array, nodes: Uint16Array
) -> np.uint64:
    nan_right = np.uint64(2 * thresholds.shape[1] + 1)  # where tree t's NaN directions start in nodes
    node = np.uint64(0)
    one = np.uint64(1)
    for _ in range(depth):
        v = x[i, nodes[t, node]]
        if math.isnan(v):  # x <= t is false for NaN: the node's missing-value direction decides
            node = node + node + one + np.uint64(nodes[t, nan_right + node])
        else:
            node = node + node + one + np.uint64(v > thresholds[t, node])
    return node
