"""The benchmarks on a dataset of your own: the file format, the tasks made from it, a whole run."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from benchmarks import evaluation, label_efficiency, le_tasks, own_data

CLASSES = ("common", "middling", "rare", "scarce")
SHARES = (0.6, 0.25, 0.12, 0.03)


def write_dataset(path, pool: int = 1200, test: int = 300, dim: int = 16, seed: int = 0, **changes):
    """Four classes around their own centres; classes 0 and 2 have a prompt (their centre)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(len(CLASSES), dim))

    def draw(n):
        y = rng.choice(len(CLASSES), size=n, p=SHARES)
        return centres[y] + rng.normal(scale=1.5, size=(n, dim)), y

    (X_pool, y_pool), (X_test, y_test) = draw(pool), draw(test)
    arrays = dict(X_pool=X_pool, y_pool=y_pool, X_test=X_test, y_test=y_test, class_names=np.array(CLASSES),
                  prompts=np.array(["the common kind", "", "the rare kind", ""]),
                  prompt_vectors=np.vstack([centres[0], np.ones(dim), centres[2], np.ones(dim)]))
    arrays.update(changes)
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return path


def test_a_dataset_file_loads_with_unit_rows_and_its_prompts_in_the_same_space(tmp_path):
    ds = own_data.load(write_dataset(tmp_path / "own.npz"))
    assert ds.class_names == CLASSES
    np.testing.assert_allclose(np.linalg.norm(ds.X_pool, axis=1), 1.0, rtol=1e-5)
    prompt = ds.embed_text(["the rare kind"])
    assert prompt.shape == (1, 16)
    with pytest.raises(own_data.DatasetFileError, match="no embedded prompt"):
        ds.embed_text(["a prompt nobody embedded"])


@pytest.mark.parametrize("changes, message", [
    ({"y_test": None}, "missing y_test"),
    ({"X_test": np.ones((300, 8))}, "X_test has 8 dimensions, X_pool 16"),
    ({"X_pool": np.full((1200, 16), np.nan)}, "not finite, too large or all zeros"),
    ({"X_pool": np.full((1200, 16), 1e200)}, "not finite, too large or all zeros"),
    ({"X_pool": np.ones((1200, 16)) + 1j}, "array of real numbers"),
    ({"class_names": np.array(CLASSES, dtype=object)}, "Object arrays cannot be loaded"),
    ({"y_pool": np.full(1200, 7)}, "class outside 0..3"),
    ({"y_pool": np.zeros(1200)}, "integer classes"),
    ({"prompt_vectors": None}, "prompts and prompt_vectors must come together"),
])
def test_a_broken_dataset_file_is_refused_with_what_is_wrong(tmp_path, changes, message):
    with pytest.raises(own_data.DatasetFileError, match=message):
        own_data.load(write_dataset(tmp_path / "own.npz", **changes))


def test_a_file_that_is_no_npz_is_refused(tmp_path):
    path = tmp_path / "own.npz"
    path.write_bytes(b"not a zip at all")
    with pytest.raises(own_data.DatasetFileError, match="not a readable .npz"):
        own_data.load(path)
    np.save(tmp_path / "lone.npy", np.ones((3, 4)))
    with pytest.raises(own_data.DatasetFileError, match="one array, not an .npz"):
        own_data.load(tmp_path / "lone.npy")


def test_every_class_becomes_a_concept_at_the_prevalences_its_pool_can_hold(tmp_path):
    path = str(write_dataset(tmp_path / "own.npz"))
    tasks = le_tasks.own_tasks(path)
    names = [t.name for t in tasks]
    # natural for all four; 5% and 1% only below the natural share, and only with 5 positives left
    assert names == ["common @natural", "common @5%", "common @1%", "middling @natural", "middling @5%",
                     "middling @1%", "rare @natural", "rare @5%", "rare @1%", "scarce @natural", "scarce @1%"]
    starts = {t.concept: [start for start, _ in t.settings] for t in tasks}
    assert starts["rare"] == ["prompt", "none"] and starts["scarce"] == ["example", "none"]
    ds = own_data.load(path)
    split = le_tasks.make_split(tasks[2], seed=3, cache_dir="unused")
    assert split.y.mean() == pytest.approx(0.01, abs=0.002)
    assert len(split.y_eval) == len(ds.y_test)


def test_the_label_efficiency_protocol_runs_on_your_own_data(tmp_path):
    path = write_dataset(tmp_path / "own.npz")
    report = label_efficiency.main(["--dataset", str(path), "--tasks", "rare @5%,scarce @natural", "--seeds", "2",
                                    "--budget", "40", "--workers", "1", "--strategies", "adaptive",
                                    "--out", str(tmp_path / "out"), "--no-plots"])
    written = json.loads((tmp_path / "out" / "label_efficiency_own.json").read_text())
    assert written["task_set"] == "own" and f"--dataset {path}" in written["command"]
    settings = {(e["concept"], e["start"]) for e in written["tasks"]}
    assert settings == {("rare", "prompt"), ("rare", "none"), ("scarce", "example"), ("scarce", "none")}
    prompted = next(e for e in written["tasks"] if e["start"] == "prompt")
    assert prompted["prompt"] == "the rare kind" and "zero_shot" in prompted["strategies"]
    assert report["tasks"] == written["tasks"]


def test_the_evaluation_benchmark_runs_on_your_own_data(tmp_path):
    path = write_dataset(tmp_path / "own.npz")
    evaluation.main(["--dataset", str(path), "--tasks", "middling @natural", "--seeds", "1", "--budget", "60",
                     "--workers", "1", "--out", str(tmp_path / "out")])
    written = json.loads((tmp_path / "out" / "evaluation_own.json").read_text())
    assert written["task_set"] == "own"
    assert [t["task"] for t in written["summary"]["per_task"]] == ["middling @natural"]
    assert (tmp_path / "out" / "evaluation_own.png").exists()  # a short run, where no stopping rule fired, still plots


