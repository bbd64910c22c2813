"""Two runs sharing a phone's work folder: each batch has its own pid file, and one run's reconnect cleanup
(``stop_batch``) stops only its own batch. The scripts run in a real /bin/sh, as on the phone."""
from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from cars_deploy.profilers.adb_scripts import batch_command, pid_file, stop_batch
from cars_deploy.profilers.device import TimedModel
from cars_deploy.profilers.runners import RUNNERS

from .conftest import script


def _start(folder: Path, run_id: str) -> subprocess.Popen[bytes]:
    entries = [("models/a.onnx", TimedModel("a", Path("models/a.onnx"), ((1, 1),)))]
    command = batch_command(RUNNERS.get("onnxruntime_perf_test"), str(folder), entries, runs=1, warmup=0, threads=1,
                            cpu_mask=None, run_id=run_id)
    # its own process group, as adbd gives each shell service
    return subprocess.Popen(["/bin/sh", "-c", command], stdout=subprocess.DEVNULL, start_new_session=True)


def _wait_for(path: Path) -> None:
    deadline = time.monotonic() + 30
    while not path.exists() or not path.read_text().strip():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def test_one_runs_cleanup_never_stops_another_runs_batch(tmp_path):
    script(tmp_path / "onnxruntime_perf_test", "sleep 60")
    first, second = _start(tmp_path, "run1"), _start(tmp_path, "run2")
    try:
        for run_id in ("run1", "run2"):
            _wait_for(Path(pid_file(str(tmp_path), run_id)))
        subprocess.run(["/bin/sh", "-c", stop_batch(str(tmp_path), "run1")], check=True, timeout=30)
        assert first.wait(timeout=30) != 0  # stopped
        time.sleep(0.2)
        assert second.poll() is None  # untouched: still timing
        assert not Path(pid_file(str(tmp_path), "run1")).exists() and Path(pid_file(str(tmp_path), "run2")).exists()
        # a pid file naming a process that is not this run's batch (a reused pid) stops nothing
        Path(pid_file(str(tmp_path), "run3")).write_text(f"{second.pid}\n")
        subprocess.run(["/bin/sh", "-c", stop_batch(str(tmp_path), "run3")], check=True, timeout=30)
        time.sleep(0.2)
        assert second.poll() is None
        subprocess.run(["/bin/sh", "-c", stop_batch(str(tmp_path), "run2")], check=True, timeout=30)
        assert second.wait(timeout=30) != 0
    finally:
        for process in (first, second):
            if process.poll() is None:
                process.kill()
                process.wait()


def test_run_ids_are_checked_before_they_reach_a_shell(tmp_path):
    for bad in ("", "a b", "../x", "x;rm", "a" * 65):
        with pytest.raises(ValueError):
            pid_file(str(tmp_path), bad)
