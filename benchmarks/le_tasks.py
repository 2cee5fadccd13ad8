"""The benchmarks' tasks: concepts, prevalences, simulated annotators and each seed's pool.

A task is a binary concept of a real embedded dataset (SpamAssassin mails with MiniLM, Fashion-MNIST
with EfficientNet-Lite0, or a dataset file of your own) at a pool prevalence, with an annotator who
may flip or grade ratings. `make_split` gives one seed's pool (subsampled to the prevalence, rows in
import order) and the evaluation set. Shared by the label-efficiency, evaluation and cold-start
benchmarks; the task sets (tuned, held-out, development) are fixed here, before any run on them.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ml_backend.core.params import HeadParams

SPAM_PROMPT = "an unsolicited advertisement email"  # fixed before any run; generic, not tuned
# the mixed text concept's prompt names both kinds (fixed before any run)
SPAM_OR_EXMH_PROMPT = "an unsolicited advertisement email, or a message about the exmh mail reader"
EXMH_LISTS = ("exmh-users.spamassassin.taint.org", "exmh-workers.spamassassin.taint.org")
NOISE = 0.1
BUILT_IN_MODALITIES = {"spam": "text", "fashion": "image"}
SOFT_RANGE = (0.3, 1.0)
FASHION = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
# How a simulated project starts, before the first annotator label.
STARTS = {
    "prompt": "the prompt's zero-shot head (text tasks); every refit keeps the prompt, by default as "
              f"{HeadParams().prompt_weight:g} ratings of +1 (head.prompt_role, head.prompt_weight)",
    "example": "one random pool positive given as 'more like this': rated +1 before the first batch and "
               "not counted as a label (the labels axis counts annotator ratings only)",
    "none": "cold start: no prompt, no example; the first head is fitted on the first batch's ratings",
}


@dataclass(frozen=True)
class Task:
    """A binary concept at a pool prevalence, with a simulated annotator.

    positives : class indices that make the concept (spam: (1,) = spam).
    lists : text only: mails of these mailing lists are positives too (a concept of two kinds).
    prevalence : share of positives in the pool after subsampling; None = natural.
    noise : share of ratings flipped. ratings : "hard" (+-1) or "soft" (graded).
    batch_sizes : batch sizes run from the informed start (prompt or example); the cold
        start runs the first of them only.
    """

    concept: str
    dataset: str
    positives: tuple[int, ...]
    prevalence: float | None = None
    noise: float = 0.0
    ratings: str = "hard"
    batch_sizes: tuple[int, ...] = (10, 25)
    lists: tuple[str, ...] = ()
    prompt: str | None = None

    @property
    def modality(self) -> str:
        return BUILT_IN_MODALITIES.get(self.dataset, "own data")

    @property
    def name(self) -> str:
        prevalence = "natural" if self.prevalence is None else f"{self.prevalence:.0%}"
        suffix = (f" noisy{self.noise:.0%}" if self.noise else "") + (" soft" if self.ratings == "soft" else "")
        return f"{self.concept} @{prevalence}{suffix}"

    @property
    def settings(self) -> tuple[tuple[str, int], ...]:
        """(start, batch size) pairs run for this task: the informed start at every batch size, the cold one at the first."""
        informed = "prompt" if self.prompt is not None else "example"
        return tuple((informed, b) for b in self.batch_sizes) + (("none", self.batch_sizes[0]),)


def _fashion(*names: str) -> tuple[int, ...]:
    return tuple(FASHION.index(n) for n in names)


SPAM = dict(concept="spam", dataset="spam", positives=(1,), prompt=SPAM_PROMPT)
SPAM_EXMH = dict(concept="spam+exmh (mixed)", dataset="spam", positives=(1,), lists=EXMH_LISTS,
                 prompt=SPAM_OR_EXMH_PROMPT)
BAG = dict(concept="Bag (easy)", dataset="fashion", positives=_fashion("Bag"))
SHIRT = dict(concept="Shirt (hard)", dataset="fashion", positives=_fashion("Shirt"))
MIXED = dict(concept="Trouser+Bag (mixed)", dataset="fashion", positives=_fashion("Trouser", "Bag"))
BROAD = dict(concept="tops (broad)", dataset="fashion",
             positives=_fashion("T-shirt/top", "Pullover", "Coat", "Shirt"))

FULL_TASKS: tuple[Task, ...] = (
    # one-vs-rest concepts at natural prevalence, 5% and 1% positives in the pool; batches of 10 and 25
    Task(**SPAM), Task(**SPAM, prevalence=0.05), Task(**SPAM, prevalence=0.01),
    Task(**BAG), Task(**BAG, prevalence=0.05), Task(**BAG, prevalence=0.01),
    Task(**SHIRT), Task(**SHIRT, prevalence=0.05), Task(**SHIRT, prevalence=0.01),
    # concepts made of several kinds (where a single W direction is weakest), batch 10
    Task(**MIXED, prevalence=0.01, batch_sizes=(10,)), Task(**SPAM_EXMH, prevalence=0.01, batch_sizes=(10,)),
    Task(**BROAD, batch_sizes=(10,)),
    # noisy annotators (10% of ratings flipped) and graded ratings, batch 10
    Task(**SPAM, prevalence=0.01, noise=NOISE, batch_sizes=(10,)), Task(**BAG, prevalence=0.01, noise=NOISE, batch_sizes=(10,)),
    Task(**SHIRT, noise=NOISE, batch_sizes=(10,)),
    Task(**SPAM, prevalence=0.05, ratings="soft", batch_sizes=(10,)),
    Task(**SHIRT, prevalence=0.05, ratings="soft", batch_sizes=(10,)),
)
# Concepts no tuning run ever used (hyperparameters were chosen on FULL_TASKS' concepts), written
# down with their prompts before any run on them: do the defaults carry over to other concepts?
RPM_LIST = "rpm-zzzlist.freshrpms.net"
RAZOR_LIST = "razor-users.example.sourceforge.net"
DRESS = dict(concept="Dress", dataset="fashion", positives=_fashion("Dress"))
RPM = dict(concept="rpm list", dataset="spam", positives=(), lists=(RPM_LIST,),
           prompt="a message about building or installing RPM packages")
HELDOUT_TASKS: tuple[Task, ...] = tuple(Task(**kwargs, batch_sizes=(10,)) for kwargs in (
    DRESS, dict(**DRESS, prevalence=0.01),
    dict(concept="Sneaker", dataset="fashion", positives=_fashion("Sneaker"), prevalence=0.01),
    dict(concept="Coat (hard)", dataset="fashion", positives=_fashion("Coat"), prevalence=0.05),
    dict(concept="Sandal+Dress (mixed)", dataset="fashion", positives=_fashion("Sandal", "Dress"), prevalence=0.01),
    dict(concept="footwear (broad)", dataset="fashion", positives=_fashion("Sandal", "Sneaker", "Ankle boot")),
    dict(concept="Pullover", dataset="fashion", positives=_fashion("Pullover"), prevalence=0.01, noise=NOISE),
    RPM, dict(**RPM, prevalence=0.01),
    dict(concept="razor-users", dataset="spam", positives=(), lists=(RAZOR_LIST,), prevalence=0.01,
         prompt="a question about the Razor spam filtering tool"),
    dict(concept="razor+rpm (mixed)", dataset="spam", positives=(), lists=(RAZOR_LIST, RPM_LIST), prevalence=0.01,
         prompt="a message about the Razor spam filter, or about RPM packages"),
))
# Concepts for development runs only (seeds 1000+, --evaluate-on validation): every concept of the
# datasets that neither set above uses, written down with their prompts before any run on them
# (2026-12-02). Nothing is reported from them in the README.
DEVELOPMENT_TASKS: tuple[Task, ...] = tuple(Task(**kwargs, batch_sizes=(10,)) for kwargs in (
    dict(concept="ilug list", dataset="spam", positives=(), lists=("ilug.linux.ie",),
         prompt="a message about using Linux"),
    dict(concept="fork list", dataset="spam", positives=(), lists=("fork.xent.com",),
         prompt="a discussion of technology, politics and culture"),
    dict(concept="spamassassin-talk", dataset="spam", positives=(), lists=("spamassassin-talk.example.sourceforge.net",),
         prompt="a question about configuring the SpamAssassin spam filter"),
    dict(concept="T-shirt", dataset="fashion", positives=_fashion("T-shirt/top")),
    dict(concept="Trouser", dataset="fashion", positives=_fashion("Trouser")),
))
TASK_SETS = {"full": FULL_TASKS, "heldout": HELDOUT_TASKS, "development": DEVELOPMENT_TASKS}
# Prevalences a concept of your own data also runs at, when the pool holds enough of it (`own_tasks`).
OWN_PREVALENCES = (0.05, 0.01)
OWN_MIN_POSITIVES = 5
OWN_MIN_POOL = 50
QUICK_TASKS: tuple[Task, ...] = (
    Task(**SPAM, prevalence=0.01, batch_sizes=(10,)),
    Task(**BAG, batch_sizes=(10,)),
    Task(**MIXED, prevalence=0.01, noise=NOISE, batch_sizes=(10,)),
)

# ---------------------------------------------------------------- data

_DATA: dict = {}


def _dataset(name: str, cache_dir: str):
    """The EmbeddedDataset (cached per process): a built-in one, or a file of your own (`benchmarks.own_data`)."""
    if name not in _DATA:
        from benchmarks import own_data
        from benchmarks.datasets import load_fashion_mnist, load_spam
        loaders = {"spam": load_spam, "fashion": load_fashion_mnist}
        _DATA[name] = loaders[name](cache_dir) if name in loaders else own_data.load(name)
    return _DATA[name]


def own_tasks(path: str) -> tuple[Task, ...]:
    """One-vs-rest concepts of every class in a dataset file (`benchmarks.own_data`), batch 10: at the
    class's natural prevalence, and at `OWN_PREVALENCES` below it where `OWN_MIN_POSITIVES` remain. A
    class with a prompt starts from it, the others from an example; every one also from nothing.

    A class is left out unless both splits hold items of it and items of other classes (its AP on the
    test split is undefined otherwise); DatasetFileError when that leaves none, or the pool is too
    small for the protocol (fewer than `OWN_MIN_POOL` items)."""
    from benchmarks import own_data
    ds, prompts = own_data.read(path)
    if len(ds.y_pool) < OWN_MIN_POOL:
        raise own_data.DatasetFileError(f"{path}: the pool holds {len(ds.y_pool)} items; the protocol needs at "
                                        f"least {OWN_MIN_POOL} (a learning curve of several batches of 10)")
    tasks = []
    for k, name in enumerate(ds.class_names):
        natural = float(np.mean(ds.y_pool == k))
        negatives = int(np.sum(ds.y_pool != k))
        if not (0 < natural < 1 and 0 < np.mean(ds.y_test == k) < 1):
            continue
        concept = dict(concept=name, dataset=str(path), positives=(k,), prompt=prompts.get(k), batch_sizes=(10,))
        tasks.append(Task(**concept))
        tasks += [Task(**concept, prevalence=p) for p in OWN_PREVALENCES
                  if natural > p and round(p * negatives / (1 - p)) >= OWN_MIN_POSITIVES]
    if not tasks:
        raise own_data.DatasetFileError(f"{path}: no class can be run: each needs items of it and of other classes "
                                        "in both the pool and the test split")
    return tuple(tasks)


def own_tasks_or_exit(parser: argparse.ArgumentParser, path: str) -> tuple[Task, ...]:
    """`own_tasks`, a broken file ending the command with its reason (both benchmarks' --dataset)."""
    from benchmarks.own_data import DatasetFileError
    try:
        return own_tasks(path)
    except DatasetFileError as exc:
        parser.error(str(exc))


def filter_tasks_or_exit(parser: argparse.ArgumentParser, tasks: Sequence[Task], spec: str) -> tuple[Task, ...]:
    """The tasks whose name holds one of the comma-separated substrings of `spec`; none is a usage
    error (an empty run would end in a report of NaNs)."""
    kept = tuple(t for t in tasks if any(f in t.name for f in spec.split(",")))
    if not kept:
        parser.error(f"--tasks {spec!r} matches no task; names are concept @prevalence, e.g. 'spam @1%' "
                     f"(starts and batch sizes are not part of them): {', '.join(t.name for t in tasks)}")
    return kept


def _mailing_lists(cache_dir: str) -> tuple[np.ndarray, np.ndarray]:
    if "lists" not in _DATA:
        from benchmarks.datasets import spam_mailing_lists
        _DATA["lists"] = spam_mailing_lists(_dataset("spam", cache_dir), cache_dir)
    return _DATA["lists"]


def prompt_vector(task: Task, cache_dir: str) -> np.ndarray:
    """The task's prompt in its dataset's space (for your own data: embedded in the file)."""
    key = ("prompt", task.dataset, task.prompt)
    if key not in _DATA:
        _DATA[key] = _dataset(task.dataset, cache_dir).embed_text([task.prompt])[0]
    return _DATA[key]


@dataclass
class Split:
    """One task's arrays for one seed: the (subsampled) pool, the evaluation set, the annotator."""

    X: np.ndarray          # (n, d) pool
    y: np.ndarray          # (n,) bool truth
    ratings: np.ndarray    # (n,) what the simulated annotator answers, in [-1, 1]
    X_eval: np.ndarray
    y_eval: np.ndarray     # bool


def _truth(task: Task, cache_dir: str) -> tuple[np.ndarray, np.ndarray]:
    """(pool, test) bool: which items belong to the task's concept."""
    ds = _dataset(task.dataset, cache_dir)
    y_pool, y_test = np.isin(ds.y_pool, task.positives), np.isin(ds.y_test, task.positives)
    if task.lists:
        lists_pool, lists_test = _mailing_lists(cache_dir)
        y_pool, y_test = y_pool | np.isin(lists_pool, task.lists), y_test | np.isin(lists_test, task.lists)
    return y_pool, y_test


def make_split(task: Task, seed: int, cache_dir: str, evaluate_on: str = "test") -> Split:
    """Pool subsampled to the task's prevalence for this seed, and the fixed evaluation set.

    The pool's rows stay in import order, grouped by folder as a project imported folder by
    folder would be (spam: by corpus folder; Fashion-MNIST: by class), so a strategy that
    breaks ties by row order shows it. evaluate_on="test": the fixed test split (reported
    numbers). "validation": a fixed 25% of the pool held out and scored instead, the test
    split unused (for tuning).
    """
    ds = _dataset(task.dataset, cache_dir)
    folder_order = np.argsort(ds.y_pool, kind="stable") if task.dataset == "fashion" else np.arange(len(ds.y_pool))
    truth_pool, truth_test = _truth(task, cache_dir)
    X, y = ds.X_pool[folder_order], truth_pool[folder_order]
    if evaluate_on == "validation":
        fold = np.random.default_rng(12345).random(len(y)) < 0.25
        X_eval, y_eval, X, y = X[fold], y[fold], X[~fold], y[~fold]
    else:
        X_eval, y_eval = ds.X_test, truth_test
    rng = np.random.default_rng([seed, 7])
    if task.prevalence is not None:
        negatives, positives = np.flatnonzero(~y), np.flatnonzero(y)
        keep = int(round(task.prevalence * len(negatives) / (1.0 - task.prevalence)))
        if keep > len(positives):
            raise ValueError(f"{task.name}: only {len(positives)} positives, need {keep}")
        rows = np.sort(np.concatenate([negatives, rng.choice(positives, keep, replace=False)]))
        X, y = X[rows], y[rows]
    sign = np.where(y, 1.0, -1.0)
    if task.ratings == "soft":
        low, high = SOFT_RANGE
        ratings = sign * rng.uniform(low, high, len(y))
    else:
        ratings = sign.copy()
    if task.noise:
        ratings = np.where(rng.random(len(y)) < task.noise, -ratings, ratings)
    return Split(X, y, ratings, X_eval, y_eval)
