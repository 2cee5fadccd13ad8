"""The README's configuration tables must name every setting the code reads."""

from __future__ import annotations

import re
from pathlib import Path

from ml_backend.core.params import HeadParams, ProjectParams
from ml_backend.service.settings import ServiceSettings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def _documented(name: str) -> bool:
    return re.search(rf"`[^`]*\b{re.escape(name)}\b[^`]*`", README) is not None


def test_every_environment_variable_is_in_the_readme():
    aliases = {"label_studio_api_key": "LABEL_STUDIO_API_KEY"}
    missing = [aliases.get(f, f.upper()) for f in ServiceSettings.model_fields
               if not _documented(aliases.get(f, f.upper()))]
    assert not missing, f"README's service settings table lacks {missing}"


def test_every_project_parameter_is_in_the_readme():
    names = [f for f in ProjectParams.model_fields if f != "head"] + [f"head.{f}" for f in HeadParams.model_fields]
    missing = [name for name in names if not _documented(name)]
    assert not missing, f"README's per-project parameter table lacks {missing}"
