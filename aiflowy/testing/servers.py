"""Starting and stopping server processes on loopback, for the test suite and the benchmark."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(process: subprocess.Popen, port: int, *, what: str, timeout: float = 30) -> None:
    """Return once `port` accepts connections; kill `process` and raise if it exits first or
    the time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"{what} did not start") from None
            time.sleep(0.1)


def start_process(
    args: list[str], *, env: dict[str, str], log_path: Path | None
) -> subprocess.Popen:
    """`python <args>` in the project directory, its output in `log_path` (or discarded)."""
    if log_path is None:
        return subprocess.Popen(
            [sys.executable, *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    log_path.parent.mkdir(exist_ok=True)
    with open(log_path, "w") as log:
        return subprocess.Popen(
            [sys.executable, *args], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )


def start_daphne(
    *, env: dict[str, str], log_path: Path | None = None
) -> tuple[subprocess.Popen, str]:
    """Daphne serving config.asgi:application on a free loopback port; returns its base URL."""
    port = free_port()
    process = start_process(
        ["-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "config.asgi:application"],
        env=env,
        log_path=log_path,
    )
    wait_for_port(process, port, what=f"Daphne (log: {log_path})")
    return process, f"http://127.0.0.1:{port}"


def stop_process(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)
