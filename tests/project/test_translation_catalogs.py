"""Every string the project marks for translation has a Chinese translation, and the compiled
catalogs say what their sources say.

The admin walk (`test_admin_zh_hans.py`) sees the pages its data reaches; this sees every
marked string: `makemessages` runs on a copy of the project (its catalogs are left alone) and
each extracted msgid must be translated, not fuzzy, in one of the project's catalogs (Django
merges them at runtime, so a string may live in another app's catalog). A `.po` edited without
recompiling its `.mo` with `msgfmt` shows English in the admin: the compiled catalogs must hold
exactly the `.po` translations.
"""

from __future__ import annotations

import gettext
import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import ROOT
from tests.project.catalogs import po_entries

CATALOGS = sorted(ROOT.glob("*/locale/zh_Hans/LC_MESSAGES/*.po"))
# Not the project's code (tests, benchmarks, tools) or not its strings (vendored bundles).
NOT_COPIED = shutil.ignore_patterns(
    ".*", "__pycache__", "node_modules", "tests", "benchmarks", "docs", "*.mo"
)
VENDORED = ["*/vendor/*", "*/tinyflow/*"]

# Skipped on a machine without GNU gettext, never in CI (`.ci/run` installs it).
needs_gettext = pytest.mark.skipif(
    not (shutil.which("xgettext") and shutil.which("msgfmt")) and not os.environ.get("CI"),
    reason="GNU gettext (xgettext, msgfmt) is not installed",
)


@needs_gettext
def test_every_marked_string_has_a_chinese_translation(tmp_path):
    translated = {
        msgid for catalog in CATALOGS for msgid, text in po_entries(catalog).items() if text
    }
    copy = tmp_path / "project"
    shutil.copytree(ROOT, copy, ignore=NOT_COPIED)
    env = {**os.environ, "SECRET_KEY": "x", "DJANGO_SETTINGS_MODULE": "config.settings"}
    env.pop("DATABASE_URL", None)
    ignored = [arg for pattern in VENDORED for arg in ("--ignore", pattern)]
    for domain in ("django", "djangojs"):
        subprocess.run(
            [sys.executable, "manage.py", "makemessages", "-l", "zh_Hans", "-d", domain, *ignored],
            cwd=copy,
            env=env,
            check=True,
            capture_output=True,
        )
    extracted = sorted(copy.glob("*/locale/zh_Hans/LC_MESSAGES/*.po"))
    assert len(extracted) >= 4, extracted
    missing = {
        f"{path.relative_to(copy)}: {msgid!r}"
        for path in extracted
        for msgid in po_entries(path)
        if msgid not in translated
    }
    assert not missing, "untranslated (add them to the catalog, run msgfmt):\n" + "\n".join(
        sorted(missing)
    )


@needs_gettext
@pytest.mark.parametrize("catalog", CATALOGS, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_compiled_catalog_is_the_po_file(catalog, tmp_path):
    compiled = tmp_path / "fresh.mo"
    subprocess.run(["msgfmt", "-o", str(compiled), str(catalog)], check=True)
    with compiled.open("rb") as fresh, catalog.with_suffix(".mo").open("rb") as shipped:
        assert (
            gettext.GNUTranslations(shipped)._catalog == gettext.GNUTranslations(fresh)._catalog
        ), f"{catalog.relative_to(ROOT)} changed: recompile it with msgfmt"
