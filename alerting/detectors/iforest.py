"""Isolation forests as flat arrays: fitted with numpy, many scored in one vectorised walk.

scikit-learn's `IsolationForest` costs about a millisecond per `decision_function` call
whatever the batch size, and 85-135 ms per fit (per-tree Python), which made the anomaly model
the bottleneck of the alerting service. Here a forest is a few flat arrays: `fit_forest`
grows all its trees one level at a time, and every (sample, tree) pair walks down one level
per numpy step, all trees and any number of samples (and forests, `ForestPool`) at once.
The scoring is scikit-learn 1.9's (`IsolationForest._compute_score_samples`): samples cast
to float32 and compared `<=` with the float64 threshold, leaf depth plus the average path
length of the leaf's training samples minus one (root depth 1), summed over trees,
`-2 ** (-depth / (trees x c(max_samples)))` minus `offset_`. Tests check the forests'
scores against scikit-learn's on the same data (same separation of outliers, same share
flagged), not bit for bit: the random draws differ.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

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


def _ratio(depths: Floats, denominator: Floats) -> Floats:
    """depths / denominator, and 1 where the denominator is 0 (a forest grown on one row:
    c(1) = 0), as scikit-learn's `_compute_score_samples` has it."""
    out: Floats = np.divide(depths, denominator, out=np.ones_like(depths), where=denominator != 0)
    return out


@dataclass(frozen=True, slots=True)
class CompiledForest:
    """The trees of one isolation forest as flat arrays (leaves point to themselves; a split
    node's right child is the node after its left one, which `ForestPool` relies on)."""

    roots: npt.NDArray[np.int32]
    feature: npt.NDArray[np.int8]
    threshold: Floats
    left: npt.NDArray[np.int32]
    right: npt.NDArray[np.int32]
    leaf_depth: Floats  # depth (root 1) + c(training samples in the leaf) - 1, per node
    steps: int  # the deepest tree's depth: walks needed to reach every leaf
    denominator: float
    offset: float

    def decision(self, rows: Floats) -> Floats:
        """Scores as `IsolationForest.decision_function(rows)`: below 0 is an outlier."""
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
        scores: Floats = -(2 ** (-_ratio(depths, np.full(n, self.denominator))))
        return scores - self.offset


# Training rows scored to place `offset_`: at the 0.5 % contamination the anomaly detector
# uses, the cut is then the 5th-lowest of 1,024 scores rather than the 15th of 3,000.
OFFSET_ROWS = 1024


