"""Isolation forest: fitted by scikit-learn, scored by a numba walk over its trees flattened to arrays.

scikit-learn's ``score_samples`` costs ~4 ms per call whatever the batch (input validation, joblib,
one ``tree.apply`` per tree), which caps one-row-at-a-time scoring near 250 rows/s. Two compiled
layouts replace it:

- the scorer: every tree padded to a complete binary tree in heap order and walked branch-free,
  eight trees in lockstep (:mod:`models.anomaly.heap_forest`, which says why and what it costs);
- the node walk below, which scores forests too deep to pad (``max_samples`` above 1024) and
  computes the contributions: every tree's nodes concatenated into flat arrays (split feature,
  threshold, left child, the NaN direction and, per leaf, its path-length value), renumbered
  breadth-first with siblings adjacent, so the right child is ``left + 1``.

Both reproduce ``IsolationForest.score_samples``:

- the input is rounded to float32 first, as scikit-learn validates ``X`` to float32 before
  ``tree.apply``; the comparison ``x <= threshold`` is then made in float64, as in its C code (the
  padded walk compares in float32 with thresholds rounded toward -inf, which decides alike for
  every float32 ``x``: :func:`models.anomaly.heap_forest.float32_floor`);
- a NaN goes the way the node's ``missing_go_to_left`` says (``x <= t`` is false for NaN, so it
  is tested first);
- each tree adds ``depth(leaf) + c(n_leaf) - 1`` in tree order, with
  ``c(n) = 2 (ln(n - 1) + γ) - 2 (n - 1) / n`` (``c(1) = 0``, ``c(2) = 1``) the average path
  length of an unsuccessful search among the ``n`` training samples left in the leaf; the leaf
  value is precomputed with the same float operations as scikit-learn;
- the score is ``-2^(-depths / (n_trees c(max_samples)))``, with 1 when the denominator is zero
  (this power alone may differ from scikit-learn's by one unit in the last place: numpy computes it
  with its own SIMD ``pow``);
- with ``max_features < 1`` each tree's split features are mapped through its feature subset.

The detector's ``score`` is the negated ``score_samples`` (higher is more anomalous), negated inside
the kernel so that batch 1 pays for no second array operation.

Contributions (an explanation, not part of the score): for each tree, the feature of the last split
on the row's path, the one that isolated it, is credited ``1 / depth``; short paths are what make
a row anomalous, so features isolating it early weigh most. Credits are averaged over trees.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from sklearn.ensemble import IsolationForest

from models.anomaly.detector import FloatArray, as_matrix
from models.anomaly.heap_forest import HeapForest, HeapTree, build_heap_forest
from models.arrays import IntArray
from models.numba_config import kernel

__all__ = ["KIND", "CompiledForest", "IsolationForestDetector", "compile_forest", "fit_isolation_forest"]

KIND: Final = "isolation_forest"
_LEAF: Final = -1


# Node layout: ``links[node] = (feature, left child, NaN goes right)``, ``values[node] = (threshold,
# leaf value)``. Two small rows per node rather than five parallel arrays: a step of the walk touches
# two cache lines instead of five, and the kernel takes fewer arguments (numba's call overhead grows
# with each one, and at batch 1 that overhead is a third of the cost).
_FEATURE, _CHILD, _NAN_RIGHT = 0, 1, 2
_THRESHOLD, _LEAF_VALUE = 0, 1


@kernel
def _walk_kernel(
    x: npt.NDArray[np.float32],
    roots: IntArray,
    links: IntArray,
    values: FloatArray,
    denominator: float,
    sign: float,
    out: FloatArray,
) -> None:
    n = x.shape[0]
    out[:] = 0.0
    # Tree-major: one tree's nodes stay in cache while every row of the batch walks it. Each row still
    # adds its trees in tree order, so the sum (and its rounding) is scikit-learn's.
    for t in range(roots.shape[0]):
        root = roots[t]
        for i in range(n):
            node = root
            f = links[node, _FEATURE]
            while f != _LEAF:
                v = x[i, f]
                # Children are adjacent (right = left + 1): the comparison picks one without a branch.
                if math.isnan(v):
                    node = links[node, _CHILD] + links[node, _NAN_RIGHT]
                else:
                    node = links[node, _CHILD] + (1 if np.float64(v) > values[node, _THRESHOLD] else 0)
                f = links[node, _FEATURE]
            out[i] += values[node, _LEAF_VALUE]
    for i in range(n):
        out[i] = sign * (-(2.0 ** (-(out[i] / denominator))) if denominator != 0.0 else -1.0)


@kernel
def _credit_kernel(
    x: npt.NDArray[np.float32], roots: IntArray, links: IntArray, values: FloatArray, contrib: FloatArray
) -> None:
    n = x.shape[0]
    n_trees = roots.shape[0]
    for i in range(n):
        for t in range(n_trees):
            node = roots[t]
            last = -1
            steps = 0
            while links[node, _FEATURE] != _LEAF:
                last = links[node, _FEATURE]
                steps += 1
                v = x[i, last]
                if math.isnan(v):
                    node = links[node, _CHILD] + links[node, _NAN_RIGHT]
                else:
                    node = links[node, _CHILD] + (1 if np.float64(v) > values[node, _THRESHOLD] else 0)
            if last >= 0:
                contrib[i, last] += 1.0 / steps / n_trees


@dataclass(frozen=True, slots=True)
class CompiledForest:
    """All trees of a fitted forest as flat node arrays; ``roots[t]`` is tree ``t``'s first node."""

    n_features: int
    roots: IntArray
    links: (
        IntArray  # (n_nodes, 3): split column (-1 at a leaf), left child (right = left + 1), NaN goes right
    )
    values: FloatArray  # (n_nodes, 2): threshold, and at leaves depth + c(n_leaf) - 1
    denominator: float  # n_trees * c(max_samples)
    heap: HeapForest | None  # the padded layout that scores (None: trees too deep, the walk above scores)

    @property
    def n_nodes(self) -> int:
        return int(self.links.shape[0])

    def score_samples(self, features: FloatArray) -> FloatArray:
        """``IsolationForest.score_samples`` (lower is more abnormal), to one unit in the last place."""
        # The padded walk's fast path first: at batch 1 every Python call and check here is ~5 % of
        # the call, so each public method tries it itself (HeapForest.scores says what it checks).
        heap = self.heap
        if heap is not None and (scores := heap.scores(features, 1.0)) is not None:
            return scores
        return self._score(features, 1.0)

    def anomaly_scores(self, features: FloatArray) -> FloatArray:
        """``-score_samples``, computed in the kernel rather than by a second array operation."""
        heap = self.heap
        if heap is not None and (scores := heap.scores(features, -1.0)) is not None:
            return scores
        return self._score(features, -1.0)

    def _score(self, features: FloatArray, sign: float) -> FloatArray:
        # The checked path: clear errors, and the node walk for forests too deep to pad.
        features = as_matrix(features, self.n_features)
        out = np.empty(features.shape[0])
        if self.heap is not None:
            self.heap.score_into(features, sign, out)
        else:
            x = features.astype(np.float32)
            _walk_kernel(x, self.roots, self.links, self.values, self.denominator, sign, out)
        return out

    def credits(self, features: FloatArray) -> FloatArray:
        x = as_matrix(features, self.n_features).astype(np.float32)
        contrib = np.zeros((x.shape[0], self.n_features))
        _credit_kernel(x, self.roots, self.links, self.values, contrib)
        return contrib


