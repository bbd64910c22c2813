"""A process that holds one cars-deploy lock until it is killed: the "first run" of the lock tests.

``python -m tests.lock_holder KIND TARGET`` takes the lock of the search run (``run``), latency table
(``table``) or any path (``path``) TARGET, prints ``held`` and sleeps. Tests start it with
``start_holder`` and stop it with SIGKILL, as a crash would.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def start_holder(kind: str, target: Path) -> subprocess.Popen[str]:
    """Starts a holder of ``kind``'s lock on ``target`` and returns once it holds it."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    process = subprocess.Popen([sys.executable, "-m", "tests.lock_holder", kind, str(target)], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = process.stdout.readline() if process.stdout is not None else ""
    if line.strip() != "held":
        process.kill()
        raise RuntimeError(f"lock holder did not start: {line!r} {process.stderr.read() if process.stderr else ''}")
    return process


def main(kind: str, target: str) -> None:
    if kind == "run":
        from cars_deploy.search.rundir import RunDir

        held = RunDir(target).lock()
    elif kind == "table":
        from cars_deploy.profilers.table import lock_table

        held = lock_table(target)
    else:
        from cars_deploy._locks import hold_lock

        held = hold_lock(target, what=f"test target {target}")
    print("held", flush=True)
    while held is not None:
        time.sleep(60)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