def fit_forest(
    rows: Floats,
    *,
    trees: int,
    contamination: float,
    seed: int,
    max_samples: int = 256,
) -> CompiledForest:
    """Fit an isolation forest straight into flat arrays, all trees one level at a time.

    The algorithm is Liu, Ting and Zhou's (ICDM 2008) as scikit-learn's `IsolationForest`
    runs it with `max_samples="auto"`, `max_features=1.0`, no bootstrap: each tree grows on
    `min(max_samples, n)` rows drawn without replacement, to depth `ceil(log2(that))`; a node
    of two or more distinct rows splits on a feature drawn uniformly among those not constant
    in it, at a threshold drawn uniformly in [min, max) of that feature (rows `<=` go left);
    `offset_` is the `contamination` quantile of the training rows' scores (of `OFFSET_ROWS`
    evenly spaced ones when there are more). Rows are compared
    as float32, as scikit-learn's trees do. The draws differ from scikit-learn's, so the trees
    do too, not the method (tests compare both forests' scores).

    Built level by level over every tree at once with numpy, a 50-tree forest on 200-3,000
    four-feature rows costs 10-20 ms on the development machine; scikit-learn's fit spends
    85-135 ms there, mostly in per-tree Python (a `RandomState` and parameter validation per
    tree): at a district's 100,000 elders, refits every 1,000 samples alone would take a
    third of a core, and a restart would have to fit every elder again.

    Args:
        rows: (n, features) training samples, n >= 1, features <= 127.
        trees: number of trees.
        contamination: expected share of outliers in `rows`, in (0, 0.5].
        seed: the random generator's seed (same rows and seed, same forest).
        max_samples: subsample size per tree.

    Raises:
        ValueError: on an empty `rows` or a contamination outside (0, 0.5].
    """
    x = np.asarray(rows, dtype=np.float32).astype(np.float64)
    n = x.shape[0]
    if n == 0:
        raise ValueError("an isolation forest needs at least one row")
    if not 0.0 < contamination <= 0.5:
        raise ValueError(f"contamination {contamination} is outside (0, 0.5]")
    rng = np.random.default_rng(seed)
    psi = min(max_samples, n)
    max_depth = int(np.ceil(np.log2(max(psi, 2))))
    # Each tree's subsample, rows drawn without replacement; samples kept grouped by node
    # (feature-major, so a node's rows are one contiguous slice of each feature's row).
    if psi == n:
        picks = np.tile(np.arange(n), trees)
    else:
        picks = np.concatenate([rng.choice(n, psi, replace=False) for _ in range(trees)])
    values = np.ascontiguousarray(x[picks].T)  # (features, trees x psi)
    node_of = np.repeat(np.arange(trees), psi)  # every sample starts in its tree's root

    feature = [np.zeros(trees, dtype=np.int8)]
    threshold = [np.full(trees, np.inf)]
    left = [np.arange(trees)]
    right = [np.arange(trees)]
    count = [np.full(trees, psi)]
    depth = [np.zeros(trees, dtype=np.int64)]
    level_start, level_nodes, next_id, steps = 0, trees, trees, 0
    for level in range(max_depth):
        # Per node of this level (every one holds samples): min and max of every feature.
        sizes = count[level]
        starts = np.concatenate(([0], np.cumsum(sizes[:-1])))
        lo = np.minimum.reduceat(values, starts, axis=1)  # (features, nodes)
        hi = np.maximum.reduceat(values, starts, axis=1)
        varying = hi > lo
        split = np.flatnonzero(varying.any(axis=0))
        if split.size == 0:
            break
        steps = level + 1
        # A feature drawn uniformly among the node's varying ones.
        vs = varying[:, split]
        k = (rng.random(split.size) * vs.sum(axis=0)).astype(np.int64)
        chosen = np.argmax(np.cumsum(vs, axis=0) > k, axis=0)
        a, b = lo[chosen, split], hi[chosen, split]
        cut = a + rng.random(split.size) * (b - a)
        cut = np.where(cut >= b, a, cut)  # [min, max): the max row always goes right
        kids = next_id + 2 * np.arange(split.size)
        feature[level][split] = chosen
        threshold[level][split] = cut
        left[level][split] = kids
        right[level][split] = kids + 1
        # Move each sample of a split node to its child; the others settle in their leaf.
        slot = np.full(level_nodes, -1)
        slot[split] = np.arange(split.size)
        at = slot[node_of - level_start]
        moving = np.flatnonzero(at >= 0)
        m_at = at[moving]
        goes_right = values[chosen[m_at], moving] > cut[m_at]
        child = kids[m_at] + goes_right
        order = np.argsort(child, kind="stable")  # stays grouped by node, left then right
        node_of = child[order]
        values = values[:, moving[order]]
        # The new level's nodes (two per split), leaves until they split in turn.
        width = 2 * split.size
        child_ids = next_id + np.arange(width)
        feature.append(np.zeros(width, dtype=np.int8))
        threshold.append(np.full(width, np.inf))
        left.append(child_ids)
        right.append(child_ids.copy())
        count.append(np.bincount(node_of - next_id, minlength=width))
        depth.append(np.full(width, level + 1, dtype=np.int64))
        level_start, level_nodes, next_id = next_id, width, next_id + width
    counts = np.concatenate(count).astype(np.float64)
    leaf_depth = np.concatenate(depth) + _average_path_length(counts)
    c_max = float(_average_path_length(np.array([float(psi)]))[0])
    forest = CompiledForest(
        roots=np.arange(trees, dtype=np.int32),
        feature=np.concatenate(feature),
        threshold=np.concatenate(threshold),
        left=np.concatenate(left).astype(np.int32),
        right=np.concatenate(right).astype(np.int32),
        leaf_depth=leaf_depth,
        steps=steps,
        denominator=trees * c_max,
        offset=0.0,
    )
    # offset_: the contamination quantile of the training rows' scores, over every row up to
    # OFFSET_ROWS and over evenly spaced rows beyond (scoring is most of a fit's cost).
    scored = x if n <= OFFSET_ROWS else x[np.linspace(0, n - 1, OFFSET_ROWS).astype(np.int64)]
    offset = float(np.percentile(forest.decision(scored), 100.0 * contamination))
    return replace(forest, offset=offset)


# Arena bytes per node: a 16-byte walk record and the float64 leaf depth.
NODE_BYTES = 24
# Slots are whole blocks of this many nodes (96 KiB). Coarse on purpose: the anomaly
# detector's forests (8,600-9,700 nodes) then all take 12,288-node slots, so any freed slot
# fits the next refit and the arena holds one slot more than there are forests (about a
# third of it spare). With finer blocks, forests of two sizes keep slots of both.
SLOT_NODES = 4096