def _average_path_length(n: npt.NDArray[np.float64]) -> FloatArray:
    """c(n), with the same float operations as scikit-learn's private helper."""
    out = np.zeros(n.shape)
    two = n == 2
    many = n > 2
    out[two] = 1.0
    out[many] = 2.0 * (np.log(n[many] - 1.0) + np.euler_gamma) - 2.0 * (n[many] - 1.0) / n[many]
    return out


def _sibling_order(children_left: IntArray, children_right: IntArray) -> IntArray:
    """Old node ids in breadth-first order with each node's two children adjacent (left, right)."""
    order = [0]
    for node in order:  # the list grows while iterated: a breadth-first walk
        if children_left[node] != -1:
            order += [int(children_left[node]), int(children_right[node])]
    return np.array(order, dtype=np.int64)


def compile_forest(forest: IsolationForest) -> CompiledForest:
    """Flatten a fitted scikit-learn ``IsolationForest`` (raises ValueError if it is not fitted)."""
    estimators = getattr(forest, "estimators_", None)
    if not estimators:
        raise ValueError("isolation forest: not fitted")
    n_features = int(forest.n_features_in_)
    max_samples = float(forest._max_samples)
    if not (math.isfinite(max_samples) and max_samples >= 1):
        raise ValueError(f"isolation forest: max_samples {max_samples} is not a sample count")
    subsets = forest.estimators_features_
    if len(subsets) != len(estimators):
        raise ValueError("isolation forest: estimators and feature subsets disagree in number")
    for index, (estimator, subset) in enumerate(zip(estimators, subsets, strict=True)):
        _check_tree(estimator.tree_, subset, n_features, index)
    trees = [
        _tree_nodes(estimator.tree_, subset)
        for estimator, subset in zip(estimators, forest.estimators_features_, strict=True)
    ]
    roots, features, thresholds, children, nan_rights, values = [], [], [], [], [], []
    offset = 0
    for tree in trees:
        order = _sibling_order(tree.left, tree.right)
        position = np.empty_like(order)
        position[order] = np.arange(order.shape[0])
        is_leaf = tree.left[order] == -1
        roots.append(offset)
        features.append(np.where(is_leaf, _LEAF, tree.feature[order]))
        thresholds.append(tree.threshold[order])
        children.append(np.where(is_leaf, -1, position[np.maximum(tree.left[order], 0)] + offset))
        nan_rights.append(tree.nan_right[order])
        values.append(tree.leaf_value[order])
        offset += order.shape[0]
    denominator = len(estimators) * float(_average_path_length(np.array([float(forest._max_samples)]))[0])
    links = np.column_stack(
        [np.concatenate(features), np.concatenate(children), np.concatenate(nan_rights)]
    ).astype(np.int64)
    values_table = np.column_stack([np.concatenate(thresholds), np.concatenate(values)])
    return CompiledForest(
        n_features=n_features,
        roots=np.array(roots, dtype=np.int64),
        links=np.ascontiguousarray(links),
        values=np.ascontiguousarray(values_table, dtype=np.float64),
        denominator=denominator,
        heap=build_heap_forest(trees, denominator, n_features),
    )


