"""Estimates of what the ratings cannot show directly, from the audit sample alone.

The estimands, for one pool of N tasks, with y_i = 1 when the team rates task i
positive (for a task nobody rated yet: what they would answer) and 0 otherwise:

- **positives in the pool** N+ = sum y_i, and the **prevalence** N+ / N;
- **recall of the labeling so far** R / N+, R = the positives among the rated tasks;
- for a head with scores s_i: its **precision** and **recall at its threshold** t over the
  whole pool (rated tasks included), and its **average precision** on the pool ranked by s.

What is known: every rated task's y. What is estimated: how many positives the unseen
tasks hold, from the uniform draws (`core.audit`). Given the history up to draw j, the
draw is a simple random sample of m_j of the n_j tasks unseen then, so its number of
positives is hypergeometric with G_j = N+ - L_j successes, L_j being the positives
already seen at draw j (known now). The product over draws is the likelihood of N+
(a partial likelihood in Cox's sense: each factor is the exact conditional
probability of that draw's outcome, whatever the strategy did in between). With a
prior over the unseen positives it gives a posterior over N+, and the intervals are its
shortest intervals holding the stated probability. The same holds within any set of tasks fixed before the draws (a stratum):
draws restricted to it are simple random samples of its unseen part. A stratum by the head's score
is such a set only if a rated task's place in it does not depend on its rating: rated tasks are placed
by cross-fitted scores (`estimate_head`). A head's quantity that rests on
several strata' counts at once takes its range over their joint posterior's densest part (`estimate_head`).

Intervals are checked for coverage by simulation (`benchmarks.evaluation`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

import numpy as np
from scipy.optimize import isotonic_regression
from scipy.special import expit, gammaln
from scipy.stats import chi2

from .audit import AuditSample

# Work per likelihood evaluation (draws x candidate counts) above which it is first
# bracketed on a coarse grid: a big pool with many draws must not stall the worker.
DENSE_CELLS = 4_000_000
# Candidate counts whose log-likelihood is this far below the best carry no posterior mass.
NEGLIGIBLE_LOG = 40.0
# Priors over the share of positives among a set's unseen tasks, as Beta(a, b) pseudo-counts:
# "few_positives" adds to Jeffreys' half a positive and half a negative 4.5 more negatives (it
# expects the unseen tasks to hold a minority of positives, as a pool the loop has worked on does).
PRIOR_COUNTS = {"flat": (1.0, 1.0), "jeffreys": (0.5, 0.5), "few_positives": (0.5, 5.0)}
PRIORS = tuple(PRIOR_COUNTS)
# "hpd": the shortest interval holding `confidence` of the posterior; "equal": equal tails.
INTERVALS = ("hpd", "equal")
# The interval of a head's quantity that is a nonlinear function of one uncertain count (its recall and AP
# while one score stratum holds unseen tasks). Equal tails are the image of the count's own equal tails
# (the map is monotone); the shortest interval of the quantity's samples is not the image of any interval
# of the count's: where the map spreads the small counts out it cuts them off, and on a rare concept they
# are the truth ('no positive left unseen') (development seeds: benchmarks.choices.EVALUATION).
NONLINEAR_INTERVAL = "equal"
# One prior per estimate, chosen on development runs (benchmarks.choices.EVALUATION): the pool's
# positives (and the target rule) and the head's score strata.
POOL_PRIOR = "few_positives"
PRIOR = "jeffreys"
INTERVAL = "hpd"
# Score strata on each side of the head's threshold, for its precision, recall and AP. Each
# stratum's unseen positives get their own prior: more strata spread a thin audit sample over
# more priors, and the sum drifts from the truth (development seeds: benchmarks.choices.EVALUATION).
STRATA_PER_SIDE = 1
# While a score stratum with unseen tasks has had fewer audit draws than this, its share of positives
# is the prior's guess, and an interval resting on it is withheld: the precision while the stratum
# above the threshold has fewer, the average precision while any has (it depends on where the unseen
# positives sit in the ranking). The head's recall is not withheld (development seeds:
# benchmarks.choices.EVALUATION).
MIN_STRATUM_DRAWS = 2
# Where an AP sample puts a score stratum's unseen positives among its unseen tasks: a task's odds of
# being one grow as the head's odds to this power (0: evenly; 1: as a head right up to a shift of its
# log-odds would put them). Evenly put a strong head's few missed positives at the bottom as often as
# just under its threshold (development seeds: benchmarks.choices.EVALUATION).
PLACEMENT_SLOPE = 0.5
# Folds of the cross-fitting that gives each rated task the score a head not trained on its rating would
# (`core.training.cross_fitted_scores`); `estimate_head` places rated tasks in its strata by it.
CROSS_FIT_FOLDS = 10
# An interval on one uncertain stratum holds the edge its audit draws cannot rule out (`estimate_head`)
HOLD_EDGES = True
# Halvings of the shift's bracket in `placed_positives`: it starts 2 ln n + the tilted logits' range + 2
# wide (under 50 for a million tasks), so 40 leave the shift within 1e-10 of its value.
PLACEMENT_BISECTIONS = 40


@dataclass(frozen=True)
class CountPosterior:
    """A posterior over a count of positives: `values` (K,) int and their `probs` (K,); `log_probs`, the
    log-posterior up to a constant, keeps the tails that underflow to 0 in `probs` (None: log(probs))."""

    values: np.ndarray
    probs: np.ndarray
    log_probs: np.ndarray | None = None

    def quantile(self, q: float) -> int:
        """The smallest value whose cumulative probability reaches q."""
        cdf = np.cumsum(self.probs)
        return int(self.values[min(int(np.searchsorted(cdf, q - 1e-12)), len(self.values) - 1)])

    def mean(self) -> float:
        return float(self.probs @ self.values)

    def bounds(self, confidence: float, kind: str = INTERVAL) -> tuple[int, int]:
        """A `confidence` credible interval: the most probable values ("hpd") or equal tails."""
        if kind == "equal":
            tail = (1.0 - confidence) / 2.0
            return self.quantile(tail), self.quantile(1.0 - tail)
        order = np.argsort(-self.probs, kind="stable")
        held = order[: int(np.searchsorted(np.cumsum(self.probs[order]), confidence - 1e-12)) + 1]
        return int(self.values[held].min()), int(self.values[held].max())

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        cdf = np.cumsum(self.probs)
        picks = np.searchsorted(cdf, rng.random(size) * cdf[-1])
        return self.values[np.minimum(picks, len(self.values) - 1)]

    def log_density(self, values: np.ndarray) -> np.ndarray:
        """Log-posterior of each of `values` (counts of the support), up to a constant."""
        with np.errstate(divide="ignore"):
            log_probs = np.log(self.probs) if self.log_probs is None else self.log_probs
        return log_probs[np.asarray(values, dtype=np.int64) - int(self.values[0])]


@dataclass(frozen=True)
class Estimate:
    """A point estimate (the posterior median) and its credible interval at the stated confidence."""

    value: float
    low: float
    high: float

    def covers(self, truth: float) -> bool:
        return self.low - 1e-9 <= truth <= self.high + 1e-9

    @property
    def width(self) -> float:
        return self.high - self.low

    def rounded(self, digits: int = 4) -> dict:
        return {k: round(float(v), digits) for k, v in asdict(self).items()}


def positives_posterior(sample: AuditSample, mask: np.ndarray | None = None, prior: str = PRIOR) -> CountPosterior:
    """Posterior over the number of positives among the tasks of `mask` (default: the whole pool).

    The support runs from the positives already rated there (A) to A plus every unseen
    task there. `prior` is over the unseen tasks' positives k = 0..u: "flat" (every count
    equally likely), "jeffreys" (Beta(1/2, 1/2) on the share k / u, discretised) or
    "few_positives" (Beta(1/2, 5)).
    """
    if prior not in PRIORS:
        raise ValueError(f"prior must be one of {PRIORS}, got {prior!r}")
    mask = np.ones(sample.size, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    labels, seen_at = sample.labels[mask], sample.seen_at[mask]
    found = int(np.count_nonzero(labels == 1))
    unseen = int(np.count_nonzero(np.isnan(labels)))
    n, positives_before, hits, picks = _draw_counts(sample, mask, labels, seen_at)
    log_post = _log_prior(unseen, prior)
    if len(picks):
        log_post = log_post + _log_likelihood(found, unseen, n, positives_before, hits, picks)
    log_post -= log_post.max()
    probs = np.exp(log_post)
    return CountPosterior(found + np.arange(unseen + 1), probs / probs.sum(), log_post)


def _draw_counts(sample: AuditSample, mask: np.ndarray, labels: np.ndarray, seen_at: np.ndarray):
    """Per draw that drew tasks of `mask`: unseen tasks of mask then (n), positives of mask
    already seen then (L), drawn positives (h) and drawn tasks (m)."""
    order = np.argsort(seen_at, kind="stable")
    sorted_seen = seen_at[order]
    cumulative_positives = np.concatenate([[0], np.cumsum(labels[order] == 1)])
    rows_in_mask = np.flatnonzero(mask)
    position = np.full(sample.size, -1, dtype=np.int64)
    position[rows_in_mask] = np.arange(len(rows_in_mask))
    n, before, hits, picks = [], [], [], []
    for draw in sample.draws:
        local = position[draw.rows]
        local = local[local >= 0]
        if not len(local):
            continue
        seen_then = int(np.searchsorted(sorted_seen, draw.seq, side="right"))
        n.append(len(labels) - seen_then)
        before.append(int(cumulative_positives[seen_then]))
        hits.append(int(np.count_nonzero(labels[local] == 1)))
        picks.append(len(local))
    return (np.array(n, dtype=np.float64), np.array(before, dtype=np.float64),
            np.array(hits, dtype=np.float64), np.array(picks, dtype=np.float64))


def _log_prior(unseen: int, prior: str) -> np.ndarray:
    """Beta(a, b) on k / u (`PRIOR_COUNTS`), as a beta-binomial over k = 0..u (up to a constant)."""
    k = np.arange(unseen + 1, dtype=np.float64)
    a, b = PRIOR_COUNTS[prior]
    if unseen == 0 or (a == 1.0 and b == 1.0):
        return np.zeros(unseen + 1)
    return gammaln(k + a) + gammaln(unseen - k + b) - gammaln(k + 1) - gammaln(unseen - k + 1)


def _log_likelihood(found: int, unseen: int, n: np.ndarray, before: np.ndarray, hits: np.ndarray,
                    picks: np.ndarray) -> np.ndarray:
    """Sum over draws of log Hypergeometric(hits; n, G, picks), G = found + k - before, for k = 0..unseen
    (up to terms constant in k)."""
    def evaluate(k: np.ndarray) -> np.ndarray:
        total = np.zeros(len(k))
        rows = max(1, DENSE_CELLS // max(len(k), 1))
        for start in range(0, len(n), rows):
            part = slice(start, start + rows)
            G = found - before[part, None] + k[None, :]
            total += np.sum(_log_falling(G, hits[part]) + _log_falling(n[part, None] - G, picks[part] - hits[part]),
                            axis=0)
        return total

    k = np.arange(unseen + 1, dtype=np.float64)
    if len(n) * len(k) <= DENSE_CELLS:
        return evaluate(k)
    # The log-likelihood is unimodal in k: bracket where it matters on a coarse grid, then fill in.
    coarse = np.unique(np.round(np.geomspace(1, unseen + 1, 256)) - 1)
    values = evaluate(coarse)
    keep = coarse[values >= values.max() - NEGLIGIBLE_LOG]
    upper = int(coarse[min(np.searchsorted(coarse, keep.max()) + 1, len(coarse) - 1)])
    result = np.full(len(k), -np.inf)
    result[: upper + 1] = evaluate(k[: upper + 1])
    return result


def _log_falling(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """log(a (a-1) ... (a-b+1)) per row: a (rows, K), b (rows,) small non-negative counts.

    log C(a, b) up to the constant log b!; -inf where a < b (an impossible outcome). A draw
    picks a handful of tasks, so a sum of logs is much cheaper than gammaln here.
    """
    out = np.zeros(a.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        for i in range(int(b.max()) if len(b) else 0):
            active = (b > i)[:, None]
            out += np.where(active, np.log(np.maximum(a - i, 0.0)), 0.0)
    return out


@dataclass(frozen=True)
class PoolEstimate:
    """How many positives the pool holds, and how many of them the labeling has found.

    `recall_reached`: posterior probability that the labeling's recall is at least
    `target_recall` (the stopping rule compares it with the confidence asked for).
    `uniform_to_certify`: the fewest further uniform picks that, if none of them is positive,
    would bring `recall_reached` to the confidence asked for (0: it is there already). What
    certifying the target costs at best: on a rare concept it is far more than the labels that
    found the positives (`uniform_picks_to_certify`).
    """

    pool: int
    seen: int
    positives_found: int
    audit_draws: int
    audit_tasks: int
    audit_positives: int
    positives: Estimate
    prevalence: Estimate
    labeling_recall: Estimate
    target_recall: float
    recall_reached: float
    uniform_to_certify: int


@dataclass(frozen=True)
class HeadEstimate:
    """One head's quality on the pool: precision and recall at its threshold, average precision.

    `predicted_positive`: tasks of the pool scored above the threshold (known exactly).
    An estimate is None when it is undefined (no task above the threshold, no positive at all);
    the precision also while `above_threshold_draws` (audit tasks drawn among the tasks above
    the threshold) is below `MIN_STRATUM_DRAWS` and some of them are unseen, the average
    precision while `fewest_stratum_draws` (the same, in the score stratum with unseen tasks
    that has the fewest) is. `precision_bounds`: what the ratings alone prove about the
    precision (every unseen task above the threshold negative, or every one positive).
    """

    threshold: float
    predicted_positive: int
    precision: Estimate | None
    recall: Estimate | None
    average_precision: Estimate | None
    fewest_stratum_draws: int = 0
    above_threshold_draws: int = 0
    precision_bounds: tuple[float, float] | None = None


def interval(values: np.ndarray, confidence: float, kind: str = INTERVAL) -> Estimate:
    """Median and `confidence` interval of posterior samples: the shortest holding that share
    of them ("hpd"), or equal tails."""
    values = np.sort(np.asarray(values, dtype=np.float64))
    middle = float(np.median(values))
    if kind == "equal":
        tail = (1.0 - confidence) / 2.0
        low, high = np.quantile(values, [tail, 1.0 - tail])
        return Estimate(middle, float(low), float(high))
    held = min(len(values), int(np.ceil(confidence * len(values))))
    widths = values[held - 1:] - values[: len(values) - held + 1]
    start = int(np.argmin(widths))
    return Estimate(middle, float(values[start]), float(values[start + held - 1]))


def joint_share(confidence: float, uncertain: int) -> float:
    """Share of a joint posterior, over `uncertain` counts, whose range of a quantity is a `confidence`
    interval of it where the posterior is Gaussian: the chi-square bound (0.742 for 2 counts at 0.9)."""
    return float(chi2.cdf(chi2.ppf(confidence, 1), uncertain))


def region_interval(values: np.ndarray, log_density: np.ndarray, share: float) -> Estimate:
    """Median and range of `values` over the `share` of posterior samples with the highest joint
    `log_density` (ties in sample order)."""
    keep = np.argsort(-np.asarray(log_density), kind="stable")[: max(1, int(np.ceil(share * len(values))))]
    kept = np.asarray(values, dtype=np.float64)[keep]
    return Estimate(float(np.median(kept)), float(kept.min()), float(kept.max()))


def estimate_pool(sample: AuditSample, confidence: float = 0.9, target_recall: float = 0.9,
                  prior: str = POOL_PRIOR, kind: str = INTERVAL) -> PoolEstimate:
    """Positives in the pool, prevalence and the labeling's recall, with `confidence` intervals."""
    posterior = positives_posterior(sample, prior=prior)
    low, high = posterior.bounds(confidence, kind)
    mid = posterior.quantile(0.5)
    found, size = sample.positives_found, sample.size
    drawn = sample.drawn_rows

    def recall(count: int) -> float:
        return found / count if count else 1.0

    # P(found / N+ >= target) = P(N+ <= found / target)
    reached = float(posterior.probs[posterior.values <= found / target_recall + 1e-9].sum())
    return PoolEstimate(
        pool=size, seen=int(np.count_nonzero(sample.seen)), positives_found=found,
        audit_draws=len(sample.draws), audit_tasks=len(drawn), audit_positives=int(np.count_nonzero(sample.labels[drawn] == 1)),
        positives=Estimate(mid, low, high),
        prevalence=Estimate(mid / size, low / size, high / size) if size else Estimate(0.0, 0.0, 0.0),
        labeling_recall=Estimate(recall(mid), recall(high), recall(low)),
        target_recall=target_recall, recall_reached=reached,
        uniform_to_certify=uniform_picks_to_certify(posterior, found, target_recall, confidence, prior),
    )