def _slot_nodes(count: int) -> int:
    return -(-count // SLOT_NODES) * SLOT_NODES


class ForestPool:
    """Many compiled forests of the same size in one arena, scored together.

    The anomaly detector keeps one forest per elder; a drain cycle holds samples of many
    elders, one or two each. Keeping every forest's nodes in shared arrays lets one walk
    score them all at once. Each forest takes a slot of whole `SLOT_NODES` blocks; a freed
    slot is reused by the next forest that fits it (the smallest such slot), so a refit
    (new forest in, old one out) reuses the space and the arena is never compacted: moving
    every forest would hold the message loop for seconds at district scale (1.7 s for a
    1.5 GiB arena, 7.1 s for 6 GiB, measured).

    Args:
        trees: trees per forest (all forests in a pool have this many).
        limit_bytes: the bound on the live forests' bytes (None: unbounded); `room` tells
            whether a forest of some size still fits under it.
    """

    def __init__(self, trees: int, limit_bytes: int | None = None) -> None:
        self.trees = trees
        self.limit_nodes = None if limit_bytes is None else max(0, limit_bytes // NODE_BYTES)
        # One 16-byte record per node, so that a walk step reads one cache line per
        # (sample, tree): [threshold as float64 bits, left child << 8 | feature]. The fit
        # puts a node's right child right after its left one; a leaf points to itself with
        # an infinite threshold, so it stays put.
        self._node = np.zeros((0, 2), dtype=np.int64)
        self._leaf_depth = np.zeros(0)
        self._size = 0  # nodes of the arena handed out as slots
        self._live = 0  # nodes of the slots in use
        self._next_id = 0
        # forest id -> (base, node count, relative roots, steps, denominator, offset)
        self._forests: dict[int, tuple[int, int, npt.NDArray[np.int32], int, float, float]] = {}
        self._slots: dict[int, int] = {}  # forest id -> its slot's nodes
        self._holes: dict[int, list[int]] = {}  # free slots: nodes -> bases

    def __len__(self) -> int:
        return len(self._forests)

    def add(self, forest: CompiledForest) -> int:
        """Copy `forest` into the arena; returns its id."""
        if forest.roots.size != self.trees:
            raise ValueError(f"a pool of {self.trees}-tree forests got {forest.roots.size}")
        inner = forest.left != forest.right
        if np.any(forest.right[inner] != forest.left[inner] + 1):
            raise ValueError("a pooled forest needs each right child right after its left one")
        count = forest.feature.size
        slot, base = self._take(count)
        end = base + count
        self._node[base:end, 0] = forest.threshold.view(np.int64)
        self._node[base:end, 1] = ((forest.left.astype(np.int64) + base) << 8) | forest.feature
        self._leaf_depth[base:end] = forest.leaf_depth
        forest_id = self._next_id
        self._slots[forest_id] = slot
        self._live += slot
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

    def room(self, count: int) -> bool:
        """Whether a forest of `count` more nodes keeps the live forests under the limit.

        The limit counts the nodes of the slots in use; the arena holds those, the free
        slots a refit leaves for the next one, and the doubling's spare room.
        """
        return self.limit_nodes is None or self._live + _slot_nodes(count) <= self.limit_nodes

    def live_nodes(self) -> int:
        """Nodes of the slots in use (freed slots not counted)."""
        return self._live

    def free(self, forest_id: int) -> None:
        """Forget a forest (a refit replaced it); its slot goes to the next that fits."""
        base = self._forests.pop(forest_id)[0]
        slot = self._slots.pop(forest_id)
        self._live -= slot
        self._holes.setdefault(slot, []).append(base)

    def _take(self, count: int) -> tuple[int, int]:
        """A slot for `count` nodes: the smallest free one that fits, else a new one at the
        end of the arena (grown by doubling). Returns (slot nodes, base)."""
        need = _slot_nodes(count)
        fits = [size for size, bases in self._holes.items() if size >= need and bases]
        if fits:
            size = min(fits)
            return size, self._holes[size].pop()
        self._reserve(self._size + need)
        base = self._size
        self._size += need
        return need, base

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
        # Row i's feature f is flat[i * features + f]; the walk goes right on `x > threshold`
        # (the same as not `x <= threshold` for the finite values rows hold).
        # Buffers reused across steps: fresh arrays of this size would each be a new mmap.
        flat = x.ravel()
        row_base = (np.arange(n, dtype=np.int64) * x.shape[1])[:, None]
        record = np.empty((*nodes.shape, 2), dtype=np.int64)
        index = np.empty(nodes.shape, dtype=np.int64)
        value = np.empty(nodes.shape)
        right = np.empty(nodes.shape, dtype=bool)
        for _ in range(steps):
            np.take(self._node, nodes, axis=0, out=record)
            code = record[..., 1]
            np.bitwise_and(code, 0xFF, out=index)
            index += row_base
            np.take(flat, index, out=value)
            np.greater(value, record[..., 0].view(np.float64), out=right)
            np.right_shift(code, 8, out=nodes)
            nodes += right
        per_tree = self._leaf_depth[nodes]
        depths = np.zeros(n)
        for t in range(self.trees):
            depths += per_tree[:, t]
        denominator = np.fromiter((i[4] for i in info), dtype=np.float64, count=n)
        offset = np.fromiter((i[5] for i in info), dtype=np.float64, count=n)
        scores: Floats = -(2 ** (-_ratio(depths, denominator)))
        return scores - offset

    def nbytes(self) -> int:
        """Bytes held by the arena."""
        return self._node.nbytes + self._leaf_depth.nbytes

    def _reserve(self, needed: int) -> None:
        capacity = self._leaf_depth.size
        if needed <= capacity:
            return
        grown = max(needed, capacity * 2, 1 << 14)
        node = np.zeros((grown, 2), dtype=np.int64)
        node[: self._size] = self._node[: self._size]
        leaf_depth = np.zeros(grown)
        leaf_depth[: self._size] = self._leaf_depth[: self._size]
        self._node, self._leaf_depth = node, leaf_depth