def _check_tree(tree: Any, subset: npt.ArrayLike, n_features: int, index: int) -> None:
    """ValueError unless ``tree`` is a well-formed binary tree over the forest's columns.

    A model file is input: a tree whose child indices leave the node arrays or loop back makes
    scikit-learn's own depth computation read out of bounds (a segfault) and a walk never end.
    scikit-learn numbers every child after its parent, so ``parent < child < n_nodes`` for every
    split rules out both, and each node has one parent.
    """
    where = f"isolation forest tree {index}"
    left = np.asarray(tree.children_left)
    right = np.asarray(tree.children_right)
    n_nodes = int(tree.node_count)
    columns = np.asarray(subset)
    arrays = (
        left,
        right,
        np.asarray(tree.feature),
        np.asarray(tree.threshold),
        np.asarray(tree.n_node_samples),
    )
    if n_nodes < 1 or any(a.ndim != 1 or a.shape[0] != n_nodes for a in arrays):
        raise ValueError(f"{where}: node arrays disagree with node_count {n_nodes}")
    if columns.ndim != 1 or columns.dtype.kind not in "iu" or ((columns < 0) | (columns >= n_features)).any():
        raise ValueError(f"{where}: feature subset outside the forest's {n_features} columns")
    split = left != -1
    nodes = np.arange(n_nodes)
    if ((right != -1) != split).any():
        raise ValueError(f"{where}: a node with one child")
    for children in (left[split], right[split]):
        if ((children <= nodes[split]) | (children >= n_nodes)).any():
            raise ValueError(f"{where}: a child index out of order or out of range")
    if np.unique(np.concatenate((left[split], right[split]))).shape[0] != 2 * int(split.sum()):
        raise ValueError(f"{where}: a node with two parents")
    if (
        not np.isfinite(np.asarray(tree.threshold)[split]).all()
        or (np.asarray(tree.n_node_samples) < 1).any()
    ):
        raise ValueError(f"{where}: a split threshold that is not finite, or a node without samples")
    used = np.asarray(tree.feature)[split]
    if ((used < 0) | (used >= columns.shape[0])).any():
        raise ValueError(f"{where}: a split on a column outside its feature subset")
    depth = np.zeros(n_nodes, dtype=np.int64)
    for node in np.flatnonzero(split):  # parents come before their children
        depth[left[node]] = depth[right[node]] = depth[node] + 1
    if int(depth.max()) != int(tree.max_depth):
        raise ValueError(f"{where}: max_depth {tree.max_depth} is not the tree's depth {int(depth.max())}")


