"""What can be checked of the deployment without a Docker daemon: `check --deploy` is clean
with the production settings of `.env.example`; the image's static files are served by
WhiteNoise under uvicorn with DEBUG off; every variable the settings read is documented in
docs/deploy.md with its default, and the compose file and `.env.example` use only those."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import httpx
import yaml
from cryptography.fernet import Fernet

from aiflowy.testing.servers import free_port, start_process, stop_process, wait_for_port
from tests.conftest import ROOT

# Variables the compose file passes to PostgreSQL, not to aiflowy.
NOT_AIFLOWY = {"POSTGRES_DB", "POSTGRES_USER", "POSTGRES_PASSWORD"}


def _settings_variables() -> set[str]:
    text = (ROOT / "config" / "settings.py").read_text()
    read = set(re.findall(r'env(?:\.\w+)?\(\s*"([A-Z_]+)"', text))
    read |= set(
        re.findall(r'os\.environ\.get\("([A-Z_]+)"', (ROOT / "aiflowy" / "metrics.py").read_text())
    )
    return read


def _documented_variables() -> dict[str, str]:
    """Environment table of docs/deploy.md: variable → its default column."""
    documented = {}
    for line in (ROOT / "docs" / "deploy.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].startswith("`"):
            for name in re.findall(r"`([A-Z_]+)`", cells[0]):
                documented[name] = cells[1]
    return documented


def _env_example() -> dict[str, str]:
    values = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name] = value
    return values


def test_every_setting_read_from_the_environment_is_documented_with_its_default():
    documented = _documented_variables()
    missing = _settings_variables() - set(documented)
    assert not missing, f"not in docs/deploy.md's environment table: {sorted(missing)}"
    assert all(documented[name] for name in _settings_variables())


def test_the_compose_file_and_env_example_set_only_variables_the_settings_read():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    used = set(_env_example())
    for service in compose["services"].values():
        used |= set(service.get("environment") or {})
    unknown = used - _settings_variables() - NOT_AIFLOWY
    assert not unknown, unknown
    assert {"app-1", "app-2", "worker", "postgres", "redis"} <= set(compose["services"])
    assert compose["services"]["worker"]["command"] == ["python", "manage.py", "runjobs"]
    assert "pgvector" in compose["services"]["postgres"]["image"]


def test_check_deploy_is_clean_with_the_production_settings():
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in _settings_variables() and k != "DJANGO_SETTINGS_MODULE"
    }
    env.update(_env_example())
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "SECRET_KEY": Fernet.generate_key().decode() * 2,
            "AIFLOWY_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        }
    )
    checked = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "no issues" in checked.stdout

    # The example as shipped (no encryption key yet) is told what it lacks.
    env.pop("AIFLOWY_ENCRYPTION_KEYS")
    warned = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "aiflowy.W101" in warned.stdout + warned.stderr


def test_collected_static_files_are_served_by_whitenoise_under_uvicorn(tmp_path, db):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "SECRET_KEY": "x" * 60,
        "DEBUG": "false",
        "STATIC_ROOT": str(tmp_path / "static"),
        "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3",
        "REDIS_URL": "",
        "AIFLOWY_JOBS_BACKEND": "inprocess",
    }
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )
    port = free_port()
    process = start_process(
        ["-m", "uvicorn", "--port", str(port), "config.asgi:application"],
        env=env,
        log_path=ROOT / ".pytest_cache" / "uvicorn-static.log",
    )
    try:
        wait_for_port(process, port, what="uvicorn")
        css = httpx.get(
            f"http://127.0.0.1:{port}/static/admin/css/base.css",
            headers={"Accept-Encoding": "gzip"},
        )
    finally:
        stop_process(process)
    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")
    assert css.headers.get("content-encoding") == "gzip"
    assert "body" in css.text
