"""``workbench serve`` in a subprocess on a free port, for the tests that need their own server and options."""

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_env() -> dict:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    env.pop("BOKEH_RESOURCES", None)  # the tests' inline setting breaks the served template's CSS
    return env


@contextlib.contextmanager
def started(cmd: list[str], log_path: Path, port: int, env: dict | None = None, cwd=ROOT, wait_s: float = 120):
    """Run ``cmd`` (a server on ``port``) with its output in ``log_path``; yield (process, log) once the port
    answers; stop it afterwards. A process that exits first, or a port that stays shut, fails with the log."""
    log = open(log_path, "w+")
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, env=env or serve_env())
    try:
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(f"{Path(cmd[-1]).name} exited ({proc.returncode}):\n{log_path.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                time.sleep(0.3)
        else:
            raise AssertionError(f"{' '.join(cmd[:4])} did not open port {port} in {wait_s} s")
        yield proc, log
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@contextlib.contextmanager
def served(args: list[str], log_path: Path, port: int | None = None, env: dict | None = None, wait_s: float = 120):
    """Start ``workbench serve ARGS --port PORT``; yield (url, process, log path) once the port answers."""
    port = port or free_port()
    cmd = [sys.executable, "-m", "workbench.cli", "serve", *args, "--port", str(port)]
    with started(cmd, log_path, port, env=env, wait_s=wait_s) as (proc, _):
        yield f"http://127.0.0.1:{port}/", proc, log_path