def uniform_picks_to_certify(posterior: CountPosterior, found: int, target_recall: float, confidence: float,
                             prior: str = POOL_PRIOR) -> int:
    """The fewest further uniform picks m from the unseen tasks after which, if none of them is
    positive, P(found / N+ >= target_recall) >= confidence, as `estimate_pool` would then say.

    `posterior` is over N+ (its values run from `found` over every unseen task) under `prior`.
    A draw of m tasks, none positive, from u unseen tasks holding k positives has probability
    C(u - k, m) / C(u, m): it multiplies the likelihood of k by (u - k)! / (u - k - m)! up to a
    constant; the prior is then over the u - m tasks still unseen. The probability grows with m
    (every unseen task drawn, none positive, proves k = 0), so m is found by bisection.
    """
    extra = (posterior.values - found).astype(np.float64)
    unseen = int(extra.max()) if len(extra) else 0
    enough = extra <= found / target_recall - found + 1e-9
    with np.errstate(divide="ignore"):
        log_posterior = np.log(posterior.probs) if posterior.log_probs is None else posterior.log_probs
    # the prior is taken out and put back over the tasks still unseen after the m picks
    log_likelihood = log_posterior - _log_prior(unseen, prior)

    def reached(m: int) -> float:
        still_unseen = unseen - m
        possible = extra <= still_unseen
        log_post = np.full(len(extra), -np.inf)
        log_post[possible] = (log_likelihood[possible] + _log_prior(still_unseen, prior)
                              + gammaln(unseen - extra[possible] + 1.0) - gammaln(still_unseen - extra[possible] + 1.0))
        if not np.isfinite(log_post.max()):
            return 0.0
        probs = np.exp(log_post - log_post.max())
        return float(probs[enough].sum() / probs.sum())

    if reached(0) >= confidence - 1e-12:
        return 0
    low, high = 0, unseen  # reached(unseen) = 1: every unseen task drawn, none positive
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if reached(middle) >= confidence - 1e-12 else (middle, high)
    return high


