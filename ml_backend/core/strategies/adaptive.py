"""The adaptive default: a uniform share, then positives or the boundary as the ratings call for.

Each batch of k is made of three kinds of picks:

1. **Uniform picks**: round(`uniform_share` * k), at least one (a batch too small for one
   gets one with probability `uniform_share` * k), drawn uniformly at random
   from all available rows before anything else and whatever the head says. They are the
   strategy's exploration (a concept's other kinds of positives are found by picks the head
   does not point at), and an unbiased sample of the pool: `last_draw` reports them and how
   many rows they were drawn from. Once rows are rated, the share is at least
   `prevalence_gain` times the prevalence the rated uniform picks estimate (`Pool.uniform`
   says which they are): a common concept gets mostly random picks, which find its
   positives anyway and, unlike the head's, make an unbiased training set.
2. While the head has **no signal** (no head yet, or a flat one: no positive and no prompt),
   the rest is spread over the pool's k-means clusters: one random row from each of the
   clusters with the fewest ratings. A rare concept that forms its own region of the
   embedding space is found after about as many labels as there are clusters, not after
   1 / prevalence (TypiClust and ProbCover pick typical, diverse items for the same reason).
   Once a rated batch holds no positive, the most isolated tenth of those clusters (the
   farthest from any other cluster's centroid) come first, the others in random order: a
   common kind of item fills several neighbouring clusters, a rare, distinct concept one or
   two with no neighbour of its kind, and a concept of a few percent that fills ordinary
   clusters is not put off until every isolated cluster has been visited.
   The first batch keeps random order: on a common concept it nearly always holds a
   positive, and isolated clusters would make an unrepresentative first training set.
3. Once the head has signal, the rest is split between the **top** of the head (positives
   first: on rare concepts they are what the ratings lack) and the **boundary** (logits
   closest to 0: on common concepts positives come cheaply and the boundary is what is
   left to learn). The split follows the ratings: while positives are under
   `positive_balance` of the ratings, the top gets the deficit's share of the picks; once
   they reach it, every pick goes to the boundary. Before any rating (a prompt's first
   batch) nothing says positives are scarce, and every pick goes to the boundary: the
   prompt's top is mostly positive on a common concept and teaches little, while its
   boundary still holds positives on a rare one (an example's first batch, one positive
   rating, goes there too).
   While the head scores **no unseen row positive** (every logit below 0: it has seen a few
   positives against many negatives and the background), its top and its boundary are the same
   rows, the nearest neighbours of those few positives: a batch of one kind of positive, k times
   over. With `spread_until_confident` the picks then go down the head's ranking at most one per
   k-means cluster (its highest-scored row in each of the clusters it ranks first), the closest
   row first; not while the ratings are only what the team started with (a prompt, or one
   example rated yes), so "more like this" gets the closest tasks. Off by default: it gained on
   the tuned and development concepts and not on the held-out ones (`benchmarks.choices`).
   With `boundary_per_cluster`, the boundary picks are spread: closest to 0 first, but at
   most one per k-means cluster and none in a cluster the batch's top picks already hold
   (the closest others fill in once every cluster has one): the k tasks nearest the
   boundary are often near-duplicates, which teach a linear head little more than one of
   them (Cluster-Margin, Citovsky et al. 2021).
4. When the head's own picks **stop finding positives** (none in the latest `stale_after`
   ratings of non-uniform picks, once some rating is positive), its region may be exhausted:
   half of the rest (rounded up) goes back to the least-rated clusters (the most isolated
   tenth first), until a pick finds a positive again, the other half to the top and boundary as
   above (the head's top still holds a concept's hard positives). A concept of two kinds
   (trousers or bags) is found from one example of the first kind only this way or by the
   uniform picks, which at 1% prevalence take hundreds of labels.

Ties are broken at random (`top_k`), never by row order.
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from typing import TYPE_CHECKING

import numpy as np
import scipy.cluster.vq

from .base import Pool, Strategy, UniformDraw, informative_logits, top_k

if TYPE_CHECKING:
    from ..params import SelectionParams

# Once ratings exist, 1 / ISOLATED_FIRST of the clusters, the most isolated, come first (development runs,
# benchmarks.choices.LABEL_EFFICIENCY).
ISOLATED_FIRST = 10
_CLUSTER_CACHE: OrderedDict = OrderedDict()
_CACHED_POOLS = 4


class AdaptiveStrategy(Strategy):
    """Uniform picks, then cluster coverage (no signal yet; half of the rest once the head's picks stop
    finding positives) or top and boundary picks balanced by the ratings.

    Parameters
    ----------
    uniform_share : share of each batch drawn uniformly at random from all available rows
        (at least one pick per batch when > 0; 0 turns them off).
    prevalence_gain : once rows are rated, the uniform share is at least this times the
        estimated prevalence (0 turns that off).
    positive_balance : share of positives among the ratings below which top picks are made.
    clusters : k-means clusters the pool is split into for the picks made without signal.
    stale_after : once a rating is positive, when this many of the latest ratings of the
        strategy's own (non-uniform) picks hold no positive, half of those picks go to the
        clusters (0 turns that off).
    boundary_per_cluster : boundary picks at most one per cluster (and none in a cluster of the
        batch's top picks), closest to the boundary first.
    spread_until_confident : while the head scores no available row positive, its picks go down its
        ranking at most one per cluster (its top and its boundary are then the same near-duplicates).
    """

    requires_head = False

    def __init__(self, uniform_share: float = 0.1, positive_balance: float = 0.3, clusters: int = 100,
                 prevalence_gain: float = 1.0, stale_after: int = 40, boundary_per_cluster: bool = False,
                 spread_until_confident: bool = False):
        if not 0.0 <= uniform_share <= 1.0:
            raise ValueError(f"uniform_share must lie in [0, 1], got {uniform_share}")
        if not 0.0 <= prevalence_gain <= 100.0:
            raise ValueError(f"prevalence_gain must lie in [0, 100], got {prevalence_gain}")
        if not 0.0 < positive_balance <= 1.0:
            raise ValueError(f"positive_balance must lie in (0, 1], got {positive_balance}")
        if clusters < 1:
            raise ValueError(f"clusters must be at least 1, got {clusters}")
        if stale_after < 0:
            raise ValueError(f"stale_after must be at least 0, got {stale_after}")
        self.uniform_share = uniform_share
        self.positive_balance = positive_balance
        self.clusters = clusters
        self.prevalence_gain = prevalence_gain
        self.stale_after = stale_after
        self.boundary_per_cluster = boundary_per_cluster
        self.spread_until_confident = spread_until_confident

    @classmethod
    def from_params(cls, settings: "SelectionParams | None") -> "AdaptiveStrategy":
        # SelectionParams' fields are this class's parameters (`core.params.ADAPTIVE_DEFAULTS`)
        return cls() if settings is None else cls(**settings.model_dump())

    def n_uniform(self, k: int, pool: Pool | None = None, rng: np.random.Generator | None = None) -> int:
        """Uniform picks in a batch of k: round(share * k), at least one when the share is > 0.

        share = max(uniform_share, prevalence_gain * p), p the prevalence the earlier
        uniform picks estimate (positives + 0.5) / (picks + 1): on common concepts random
        picks find positives anyway and, unlike the head's picks, are an unbiased training set.
        A batch too small for one pick (share * k < 1) gets one with probability share * k
        when `rng` is given (without it, one): "at least one" made every pick of a batch of 1
        uniform, and the head never chose a task.
        """
        share = self.uniform_share
        p = self.estimated_prevalence(pool) if pool is not None and self.prevalence_gain > 0 else None
        if p is not None:
            share = max(share, min(1.0, self.prevalence_gain * p))
        if k <= 0 or share <= 0:
            return 0
        if share * k < 1 and rng is not None:
            return int(rng.random() < share * k)
        return min(k, max(1, math.floor(share * k + 0.5)))

    @staticmethod
    def estimated_prevalence(pool: Pool) -> float | None:
        """Share of positives in the pool, from the ratings of uniform picks: (positives + 0.5) / (picks + 1),
        Jeffreys' estimate, so 0.5 while none of the ratings is a uniform pick (e.g. after a single example).
        None before any rating (the prompt or the clusters lead the first batch), or when the pool does not
        say which ratings came from uniform picks."""
        if not len(pool.rated) or not pool.knows_uniform:
            return None
        audited = pool.targets[pool.uniform]
        return (float(np.sum(audited > 0)) + 0.5) / (len(audited) + 1)

    def n_top(self, rest: int, targets: np.ndarray) -> int:
        """Top picks among `rest` non-uniform picks, given the ratings so far (targets > 0: positives);
        none before any rating."""
        if not len(targets):
            return 0
        positive_share = float(np.mean(targets > 0))
        deficit = max(0.0, self.positive_balance - positive_share) / self.positive_balance
        return min(rest, math.ceil(rest * deficit - 1e-9))

    @staticmethod
    def only_a_start(pool: Pool) -> bool:
        """True while the ratings are only what a team starts with: none (a prompt), or a single yes the
        strategy did not draw uniformly (an example, 'more like this'). Such a batch keeps the closest
        tasks even when the head scores none of them positive: the team asked for more like this."""
        if len(pool.rated) == 0:
            return True
        drawn = pool.knows_uniform and bool(pool.uniform[0])
        return len(pool.rated) == 1 and pool.targets[0] > 0 and not drawn

    def exploitation_stale(self, pool: Pool) -> bool:
        """True when some rating is positive but the last `stale_after` ratings of the strategy's own
        picks (not uniform draws) hold none: the head's region may be exhausted, and a concept's
        other kinds of positives lie where it does not point. `pool.rated` is in rating order."""
        if self.stale_after <= 0 or not np.any(pool.targets > 0):
            return False
        own = pool.targets[~pool.uniform] if pool.knows_uniform else pool.targets
        return len(own) >= self.stale_after and not np.any(own[-self.stale_after:] > 0)

    def select(self, head, pool: Pool, k: int, rng: np.random.Generator) -> np.ndarray:
        candidates = np.flatnonzero(pool.available)
        k = min(k, len(candidates))
        uniform = rng.choice(candidates, size=self.n_uniform(k, pool, rng), replace=False).astype(np.int64)
        self.last_draw = UniformDraw(uniform, len(candidates))
        rest = k - len(uniform)
        if rest <= 0:
            return uniform
        available = pool.available.copy()
        available[uniform] = False
        logits = informative_logits(head, pool) if head is not None else None
        if logits is None:
            return np.concatenate([self._cover(pool, available, rest, uniform, rng), uniform])
        # judged on the pool before this batch's picks: nothing scored positive, and more than a start rated
        spread = (self.spread_until_confident and not self.only_a_start(pool)
                  and bool(logits[pool.available].max() <= 0))
        explore = np.empty(0, dtype=np.int64)
        if self.exploitation_stale(pool):
            # half, not all: the head's top still holds a concept's hard positives, found slowly
            explore = self._cover(pool, available, (rest + 1) // 2, uniform, rng)
            available[explore] = False
            rest -= len(explore)
        if spread:
            picks = self._one_per_cluster_by(logits, pool, available, rest, np.empty(0, dtype=np.int64), rng)
            return np.concatenate([picks, explore, uniform]).astype(np.int64)
        n_top = self.n_top(rest, pool.targets)
        top = top_k(logits, available, n_top, rng)
        available[top] = False
        if self.boundary_per_cluster:
            boundary = self._one_per_cluster_by(-np.abs(logits), pool, available, rest - len(top), top, rng)
        else:
            boundary = top_k(-np.abs(logits), available, rest - len(top), rng)
        return np.concatenate([top, boundary, explore, uniform]).astype(np.int64)

    def _one_per_cluster_by(self, priority: np.ndarray, pool: Pool, available: np.ndarray, n: int,
                            taken_rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """n available rows by `priority`, highest first, at most one per k-means cluster and none in a
        cluster of `taken_rows` (`one_per_cluster`)."""
        labels, _ = pool_clustering(pool.vectors, self.clusters)
        ranked = top_k(priority, available, int(available.sum()), rng)
        return one_per_cluster(ranked, labels, n, taken=labels[np.asarray(taken_rows, dtype=np.int64)])

    def _cover(self, pool: Pool, available: np.ndarray, n: int, chosen: np.ndarray,
               rng: np.random.Generator) -> np.ndarray:
        """n random rows, each from an available cluster with the fewest ratings (and picks so far); once
        ratings exist (and, as they call for cluster picks, show positives scarce), the most isolated tenth
        of the clusters first, the others in random order."""
        labels, isolation = pool_clustering(pool.vectors, self.clusters)
        priority = np.zeros_like(isolation)  # nothing rated yet: random order, a representative first batch
        if len(pool.rated):
            # A rare, distinct concept's cluster tops the isolation order; a concept of a few percent fills
            # ordinary clusters, which a strict isolation order would reach last.
            first = np.argsort(-isolation, kind="stable")[: max(1, len(isolation) // ISOLATED_FIRST)]
            priority[first] = 1.0 + isolation[first]
        n_clusters = int(labels.max()) + 1
        counts = np.bincount(labels[np.concatenate([pool.rated, chosen]).astype(np.int64)], minlength=n_clusters)
        rows = rng.permutation(np.flatnonzero(available))
        queues = [list(rows[labels[rows] == c][:n]) for c in range(n_clusters)]
        tie_break = rng.random(n_clusters)
        picks: list[int] = []
        while len(picks) < n:
            open_clusters = [c for c in range(n_clusters) if queues[c]]
            if not open_clusters:
                break
            c = min(open_clusters, key=lambda c: (counts[c], -priority[c], tie_break[c]))
            picks.append(queues[c].pop(0))
            counts[c] += 1
        return np.array(picks, dtype=np.int64)


def one_per_cluster(ordered: np.ndarray, labels: np.ndarray, n: int, taken: np.ndarray) -> np.ndarray:
    """The first n of `ordered` rows, at most one per cluster (`labels`) and none in a cluster of `taken`;
    when the clusters run out, the next rows of `ordered` in order."""
    used = set(np.asarray(taken).tolist())
    picks: list[int] = []
    passed_over: list[int] = []  # in order; the fill-in once every row has been seen
    for row in ordered.tolist():
        if len(picks) == n:
            break
        if labels[row] in used:
            passed_over.append(row)
        else:
            picks.append(row)
            used.add(labels[row])
    return np.array(picks + passed_over[: n - len(picks)], dtype=np.int64)


def pool_clustering(vectors: np.ndarray, n_clusters: int, sample: int = 2000,
                    seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(cluster index (n,) of every row of `vectors` (n, d), unit-norm rows; each cluster's isolation (k,):
    1 - the largest cosine between its centroid and another's).

    k-means on a fixed sample of rows (k-means++ seeds, then SciPy's Lloyd iterations),
    every row then assigned to its nearest centroid. At most n / 20 clusters. Cached for
    the last few pools (by shape and a hash of sampled rows), so the batches of one pool
    cluster it once: ~0.1 s for 5,000 x 1,280 on one core.
    """
    n = len(vectors)
    key = (_fingerprint(vectors), n_clusters, sample, seed)
    if key in _CLUSTER_CACHE:
        _CLUSTER_CACHE.move_to_end(key)
        return _CLUSTER_CACHE[key]
    rng = np.random.default_rng(seed)
    data = np.asarray(vectors[np.sort(rng.choice(n, size=min(sample, n), replace=False))], dtype=np.float32)
    seeds = _kmeans_plus_plus(data, max(1, min(n_clusters, n // 20, len(data))), rng)
    centroids, _ = scipy.cluster.vq.kmeans2(data, seeds, iter=5, minit="matrix")
    # nearest centroid of every row: largest x.c - |c|^2 / 2 (one matrix product)
    scores = np.asarray(vectors, dtype=np.float32) @ centroids.T - 0.5 * (centroids ** 2).sum(axis=1)
    labels = np.argmax(scores, axis=1)
    _CLUSTER_CACHE[key] = labels, _isolation(centroids)
    while len(_CLUSTER_CACHE) > _CACHED_POOLS:
        _CLUSTER_CACHE.popitem(last=False)
    return _CLUSTER_CACHE[key]


def _isolation(centroids: np.ndarray) -> np.ndarray:
    """1 - the largest cosine between each centroid (k, d) and another one; 0 for a single cluster."""
    if len(centroids) < 2:
        return np.zeros(len(centroids))
    unit = centroids / np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
    cosine = unit @ unit.T
    np.fill_diagonal(cosine, -np.inf)
    return 1.0 - cosine.max(axis=1).astype(np.float64)


def _fingerprint(vectors: np.ndarray) -> tuple:
    """Shape plus a hash of up to 256 evenly spaced rows: cheap, and a new pool (or one with rows
    added or removed) gets a new key even when NumPy reuses the old one's memory."""
    rows = vectors[:: max(1, len(vectors) // 256)]
    return vectors.shape, hashlib.blake2b(np.ascontiguousarray(rows).tobytes(), digest_size=16).hexdigest()


def _kmeans_plus_plus(data: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Greedy k-means++ seeds (Arthur & Vassilvitskii 2007; the variant scikit-learn uses): each
    step draws 2 + log(k) candidates by squared distance and keeps the one that lowers the total
    most. By matrix products: SciPy's own '++' init computes each distance with cdist, ~20x
    slower on 1,280-d rows (measured)."""
    norms = (data ** 2).sum(axis=1)

    def distances(rows: np.ndarray) -> np.ndarray:  # (len(rows), n) squared distances
        return np.maximum(norms[None, :] - 2 * data[rows] @ data.T + norms[rows][:, None], 0.0)

    chosen = [int(rng.integers(len(data)))]
    nearest = distances(np.array(chosen))[0]
    tries = 2 + int(np.log(k))
    for _ in range(1, k):
        total = float(nearest.sum())
        if total <= 0:
            candidates = rng.integers(len(data), size=1)
        else:
            candidates = rng.choice(len(data), size=tries, p=nearest / total)
        options = np.minimum(nearest[None, :], distances(candidates))
        best = int(np.argmin(options.sum(axis=1)))
        chosen.append(int(candidates[best]))
        nearest = options[best]
    return data[chosen].copy()