def test_a_larger_audit_share_reaches_the_simulated_projects(tmp_path):
    """`--selection` is how a team measures what a larger audit share buys: it must reach the strategy each
    simulated project runs, and the report must say which share it measured."""
    from benchmarks import ev_simulation
    from ml_backend.core.params import EvaluationParams, SelectionParams

    path = write_dataset(tmp_path / "own.npz")
    task = next(t for t in le_tasks.own_tasks(str(path)) if t.name == "scarce @natural")
    audited = {share: ev_simulation.simulate(task, 0, "unused", 60, EvaluationParams(),
                                             selection=SelectionParams(uniform_share=share))["audit_labels"]
               for share in (0.1, 0.5)}
    # half of every batch of 10 with 0.5; with 0.1 at least one pick, more while the estimated prevalence is high
    assert audited[0.5] == 30 > audited[0.1] >= 6
    evaluation.main(["--dataset", str(path), "--tasks", "scarce @natural", "--seeds", "1", "--budget", "30",
                     "--workers", "1", "--out", str(tmp_path / "out"), "--selection", '{"uniform_share": 0.5}'])
    written = json.loads((tmp_path / "out" / "evaluation_own.json").read_text())
    assert written["settings"]["uniform_share"] == written["selection_params"]["uniform_share"] == 0.5


def test_a_broken_dataset_file_stops_the_benchmark_with_its_reason(tmp_path, capsys):
    path = write_dataset(tmp_path / "own.npz", y_test=None)
    with pytest.raises(SystemExit):
        label_efficiency.main(["--dataset", str(path), "--out", str(tmp_path / "out")])
    assert "missing y_test" in capsys.readouterr().err


def _image_folder(root, broken: bool = False):
    for name, colour in (("red", (220, 30, 30)), ("blue", (30, 30, 220))):
        (root / name).mkdir(parents=True)
        for i in range(4):
            Image.new("RGB", (40, 40), tuple(min(255, c + 8 * i) for c in colour)).save(root / name / f"{i}.png")
    if broken:
        (root / "red" / "broken.png").write_bytes(b"\x89PNG but nothing after")
    return root


def test_a_labeled_image_folder_is_embedded_with_the_backends_embedder(tmp_path, tiny_clip_dir):
    folder = _image_folder(tmp_path / "photos", broken=True)
    out = tmp_path / "photos.npz"
    written = own_data.embed_folder(folder, "image", str(tiny_clip_dir), "a photo of a {}", out, log=lambda _: None)
    assert written["items"] == 8 and len(written["skipped"]) == 1 and "broken.png" in written["skipped"][0]
    ds = own_data.load(out)
    assert ds.class_names == ("blue", "red")
    assert len(ds.y_pool) == 6 and len(ds.y_test) == 2 and set(ds.y_test) == {0, 1}  # a quarter of each class
    assert own_data.read(out)[1] == {0: "a photo of a blue", 1: "a photo of a red"}
    assert ds.embed_text(["a photo of a red"]).shape == (1, ds.dim)


def test_a_labeled_text_folder_is_embedded_and_a_folder_without_classes_is_refused(tmp_path, tiny_text_dir):
    folder = tmp_path / "mails"
    for name, words in (("ham", "meeting notes"), ("spam", "cheap pills")):
        (folder / name).mkdir(parents=True)
        for i in range(4):
            (folder / name / f"{i}.txt").write_text(f"{words} number {i}")
    written = own_data.embed_folder(folder, "text", str(tiny_text_dir), None, tmp_path / "mails.npz",
                                    log=lambda _: None)
    assert written["items"] == 8 and not written["skipped"]
    assert own_data.load(tmp_path / "mails.npz").embed_text is not None
    assert own_data.read(tmp_path / "mails.npz")[1] == {}
    with pytest.raises(own_data.DatasetFileError, match="one subfolder per class"):
        own_data.embed_folder(folder / "ham", "text", str(tiny_text_dir), None, tmp_path / "x.npz")


def test_a_dataset_the_protocol_cannot_score_is_refused_before_any_run(tmp_path):
    too_small = write_dataset(tmp_path / "small.npz", pool=30)
    with pytest.raises(own_data.DatasetFileError, match="the pool holds 30 items"):
        le_tasks.own_tasks(str(too_small))
    # one class in the test split: no class has an average precision there
    one_class_test = write_dataset(tmp_path / "one.npz", y_test=np.zeros(300, dtype=np.int64))
    with pytest.raises(own_data.DatasetFileError, match="no class can be run"):
        le_tasks.own_tasks(str(one_class_test))


def test_a_class_missing_from_the_test_split_is_left_out(tmp_path):
    path = write_dataset(tmp_path / "own.npz")
    y_test = np.load(path)["y_test"]
    write_dataset(path, y_test=np.where(y_test == 3, 0, y_test))
    assert "scarce" not in {t.concept for t in le_tasks.own_tasks(str(path))}


def test_a_prompt_template_with_other_braces_is_taken_as_typed(tmp_path, tiny_clip_dir):
    folder = _image_folder(tmp_path / "photos")
    out = tmp_path / "photos.npz"
    own_data.embed_folder(folder, "image", str(tiny_clip_dir), "{a} photo: {}", out, log=lambda _: None)
    assert own_data.read(out)[1] == {0: "{a} photo: blue", 1: "{a} photo: red"}
