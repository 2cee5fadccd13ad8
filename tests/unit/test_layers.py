"""The package's layering, read from the source: what may import what, and who writes the ledger."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "ml_backend"


def modules(layer: str) -> list[Path]:
    return sorted((PACKAGE / layer).rglob("*.py"))


def imports(path: Path) -> set[str]:
    """Absolute names of what a module imports (relative imports resolved against the package)."""
    package = path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[: len(package) - node.level + 1]) if node.level else ""
            found.add(".".join(part for part in (base, node.module or "") if part))
    return found


def ledger_writes() -> set[str]:
    """The Ledger methods that open a write transaction."""
    tree = ast.parse((PACKAGE / "core" / "ledger.py").read_text())
    [ledger] = [node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == "Ledger"]
    return {method.name for method in ledger.body if isinstance(method, ast.FunctionDef)
            and any(isinstance(n, ast.Attribute) and n.attr == "_transaction" for n in ast.walk(method))}


def test_ledger_writes_are_found():
    assert {"add_tasks", "record_annotation", "delete_tasks", "save_head"} <= ledger_writes()
    assert "ratings" not in ledger_writes()


@pytest.mark.parametrize("path", modules("core"), ids=lambda p: p.name)
def test_core_knows_no_label_studio_and_no_web_framework(path):
    banned = ("flask", "label_studio_sdk", "ml_backend.adapters", "ml_backend.service")
    assert not {name for name in imports(path) if name.startswith(banned)}


@pytest.mark.parametrize("path", modules("adapters"), ids=lambda p: p.name)
def test_adapters_know_no_service(path):
    assert not {name for name in imports(path) if name.startswith(("flask", "ml_backend.service"))}


def test_the_worker_schedules_without_label_studio():
    assert not {name for name in imports(PACKAGE / "service" / "worker.py")
                if name.startswith(("ml_backend.adapters", "label_studio_sdk"))}


@pytest.mark.parametrize("path", modules("service"), ids=lambda p: p.name)
def test_service_code_writes_facts_through_the_one_write_path(path):
    """The webhook, /train, the sync, ...: every fact reaches the ledger through core.facts.Facts."""
    writes = ledger_writes()
    calls = [node for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.Call)
             and isinstance(node.func, ast.Attribute) and node.func.attr in writes
             and "ledger" in ast.unparse(node.func.value)]
    assert not calls, [ast.unparse(call) for call in calls]