def score_strata(scores: np.ndarray, unseen: np.ndarray, threshold: float, per_side: int,
                 placed_by: np.ndarray | None = None) -> np.ndarray:
    """(N,) stratum index of every task: each side of the threshold cut into `per_side` bins of
    about equal numbers of unseen tasks (ordered from the highest scores down). The cuts come from
    the unseen tasks' `scores`; each task is placed by `placed_by` (default: `scores`)."""
    placed_by = scores if placed_by is None else placed_by
    strata = np.zeros(len(scores), dtype=np.int64)
    next_index = 0
    for above in (True, False):
        side_unseen = np.sort(scores[((scores > threshold) == above) & unseen])[::-1]
        cuts = side_unseen[(np.arange(1, per_side) * len(side_unseen)) // per_side] if len(side_unseen) else []
        cuts = np.unique(cuts)[::-1]  # descending, no duplicates
        side = (placed_by > threshold) == above
        # bin b holds scores above cuts[b] (and at most cuts[b-1])
        index = np.searchsorted(-cuts, -placed_by[side], side="left")
        strata[side] = next_index + index
        next_index += len(cuts) + 1
    return strata


def estimate_head(sample: AuditSample, scores: np.ndarray, threshold: float = 0.5, confidence: float = 0.9,
                  per_side: int = STRATA_PER_SIDE, prior: str = PRIOR, samples: int = 400, seed: int = 0,
                  kind: str = INTERVAL, min_stratum_draws: int = MIN_STRATUM_DRAWS,
                  placement_slope: float = PLACEMENT_SLOPE, nonlinear_kind: str = NONLINEAR_INTERVAL,
                  held_out_scores: np.ndarray | None = None, hold_edges: bool = HOLD_EDGES) -> HeadEstimate:
    """Precision and recall at `threshold` and average precision of a head scoring the pool `scores` (N,).

    The pool is split into strata by score (`score_strata`); the unseen positives of each
    stratum get their own posterior (draws restricted to a stratum are simple random
    samples of its unseen tasks), sampled jointly `samples` times. The average precision
    of a sample places a stratum's unseen positives over its unseen tasks by the head's
    odds (`placed_positives`, slope `placement_slope`); it is given once every stratum with
    unseen tasks has at least `min_stratum_draws` audit draws.

    `held_out_scores` (N,): for each rated task, the score of a head fitted without its rating
    (`core.training.cross_fitted_scores`), NaN for the others. A head ranks the tasks it was
    trained on by their labels, so by `scores` a drawn positive moves above the threshold and
    the draws left below it are no simple random sample of that stratum: the positives still
    unseen there are under-counted (spam at 31%: drawn positives above the threshold 97% of the
    time, unseen ones 76-88%). Given, rated tasks enter the strata's likelihoods by it, and
    the AP places a stratum's unseen positives by `calibrated_chance` instead of the tilted
    odds. None: `scores` stand for both (a head not fitted on the ratings).

    A quantity that rests on one uncertain count (a stratum with unseen tasks) gets `kind`'s
    interval of its samples if it is linear in the count (the precision), `nonlinear_kind`'s
    otherwise (the recall and the AP: `NONLINEAR_INTERVAL`). One that rests on two or more (the recall and the AP early on,
    while both sides of the threshold hold unseen tasks) gets its range over the samples of
    highest joint density (`joint_share`): on development seeds the shortest interval of such
    a quantity's samples covered 81% (recall and AP), cutting off the joint mode ("hardly a
    positive left below the threshold" on a rare concept) at every seed of some checkpoints;
    the range covered 94% (recall) and 97% (AP) (`benchmarks.choices`).

    `hold_edges`: an interval on one uncertain stratum whose audit draws hold no positive (or only
    positives) also holds the quantity's value at no unseen positive there (every unseen task
    positive): the Jeffreys interval's limit at x = 0 (x = n) of Brown, Cai & DasGupta (2001). A
    rare concept's head that has found every positive leaves thousands of unseen tasks below its
    threshold and a dozen audit draws among them; "none left" is then just under the 5% tail.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape != (sample.size,):
        raise ValueError(f"scores {scores.shape} do not match the pool of {sample.size} tasks")
    unseen = ~sample.seen
    strata = score_strata(scores, unseen, threshold, per_side)
    members = strata
    if held_out_scores is not None:
        held_out_scores = np.asarray(held_out_scores, dtype=np.float64)
        placed_by = np.where(np.isnan(held_out_scores), scores, held_out_scores)
        members = score_strata(scores, unseen, threshold, per_side, placed_by=placed_by)
    n_strata = int(max(strata.max(), members.max())) + 1 if len(strata) else 0
    rng = np.random.default_rng(seed)
    drawn = np.bincount(members[sample.drawn_rows], minlength=n_strata)
    drawn_positives = np.bincount(members[sample.drawn_rows], weights=sample.labels[sample.drawn_rows] == 1,
                                  minlength=n_strata)
    # unseen positives per stratum: (samples, n_strata)
    extra = np.zeros((samples, n_strata))
    log_density = np.zeros(samples)  # of each joint sample, up to a constant
    unseen_count = np.bincount(strata[unseen], minlength=n_strata).astype(np.float64)
    for b in range(n_strata):
        if unseen_count[b]:
            posterior = positives_posterior(sample, members == b, prior=prior)
            counts = posterior.sample(rng, samples)
            extra[:, b] = counts - posterior.values[0]
            log_density += posterior.log_density(counts)
    known = sample.labels == 1
    above = scores > threshold
    hi_strata = np.unique(strata[above])
    found_above = np.count_nonzero(known & above)
    predicted = int(np.count_nonzero(above))
    enough_draws = (drawn >= min_stratum_draws) | (unseen_count == 0)

    def precision_of(unseen_positives: np.ndarray) -> np.ndarray:
        return (found_above + unseen_positives[:, hi_strata].sum(axis=1)) / predicted

    def recall_of(unseen_positives: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return (found_above + unseen_positives[:, hi_strata].sum(axis=1)) / (
                np.count_nonzero(known) + unseen_positives.sum(axis=1))

    def interval_of(values: np.ndarray, quantity: Callable[[np.ndarray], np.ndarray], strata_used: np.ndarray,
                    linear: bool) -> Estimate:
        """`values`: `quantity` of the samples `extra`."""
        uncertain = strata_used[unseen_count[strata_used] > 0]
        if len(uncertain) >= 2:
            return region_interval(values, log_density, joint_share(confidence, len(uncertain)))
        estimate = interval(values, confidence, kind if linear else nonlinear_kind)
        if hold_edges and len(uncertain) == 1:
            at_edges = quantity(_edge_counts(int(uncertain[0]), drawn, drawn_positives, unseen_count))
            at_edges = at_edges[np.isfinite(at_edges)]
            if len(at_edges):
                estimate = replace(estimate, low=min(estimate.low, float(at_edges.min())),
                                   high=max(estimate.high, float(at_edges.max())))
        return estimate

    precision, bounds = None, None
    if predicted:
        bounds = (float(found_above / predicted), float((found_above + np.count_nonzero(above & unseen)) / predicted))
        if np.all(enough_draws[hi_strata]):
            precision = interval_of(precision_of(extra), precision_of, hi_strata, linear=True)
    recall_samples = recall_of(extra)
    recall = None
    if np.all(np.isfinite(recall_samples)):  # NaN where a sample holds no positive at all
        recall = interval_of(recall_samples, recall_of, np.arange(n_strata), linear=False)
    fewest = int(drawn[unseen_count > 0].min()) if np.any(unseen_count > 0) else 0
    average_precision = None
    if np.all(enough_draws):
        chance = None if held_out_scores is None else calibrated_chance(scores, held_out_scores, sample.labels)

        def average_precision_of(unseen_positives: np.ndarray) -> np.ndarray:
            return average_precision_samples(sample.labels, scores, strata, unseen_positives,
                                             placement_slope if chance is None else 1.0, placed_by=chance)

        ap = average_precision_of(extra)
        if np.all(np.isfinite(ap)):
            average_precision = interval_of(ap, average_precision_of, np.arange(n_strata), linear=False)
    above_draws = int(drawn[hi_strata].sum())
    return HeadEstimate(threshold, predicted, precision, recall, average_precision, fewest, above_draws, bounds)


def _edge_counts(stratum: int, drawn: np.ndarray, drawn_positives: np.ndarray,
                 unseen_count: np.ndarray) -> np.ndarray:
    """(0-2, strata) unseen positives per stratum at the edges `stratum`'s audit draws cannot rule out: none
    there if no draw was positive, all of its unseen tasks if every draw was (`estimate_head`'s hold_edges)."""
    edges = []
    if drawn[stratum] and drawn_positives[stratum] == 0:
        edges.append(np.zeros(len(unseen_count)))
    if drawn[stratum] and drawn_positives[stratum] == drawn[stratum]:
        edges.append(np.where(np.arange(len(unseen_count)) == stratum, unseen_count, 0.0))
    return np.array(edges).reshape(len(edges), len(unseen_count))


def calibrated_chance(scores: np.ndarray, held_out_scores: np.ndarray, labels: np.ndarray) -> np.ndarray | None:
    """(N,) each task's chance of being positive given its score: the isotonic regression of the rated tasks'
    labels on their held-out scores (`held_out_scores`, NaN for tasks not rated), read at `scores` and pulled
    half a task towards 0.5 so that no task gets 0 or 1. None without a rated task.

    The loop picks tasks by what it sees of them, never by their answer, so among tasks of one held-out
    score the rated ones are positive as often as the unseen ones: the regression says where in a stratum
    its unseen positives sit. The head's own odds understate how they gather under a strong head's threshold
    (benchmarks.choices.EVALUATION)."""
    held_out_scores = np.asarray(held_out_scores, dtype=np.float64)
    rated = ~np.isnan(held_out_scores) & ~np.isnan(labels)
    if not rated.any():
        return None
    x, inverse, counts = np.unique(held_out_scores[rated], return_inverse=True, return_counts=True)
    shares = np.bincount(inverse.ravel(), weights=labels[rated]) / counts
    fitted = isotonic_regression(shares, weights=counts.astype(np.float64), increasing=True).x
    n = int(rated.sum())
    return np.interp(np.asarray(scores, dtype=np.float64), x, (fitted * n + 0.5) / (n + 1))


def average_precision_samples(labels: np.ndarray, scores: np.ndarray, strata: np.ndarray,
                              unseen_positives: np.ndarray, placement_slope: float = PLACEMENT_SLOPE,
                              placed_by: np.ndarray | None = None,
                              chunk_cells: int = 2_000_000) -> np.ndarray:
    """AP of `scores` for each row of `unseen_positives` (samples, strata): rated tasks count with their
    label, an unseen task with its chance of being one of its stratum's unseen positives in that
    sample (`placed_positives`, on the log-odds of `placed_by` when given, e.g. `calibrated_chance`,
    else of `scores`). Tied scores form one step, as in scikit-learn's average_precision_score. NaN
    without positives."""
    order = np.argsort(-scores, kind="stable")
    ranked_scores = scores[order]
    ranked_labels = labels[order]
    unseen = np.isnan(ranked_labels)
    base = np.where(unseen, 0.0, ranked_labels)
    clipped = np.clip(ranked_scores if placed_by is None else placed_by[order], 1e-6, 1 - 1e-6)
    ranked_logits = np.log(clipped / (1 - clipped))
    columns = {b: np.flatnonzero(unseen & (strata[order] == b)) for b in range(unseen_positives.shape[1])}
    columns = {b: c for b, c in columns.items() if len(c)}
    # the last row of each run of equal scores closes a threshold
    ends = np.append(np.flatnonzero(np.diff(ranked_scores) != 0), len(ranked_scores) - 1)
    out = np.empty(len(unseen_positives))
    rows = max(1, chunk_cells // max(len(scores), 1))
    for start in range(0, len(unseen_positives), rows):
        chunk = unseen_positives[start:start + rows]
        expected = np.repeat(base[None, :], len(chunk), axis=0)
        for b, cols in columns.items():
            counts, inverse = np.unique(chunk[:, b], return_inverse=True)
            expected[:, cols] = placed_positives(ranked_logits[cols], counts, placement_slope)[inverse.ravel()]
        true_positives = np.cumsum(expected, axis=1)[:, ends]
        total = true_positives[:, -1]
        steps = np.diff(true_positives, axis=1, prepend=0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[start:start + rows] = np.where(total > 0, (steps * true_positives / (ends + 1)).sum(axis=1) / total, np.nan)
    return out


def placed_positives(logits: np.ndarray, counts: np.ndarray, slope: float) -> np.ndarray:
    """(len(counts), n) chance that each of n unseen tasks with head log-odds `logits` is positive, given
    that they hold counts[j] positives: sigmoid(shift_j + slope * logits), shift_j such that row j sums
    to counts[j] (clipped to 0..n). Slope 0 spreads the count evenly."""
    n = len(logits)
    counts = np.clip(np.asarray(counts, dtype=np.float64), 0.0, n)
    tilted = slope * logits
    out = np.zeros((len(counts), n))
    inside = (counts > 0) & (counts < n)
    out[counts >= n] = 1.0
    if not inside.any():
        return out
    # sum_i sigmoid(shift + tilted_i) rises with the shift: bisect on it, every count at once
    low = np.full(int(inside.sum()), -np.log(n) - tilted.max() - 1.0)
    high = np.full(len(low), np.log(n) - tilted.min() + 1.0)
    wanted = counts[inside]
    for _ in range(PLACEMENT_BISECTIONS):
        middle = (low + high) / 2
        total = expit(middle[:, None] + tilted[None, :]).sum(axis=1)
        below = total < wanted
        low, high = np.where(below, middle, low), np.where(below, high, middle)
    out[inside] = expit(((low + high) / 2)[:, None] + tilted[None, :])
    return out

