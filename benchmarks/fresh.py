"""One measurement in a fresh interpreter: its own peak memory and no warm caches (the audit benchmarks)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_child(script: str, *args, **env) -> dict:
    """``python SCRIPT --child ARGS`` from the project root; its last stdout line as JSON, or {"error": ...}."""
    out = subprocess.run([sys.executable, script, "--child", *map(str, args)], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=str(ROOT), **env), cwd=ROOT)
    if out.returncode != 0:
        print(out.stderr[-2000:], file=sys.stderr)
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "failed"}
    return json.loads(out.stdout.strip().splitlines()[-1])
