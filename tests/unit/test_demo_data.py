"""The offline demo's data: real emails and real Fashion-MNIST images from their packages, picked reproducibly."""

from __future__ import annotations

import pytest
from PIL import Image

from benchmarks.datasets import DEFAULT_CACHE_DIR, FASHION_MNIST_DIR
from scripts import demo_data

needs_spam = pytest.mark.skipif(not demo_data.spam_dir(DEFAULT_CACHE_DIR).is_dir(),
                                reason="SpamAssassin not installed: bash scripts/install_datasets.sh")
needs_fashion = pytest.mark.skipif(not FASHION_MNIST_DIR.is_dir(),
                                   reason="Fashion-MNIST not installed: bash scripts/install_datasets.sh")


@needs_spam
def test_spam_tasks_are_the_stated_mix_of_real_emails_and_reproducible():
    tasks = demo_data.spam_tasks()
    assert len(tasks) == demo_data.HAM_COUNT + demo_data.SPAM_COUNT
    assert sum(t["email"].startswith("spam") for t in tasks) == demo_data.SPAM_COUNT
    assert len({t["email"] for t in tasks}) == len(tasks)
    assert all(t["text"].strip() and len(t["text"]) <= 1500 for t in tasks)
    assert tasks == demo_data.spam_tasks()
    # Shuffled: the spam is spread through the import, not in one block at the end.
    first_half = tasks[: len(tasks) // 2]
    assert 0 < sum(t["email"].startswith("spam") for t in first_half) < demo_data.SPAM_COUNT


@needs_fashion
def test_fashion_images_are_real_test_images_with_the_stated_bags(tmp_path):
    paths = demo_data.fashion_images(tmp_path)
    assert len(paths) == 9 * demo_data.IMAGES_PER_CLASS + demo_data.BAGS
    assert sum(p.stem.endswith("-bag") for p in paths) == demo_data.BAGS
    with Image.open(paths[0]) as image:
        assert image.size == (demo_data.IMAGE_SIZE, demo_data.IMAGE_SIZE)
    assert [p.name for p in demo_data.fashion_images(tmp_path / "again")] == [p.name for p in paths]
