"""The layers of docs/architecture.md hold: `aiflowy/` (the shared package) imports no app,
no package imports the composition root (`config/`), the apps' imports form no cycle, and
the plain-Python parts (LLM client, events, errors, wire modules, workflow engine) import
without Django settings."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

APPS = ("apikeys", "bots", "chat", "workflows", "demo", "shares", "knowledge")
SHARED = "aiflowy"
ROOT_PACKAGE = "config"


def _imports(package: str) -> set[str]:
    """The top-level packages that modules of `package` import (absolute imports only)."""
    found: set[str] = set()
    for path in (ROOT / package).rglob("*.py"):
        if "migrations" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text("utf-8"), filename=str(path))):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found - {package}


def test_the_shared_package_imports_no_app_and_not_the_composition_root():
    assert _imports(SHARED) & {*APPS, ROOT_PACKAGE} == set()


def test_only_the_composition_root_and_the_entry_points_import_it():
    for package in (SHARED, *APPS):
        assert ROOT_PACKAGE not in _imports(package), package


def test_the_apps_import_each_other_without_a_cycle():
    graph = {app: _imports(app) & set(APPS) for app in APPS}

    def reaches(start: str, goal: str, seen: frozenset = frozenset()) -> bool:
        return any(
            nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt}))
            for nxt in graph[start]
        )

    cycles = [app for app in APPS if reaches(app, app)]
    assert cycles == [], {app: sorted(graph[app]) for app in cycles}


def test_the_plain_python_layers_import_without_django_settings():
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    code = (
        "import aiflowy.llm, aiflowy.events, aiflowy.errors, aiflowy.wire.aiflowy, "
        "aiflowy.wire.openai, aiflowy.wire.fastgpt, aiflowy.wire.workflow, workflows.engine\n"
        "import aiflowy.wire.fastgpt_dataset, knowledge.retrieval\n"
        "from django.conf import settings\n"
        "assert not settings.configured\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=Path(ROOT), env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