def _tree_nodes(tree: Any, subset: npt.ArrayLike) -> HeapTree:
    """One fitted tree's nodes in scikit-learn's numbering, split columns mapped to the forest's input."""
    left = np.asarray(tree.children_left, dtype=np.int64)
    leaf = left == -1
    depths = np.asarray(tree.compute_node_depths(), dtype=np.float64)
    paths = _average_path_length(np.asarray(tree.n_node_samples, dtype=np.float64))
    return HeapTree(
        left=left,
        right=np.asarray(tree.children_right, dtype=np.int64),
        feature=np.asarray(subset, dtype=np.int64)[np.where(leaf, 0, tree.feature)],
        threshold=np.asarray(tree.threshold, dtype=np.float64),
        nan_right=np.where(np.asarray(tree.missing_go_to_left, dtype=bool), 0, 1).astype(np.int64),
        leaf_value=np.where(leaf, depths + paths - 1.0, 0.0),  # scikit-learn's float operations, in its order
        max_depth=int(tree.max_depth),
    )


@dataclass(frozen=True, slots=True)
class IsolationForestDetector:
    """The fitted estimator (what the registry stores) and its compiled form (what scores)."""

    estimator: IsolationForest
    compiled: CompiledForest
    kind: str = KIND

    @property
    def n_features(self) -> int:
        return self.compiled.n_features

    def score(self, features: FloatArray) -> FloatArray:
        return self.compiled.anomaly_scores(features)

    def contributions(self, features: FloatArray) -> FloatArray:
        return self.compiled.credits(features)

    def to_artifact(self) -> dict[str, Any]:
        return {"kind": KIND, "estimator": self.estimator}

    @classmethod
    def from_artifact(cls, data: dict[str, Any]) -> IsolationForestDetector:
        estimator = data["estimator"]
        if not isinstance(estimator, IsolationForest):
            raise ValueError(f"isolation_forest artifact: estimator is a {type(estimator).__name__}")
        return cls(estimator, compile_forest(estimator))


def fit_isolation_forest(
    features: FloatArray,
    *,
    n_estimators: int = 100,
    max_samples: int | float | str = "auto",
    max_features: float = 1.0,
    seed: int = 0,
) -> IsolationForestDetector:
    if not (isinstance(features, np.ndarray) and features.ndim == 2):
        raise ValueError("features: expected a 2-D numpy array of training rows")
    x = as_matrix(features, features.shape[1])
    if not np.isfinite(x).all():
        raise ValueError("features: training rows must be finite")
    estimator = IsolationForest(
        n_estimators=n_estimators, max_samples=max_samples, max_features=max_features, random_state=seed
    ).fit(x)
    return IsolationForestDetector(estimator, compile_forest(estimator))
