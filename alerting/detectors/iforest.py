"""A fitted IsolationForest flattened into arrays: scoring without scikit-learn's per-call cost.

scikit-learn's `decision_function` costs about a millisecond per call whatever the batch size
(input validation, a joblib dispatch per tree), so one call per live sample made the anomaly
model the bottleneck of the alerting service. The trees are copied here into a few flat arrays
and every (sample, tree) pair walks down one level per numpy step: all 50 trees at once, and
any number of samples at once. The arithmetic is scikit-learn 1.9's
(`IsolationForest._compute_score_samples`): samples cast to float32 and compared `<=` with
the float64 threshold, leaf depth plus the average path length of the leaf's training
samples minus one, summed over trees in order, `-2 ** (-depth / (trees x c(max_samples)))`
minus `offset_` — so the scores equal `decision_function`'s to the last bit (tested).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sklearn.ensemble import IsolationForest

Floats = npt.NDArray[np.float64]


def _average_path_length(n: Floats) -> Floats:
    """c(n): average path length of an unsuccessful BST search (Liu et al. 2008, eq. 1)."""
    out = np.zeros(n.shape)
    two = n == 2
    many = n > 2
    out[two] = 1.0
    m = n[many]
    out[many] = 2.0 * (np.log(m - 1.0) + np.euler_gamma) - 2.0 * (m - 1.0) / m
    return out


@dataclass(frozen=True, slots=True)
class CompiledForest:
    """The trees of one fitted IsolationForest as flat arrays (leaves point to themselves)."""

    roots: npt.NDArray[np.int32]
    feature: npt.NDArray[np.int8]
    threshold: Floats
    left: npt.NDArray[np.int32]
    right: npt.NDArray[np.int32]
    leaf_depth: Floats  # depth + c(training samples in the leaf) - 1, per node
    steps: int  # the deepest tree's depth: walks needed to reach every leaf
    denominator: float
    offset: float

    def decision(self, rows: Floats) -> Floats:
        """`IsolationForest.decision_function(rows)`: below 0 is an outlier, lower is worse."""
        x = np.asarray(rows, dtype=np.float32).astype(np.float64)
        n = x.shape[0]
        nodes = np.broadcast_to(self.roots, (n, self.roots.size)).copy()
        sample = np.arange(n)[:, None]
        for _ in range(self.steps):
            go_left = x[sample, self.feature[nodes]] <= self.threshold[nodes]
            nodes = np.where(go_left, self.left[nodes], self.right[nodes])
        per_tree = self.leaf_depth[nodes]
        depths = np.zeros(n)
        for t in range(per_tree.shape[1]):  # tree by tree, as scikit-learn adds them
            depths += per_tree[:, t]
        scores: Floats = -(2 ** (-(depths / self.denominator)))
        return scores - self.offset


def compile_forest(model: IsolationForest) -> CompiledForest:
    """Flatten a fitted forest (features subsampled or not, as scikit-learn scores it)."""
    n_features = int(model.n_features_in_)
    subsample = model._max_features != n_features
    roots, feature, threshold, left, right, leaf_depth = [], [], [], [], [], []
    base, steps = 0, 0
    for tree, features in zip(model.estimators_, model.estimators_features_, strict=True):
        t = tree.tree_
        count = t.node_count
        is_leaf = t.children_left < 0
        own = np.arange(count)
        feat = np.where(is_leaf, 0, t.feature)
        if subsample:
            feat = np.asarray(features)[feat]
        roots.append(base)
        feature.append(feat.astype(np.int8))
        threshold.append(np.where(is_leaf, np.inf, t.threshold))
        left.append(np.where(is_leaf, own, t.children_left) + base)
        right.append(np.where(is_leaf, own, t.children_right) + base)
        path = _average_path_length(t.n_node_samples.astype(np.float64))
        leaf_depth.append(t.compute_node_depths() + path - 1.0)
        steps = max(steps, int(t.max_depth))
        base += count
    c_max = float(_average_path_length(np.array([float(model._max_samples)]))[0])
    return CompiledForest(
        roots=np.asarray(roots, dtype=np.int32),
        feature=np.concatenate(feature),
        threshold=np.concatenate(threshold),
        left=np.concatenate(left).astype(np.int32),
        right=np.concatenate(right).astype(np.int32),
        leaf_depth=np.concatenate(leaf_depth),
        steps=steps,
        denominator=len(model.estimators_) * c_max,
        offset=float(model.offset_),
    )


class ForestPool:
    """Many compiled forests of the same size in one arena, scored together.

    The anomaly detector keeps one forest per elder; a drain cycle holds samples of many
    elders, one or two each. Keeping every forest's nodes in shared arrays lets one walk
    score them all at once. A refit adds the new forest at the end and frees the old one;
    the arena is compacted when more than half of it is freed.

    Args:
        trees: trees per forest (all forests in a pool have this many).
    """

    def __init__(self, trees: int) -> None:
        self.trees = trees
        self._feature = np.zeros(0, dtype=np.int8)
        self._threshold = np.zeros(0)
        self._left = np.zeros(0, dtype=np.int32)
        self._right = np.zeros(0, dtype=np.int32)
        self._leaf_depth = np.zeros(0)
        self._size = 0
        self._freed = 0
        self._next_id = 0
        # forest id -> (base, node count, relative roots, steps, denominator, offset)
        self._forests: dict[int, tuple[int, int, npt.NDArray[np.int32], int, float, float]] = {}

    def __len__(self) -> int:
        return len(self._forests)

    def add(self, forest: CompiledForest) -> int:
        """Copy `forest` into the arena; returns its id."""
        if forest.roots.size != self.trees:
            raise ValueError(f"a pool of {self.trees}-tree forests got {forest.roots.size}")
        count = forest.feature.size
        self._reserve(self._size + count)
        base, end = self._size, self._size + count
        self._feature[base:end] = forest.feature
        self._threshold[base:end] = forest.threshold
        self._left[base:end] = forest.left + base
        self._right[base:end] = forest.right + base
        self._leaf_depth[base:end] = forest.leaf_depth
        self._size = end
        forest_id = self._next_id
        self._next_id += 1
        self._forests[forest_id] = (
            base,
            count,
            forest.roots,
            forest.steps,
            forest.denominator,
            forest.offset,
        )
        return forest_id

    def free(self, forest_id: int) -> None:
        """Forget a forest (a refit replaced it)."""
        _, count, *_ = self._forests.pop(forest_id)
        self._freed += count
        if self._freed > self._size // 2:
            self._compact()

    def decision(self, forest_ids: list[int], rows: Floats) -> Floats:
        """Row i scored by forest `forest_ids[i]`, as `CompiledForest.decision` would."""
        n = len(forest_ids)
        if n == 0:
            return np.zeros(0)
        info = [self._forests[f] for f in forest_ids]
        bases = np.fromiter((i[0] for i in info), dtype=np.int64, count=n)
        nodes = bases[:, None] + np.stack([i[2] for i in info])
        steps = max(i[3] for i in info)
        x = np.asarray(rows, dtype=np.float32).astype(np.float64)
        sample = np.arange(n)[:, None]
        for _ in range(steps):
            go_left = x[sample, self._feature[nodes]] <= self._threshold[nodes]
            nodes = np.where(go_left, self._left[nodes], self._right[nodes])
        per_tree = self._leaf_depth[nodes]
        depths = np.zeros(n)
        for t in range(self.trees):
            depths += per_tree[:, t]
        denominator = np.fromiter((i[4] for i in info), dtype=np.float64, count=n)
        offset = np.fromiter((i[5] for i in info), dtype=np.float64, count=n)
        scores: Floats = -(2 ** (-(depths / denominator)))
        return scores - offset

    def nbytes(self) -> int:
        """Bytes held by the arena."""
        arrays = (self._feature, self._threshold, self._left, self._right, self._leaf_depth)
        return sum(a.nbytes for a in arrays)

    def _reserve(self, needed: int) -> None:
        capacity = self._feature.size
        if needed <= capacity:
            return
        grown = max(needed, capacity * 2, 1 << 14)
        for name in ("_feature", "_threshold", "_left", "_right", "_leaf_depth"):
            old = getattr(self, name)
            new = np.zeros(grown, dtype=old.dtype)
            new[: self._size] = old[: self._size]
            setattr(self, name, new)

    def _compact(self) -> None:
        keep = sorted(self._forests.items(), key=lambda item: item[1][0])
        arrays = (self._feature, self._threshold, self._left, self._right, self._leaf_depth)
        feature, threshold, left, right, leaf_depth = (a[: self._size].copy() for a in arrays)
        self._size = self._freed = 0
        for forest_id, (base, count, roots, steps, denominator, offset) in keep:
            end = base + count
            new_base = self._size
            self._feature[new_base : new_base + count] = feature[base:end]
            self._threshold[new_base : new_base + count] = threshold[base:end]
            self._left[new_base : new_base + count] = left[base:end] - base + new_base
            self._right[new_base : new_base + count] = right[base:end] - base + new_base
            self._leaf_depth[new_base : new_base + count] = leaf_depth[base:end]
            self._size += count
            self._forests[forest_id] = (new_base, count, roots, steps, denominator, offset)
