"""A latency table's CSV and sidecar are one pair: a kill between their writes is recovered by itself,
and one process at a time builds a table (a second is refused naming the first)."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import cars_deploy.profilers.table as table_module
from cars_deploy.cli.profile import main
from cars_deploy.profilers.blocks import network_blocks
from cars_deploy.profilers.builder import ProfileConfig, build_table, partial_path
from cars_deploy.profilers.protocol import ProtocolConfig
from cars_deploy.profilers.table import LatencyTable, lock_table
from tests.golden.test_golden import DeterministicDevice
from tests.lock_holder import start_holder

from .conftest import SMALL, SMALL_FLAGS

ROOT = Path(__file__).resolve().parents[2]


def _config(out: Path, cache: Path) -> ProfileConfig:
    return ProfileConfig(out=out, networks=(SMALL,), protocol=ProtocolConfig(warmup=0, rounds=2, runs=2, seed=0), cache_dir=cache)


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def _fail_on(monkeypatch, predicate) -> None:
    """Makes the table's writer raise (as a kill would stop it) at the write ``predicate`` picks."""
    real = table_module.atomic_write_text

    def write(path, text):
        if predicate(Path(path)):
            raise KeyboardInterrupt("killed")
        real(path, text)

    monkeypatch.setattr(table_module, "atomic_write_text", write)


def test_a_new_table_interrupted_before_its_sidecar_is_redone_by_the_rerun(tmp_path, block_cache, monkeypatch):
    out = tmp_path / "t"
    _fail_on(monkeypatch, lambda p: p.suffix == ".json" and not p.name.endswith(".partial.json"))
    with pytest.raises(KeyboardInterrupt):
        build_table(DeterministicDevice(), _config(out, block_cache), show_progress=False)
    assert not (tmp_path / "t.csv").exists() and not (tmp_path / "t.json").exists()  # nothing half-made in sight
    assert partial_path(out).exists()  # the samples survive
    monkeypatch.undo()
    report = build_table(DeterministicDevice(), _config(out, block_cache), show_progress=False)
    assert report.resumed_samples > 0 and LatencyTable.load(out).keys() == network_blocks(SMALL)
    assert sorted(_files(tmp_path)) == ["t.csv", "t.json"]  # pending CSV and partial file gone


def test_a_save_interrupted_after_its_commit_point_reads_as_the_new_table(tmp_path, block_cache, monkeypatch):
    out = tmp_path / "t"
    old = build_table(DeterministicDevice(), _config(out, block_cache), show_progress=False).table
    new = old.with_rows([])
    new.frame.loc[0, "latency_ms"] = 123.0
    new.meta["note"] = "second"
    real = table_module.os.replace

    def replace(src, dst):
        if str(src).endswith(".pending"):
            raise KeyboardInterrupt("killed")  # after the sidecar, before the CSV is renamed
        real(src, dst)

    monkeypatch.setattr(table_module.os, "replace", replace)
    with pytest.raises(KeyboardInterrupt):
        new.save(out)
    monkeypatch.undo()
    assert (tmp_path / ".t.csv.pending").exists()
    loaded = LatencyTable.load(out)  # a reader sees the committed table without changing anything
    assert loaded.frame.loc[0, "latency_ms"] == 123.0 and loaded.meta["note"] == "second" and "csv_sha256" not in loaded.meta
    assert (tmp_path / ".t.csv.pending").exists()
    with lock_table(out):  # the next writer finishes the save
        pass
    assert sorted(_files(tmp_path)) == ["t.csv", "t.json"]
    assert LatencyTable.load(out).frame.loc[0, "latency_ms"] == 123.0


def test_a_save_interrupted_before_its_commit_point_leaves_the_old_table(tmp_path, block_cache, monkeypatch):
    out = tmp_path / "t"
    build_table(DeterministicDevice(), _config(out, block_cache), show_progress=False)
    before = _files(tmp_path)
    table = LatencyTable.load(out)
    table.frame.loc[0, "latency_ms"] = 7.0
    _fail_on(monkeypatch, lambda p: p.name == "t.json")
    with pytest.raises(KeyboardInterrupt):
        table.save(out)
    monkeypatch.undo()
    assert LatencyTable.load(out).frame.loc[0, "latency_ms"] != 7.0  # the pending CSV is not committed
    with lock_table(out):
        pass
    assert _files(tmp_path) == before  # the uncommitted CSV is discarded


def test_a_csv_without_sidecar_left_by_an_older_version_is_rebuilt_from_its_samples(tmp_path, block_cache, monkeypatch):
    out = tmp_path / "t"
    _fail_on(monkeypatch, lambda p: p.name == "t.json")
    with pytest.raises(KeyboardInterrupt):
        build_table(DeterministicDevice(), _config(out, block_cache), show_progress=False)
    monkeypatch.undo()
    os.replace(tmp_path / ".t.csv.pending", tmp_path / "t.csv")  # the CSV-then-sidecar order of before
    report = build_table(DeterministicDevice(), _config(out, block_cache), show_progress=False)
    assert report.new_blocks == len(network_blocks(SMALL)) and sorted(_files(tmp_path)) == ["t.csv", "t.json"]


def test_stale_temporaries_of_the_table_are_removed_and_others_kept(tmp_path):
    (tmp_path / ".t.csv.abcdefgh.tmp").write_text("x")
    (tmp_path / ".t.partial.json.abcdefgh.tmp").write_text("x")
    (tmp_path / ".other.csv.abcdefgh.tmp").write_text("x")  # another table's, maybe being written now
    with lock_table(tmp_path / "t", also=(tmp_path / "t.partial.json",)):
        pass
    assert sorted(_files(tmp_path)) == [".other.csv.abcdefgh.tmp"]


def test_a_second_cars_profile_on_one_table_is_refused_naming_the_first(tmp_path, block_cache, capsys):
    out = tmp_path / "t"
    holder = start_holder("table", out)
    try:
        code = main(["--device", "local", *SMALL_FLAGS, "--rounds", "1", "--runs", "1", "--cache-dir", str(block_cache),
                     "--out", str(out)])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
        assert f"latency table {out}.csv is in use by process {holder.pid}" in err and "lock_holder" in err
        assert list(tmp_path.iterdir()) == []  # no partial file, no table, no lock file
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()


def test_two_real_cars_profile_processes_one_table(tmp_path, block_cache):
    """Two cars-profile started together on one table: exactly one builds it, the other exits 2 at once."""
    out = tmp_path / "t"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "-m", "cars_deploy.cli.profile", "--device", "local", *SMALL_FLAGS, "--rounds", "2",
            "--runs", "2", "--warmup", "0", "--cache-dir", str(block_cache), "--out", str(out), "--json"]
    first = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    second = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    results = [(p.wait(timeout=300), *p.communicate()) for p in (first, second)]
    codes = sorted(code for code, _, _ in results)
    if codes == [0, 0]:  # the first finished before the second started: it found nothing to do
        assert sorted(json.loads(out_)["new_blocks"] for _, out_, _ in results)[0] == 0
    else:
        assert codes == [0, 2], results
        refused = next(err for code, _, err in results if code == 2)
        # "process PID" once the holder has recorded itself, "another process" in the instant before.
        assert refused.count("\n") == 1 and re.search(r"is in use by (process \d+|another process)", refused)
    assert LatencyTable.load(out).keys() == network_blocks(SMALL)
