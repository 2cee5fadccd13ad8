"""Environment settings that cannot work are refused at startup, one clear line per variable."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from ml_backend.service.settings import ServiceSettings, SettingsError
from scripts.servers import ROOT


@pytest.fixture
def environ(monkeypatch, tmp_path):
    """Set environment variables for ServiceSettings.from_env, with a writable MODEL_DIR on loopback."""
    monkeypatch.setenv("MODEL_DIR", str(tmp_path / "model_dir"))
    monkeypatch.setenv("HOST", "127.0.0.1")

    def set_(**values: str) -> None:
        for name, value in values.items():
            monkeypatch.setenv(name, value)
    return set_


@pytest.mark.parametrize("name, value, reason", [
    ("PORT", "abc", "valid integer"),
    ("PORT", "70000", "less than or equal to 65535"),
    ("CHROMA_PORT", "-1", "greater than or equal to 1"),
    ("POLL_INTERVAL_S", "inf", "finite number"),  # would park the worker for good
    ("MAX_BACKOFF_S", "nan", "finite number"),
    ("LOG_LEVEL", "LOUD", "not a log level"),
    ("LABEL_STUDIO_URL", "localhost:8080", "not an http(s) URL"),
    ("LABEL_STUDIO_URL", "http://", "not an http(s) URL"),
    ("BACKEND_URL", "ftp://backend", "not an http(s) URL"),
    ("DEVICE", "banana", "not a torch device"),
    ("ALLOW_UNAUTHENTICATED", "maybe", "valid boolean"),
])
def test_a_refused_value_names_its_variable_and_why(environ, name, value, reason):
    environ(**{name: value})
    with pytest.raises(SettingsError) as refused:
        ServiceSettings.from_env()
    [problem] = refused.value.problems
    assert problem.startswith(f"{name}={value!r}: ") and reason in problem


def test_every_refused_variable_is_named_at_once(environ):
    environ(PORT="x", LOG_LEVEL="y", DEVICE="z")
    with pytest.raises(SettingsError) as refused:
        ServiceSettings.from_env()
    assert sorted(p.split("=")[0] for p in refused.value.problems) == ["DEVICE", "LOG_LEVEL", "PORT"]


def test_usual_spellings_are_accepted(environ):
    environ(LOG_LEVEL="debug", LABEL_STUDIO_URL=" https://ls.example.com/sub/ ", DEVICE="cpu", PORT="9090")
    settings = ServiceSettings.from_env()
    assert settings.log_level == "DEBUG" and settings.label_studio_url == "https://ls.example.com/sub/"
    assert settings.startup_problems() == []


def test_a_model_dir_that_cannot_be_written_is_a_startup_problem(environ, tmp_path):
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    environ(MODEL_DIR=str(a_file / "model_dir"))
    [problem] = ServiceSettings.from_env().startup_problems()
    assert problem.startswith(f"MODEL_DIR={a_file / 'model_dir'} is not a folder this backend can write to")


@pytest.mark.parametrize("content, reason", [
    (None, "No such file"),
    ("{not json", "Expecting property name"),
    ("[" * 100_000 + "]" * 100_000, "recursion"),
    (b"\xff\xfe{}", "can't decode"),
    ('[{"batch_size": 8}]', "holds a JSON list, not an object"),
])
def test_a_params_file_that_is_not_a_json_object_is_a_startup_problem(environ, tmp_path, content, reason):
    path = tmp_path / "params.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    environ(PROJECT_PARAMS_FILE=str(path))
    [problem] = ServiceSettings.from_env().startup_problems()
    assert problem.startswith(f"PROJECT_PARAMS_FILE={path} ") and reason in problem


def test_a_params_file_holding_an_object_is_accepted(environ, tmp_path):
    path = tmp_path / "params.json"
    path.write_text('{"default": {"batch_size": 8}, "12": {"prompt": "dogs"}}')
    environ(PROJECT_PARAMS_FILE=str(path))
    assert ServiceSettings.from_env().startup_problems() == []


def test_a_typo_in_the_params_file_is_a_startup_problem(environ, tmp_path):
    """Written while the backend was down, it was found only at each project's first use: every rating of those
    projects answered 422 and the status too (fuzz pass 4, 2026-12-02). A misspelt section was ignored."""
    path = tmp_path / "params.json"
    path.write_text('{"default": {"batch_size": 8}, "12": {"batchsize": 3}, "defualt": {}}')
    environ(PROJECT_PARAMS_FILE=str(path))
    problems = ServiceSettings.from_env().startup_problems()
    assert problems == [
        f"PROJECT_PARAMS_FILE={path}, section '12': invalid project parameters: batchsize: Extra inputs are not "
        "permitted",
        f"PROJECT_PARAMS_FILE={path}: section 'defualt' is neither \"default\" nor a project id",
    ]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_a_device_this_machine_lacks_is_a_startup_problem(environ):
    environ(DEVICE="cuda")
    [problem] = ServiceSettings.from_env().startup_problems()
    assert problem.startswith("DEVICE=cuda cannot be used here: ")


def test_the_service_exits_with_one_line_per_refused_variable_and_no_traceback(tmp_path):
    env = {**os.environ, "PORT": "abc", "POLL_INTERVAL_S": "inf", "HOST": "127.0.0.1",
           "MODEL_DIR": str(tmp_path / "model_dir"), "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "ml_backend.service"], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "ERROR: PORT='abc': Input should be a valid integer" in done.stderr
    assert "ERROR: POLL_INTERVAL_S='inf': Input should be a finite number" in done.stderr
    assert not (tmp_path / "model_dir").exists()  # refused before touching anything
