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


def test_benchmark_tables_in_the_readme_match_the_committed_results():
    """The README's benchmark tables are rendered from the results JSON, not typed by hand."""
    import json

    from benchmarks.label_efficiency import README_BLOCK, RESULTS_DIR, readme_summary
    from benchmarks.markdown import README as readme_path
    from benchmarks.markdown import read_block
    from benchmarks.perf import report

    performance = json.loads((RESULTS_DIR / "performance.json").read_text())
    label_efficiency = json.loads((RESULTS_DIR / "label_efficiency.json").read_text())
    assert read_block(readme_path, report.SUMMARY_BLOCK) == report.summary_table(performance)
    assert read_block(readme_path, README_BLOCK) == readme_summary(label_efficiency)
