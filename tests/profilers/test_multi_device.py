"""``cars-profile --device A --device B``: two emulated phones (adb_emulator.py, two ports) profiled at once."""
from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from cars_deploy.cli.profile import main
from cars_deploy.profilers.blocks import network_blocks
from cars_deploy.profilers.builder import partial_path
from cars_deploy.profilers.device import parse_device_spec
from cars_deploy.profilers.multi import table_path_for
from cars_deploy.profilers.table import LatencyTable, table_files

from .adb_emulator import AdbEmulator, make_sandbox
from .conftest import SMALL, SMALL_FLAGS

FAST = ["--rounds", "1", "--runs", "2", "--warmup", "0", "--cooldown-above", "0", "--batch-size", "16", "--cpu-mask", "1"]
KEY_COLUMNS = ["kind", "C_in", "C_out", "H", "W", "stride"]


def _pub(key: Path) -> str:
    return key.with_name(key.name + ".pub").read_text()


def _logging_runner(folder: Path, fake_perf_test: Path, log: Path) -> Path:
    """The perf-test stand-in, noting which phone ran it and when (host clock, ns) in ``log``."""
    folder.mkdir(parents=True, exist_ok=True)
    runner = folder / "onnxruntime_perf_test"
    runner.write_text(f'#!/bin/sh\necho "$CARS_EMU_ROOT $(date +%s%N)" >> {shlex.quote(str(log))}\n'
                      f'exec {shlex.quote(str(fake_perf_test))} "$@"\n')
    runner.chmod(0o755)
    return runner


@pytest.fixture(scope="module")
def two_phones(tmp_path_factory, adb_key, fake_perf_test, block_cache):
    root = tmp_path_factory.mktemp("two-phones")
    log = root / "calls.log"
    runner = _logging_runner(root / "runner", fake_perf_test, log)
    common = ["--adb-key", str(adb_key), "--cache-dir", str(block_cache), "--runner", str(runner), *FAST, *SMALL_FLAGS]
    phones = [make_sandbox(root / name) for name in ("phone-a", "phone-b", "phone-c")]
    with AdbEmulator(phones[0], accepted_keys=[_pub(adb_key)]) as a, AdbEmulator(phones[1], accepted_keys=[_pub(adb_key)]) as b:
        code = main(["--device", a.spec, "--device", b.spec, "--out", str(root / "lab"), "--json", *common])
        specs = [a.spec, b.spec]
    with AdbEmulator(phones[2], accepted_keys=[_pub(adb_key)]) as c:
        assert main(["--device", c.spec, "--out", str(root / "alone"), *common]) == 0
    calls: dict[str, list[int]] = {}
    for line in log.read_text().splitlines():
        phone, ns = line.rsplit(" ", 1)
        calls.setdefault(phone, []).append(int(ns))
    return {"code": code, "root": root, "specs": specs, "phones": phones, "calls": calls}


def test_two_phones_in_one_command_each_get_the_table_of_a_single_device_run(two_phones):
    assert two_phones["code"] == 0
    root = two_phones["root"]
    alone = LatencyTable.load(root / "alone")
    assert alone.keys() == network_blocks(SMALL)
    for spec in two_phones["specs"]:
        host, port = spec.split(":")[1:]
        assert table_path_for(root / "lab", parse_device_spec(spec)) == root / f"lab-{host}-{port}"
        table = LatencyTable.load(root / f"lab-{host}-{port}")
        assert len(table) == len(alone) and table.keys() == alone.keys()
        assert table.frame[KEY_COLUMNS].equals(alone.frame[KEY_COLUMNS])
        assert (table.frame["rounds"] == 1).all() and (table.frame["runs"] == 2).all()
        assert table.meta["settings"]["device"] == spec  # its own sidecar, naming its own phone
        assert table.meta["device"]["model"] == "CarsEmu 8"
        assert not partial_path(root / f"lab-{host}-{port}").exists()


def test_the_phones_were_timed_at_the_same_time(two_phones):
    a, b = (two_phones["calls"][str(p)] for p in two_phones["phones"][:2])
    assert len(a) == len(b) > 0
    # concurrent, not one after the other: each phone's runs started before the other's finished
    assert min(a) < max(b) and min(b) < max(a)


def test_a_failing_phone_does_not_stop_the_other(two_phones, tmp_path, adb_key, fake_perf_test, block_cache, capsys):
    out = tmp_path / "lab"
    common = ["--adb-key", str(adb_key), "--cache-dir", str(block_cache), "--runner", str(fake_perf_test), *FAST,
              *SMALL_FLAGS, "--reconnect-attempts", "0"]
    good = AdbEmulator(make_sandbox(tmp_path / "good"), accepted_keys=[_pub(adb_key)])
    # the second phone's connection drops during its second batch, and may not be reopened: it is lost
    lost = AdbEmulator(make_sandbox(tmp_path / "lost"), accepted_keys=[_pub(adb_key)], drop_at={2}, drop_filter="@@CARS:B")
    good_base, lost_base = (table_path_for(out, parse_device_spec(e.spec)) for e in (good, lost))
    # the good phone starts from a table lacking its last 28 blocks (two batches: still busy when the other
    # phone is lost during its second batch; fewer blocks than a whole table keep the test short)
    done = LatencyTable.load(two_phones["root"] / "alone")
    done.frame = done.frame.iloc[:-28].reset_index(drop=True)
    done.meta["settings"]["device"] = good.spec
    done.save(good_base)
    with good, lost:
        code = main(["--device", lost.spec, "--device", good.spec, "--out", str(out), *common])
        assert lost.drops == 1
    captured = capsys.readouterr()
    assert code == 1
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"cars-profile: error: {lost.spec}: ") and "Traceback" not in captured.err
    assert LatencyTable.load(good_base).keys() == network_blocks(SMALL)  # finished while the other phone failed
    assert f"{table_files(good_base)[0]}: 28 blocks timed on {good.spec}" in captured.out
    assert not table_files(lost_base)[0].exists()  # no table for the lost phone...
    saved = json.loads(partial_path(lost_base).read_text())  # ...but its first batch is kept for a rerun
    assert sum(len(rounds) for rounds in saved["samples"].values()) == 16


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--device", "adb:127.0.0.1:5555", "--device", "adb:127.0.0.1:5555", "--out", "t"], "given twice"),
        (["--device", "local", "--device", "adb:127.0.0.1:5555", "--model", "m.onnx"], "give --out NAME"),
        (["--device", "local", "--device", "adb:127.0.0.1:5555", "--out", "t", "--calibrate", "4"], "one device at a time"),
        (["--device", "local", "--device", "adb:x:y", "--out", "t"], "malformed device"),
    ],
)
def test_bad_multi_device_calls_are_one_line_errors(extra, needle, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main([*extra, "--cache-dir", str(tmp_path / "cache")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err, err
    assert not list(tmp_path.glob("t*"))


def test_table_names_per_device():
    out = Path("latency_tables/lab")
    assert table_path_for(out, parse_device_spec("local")) == Path("latency_tables/lab-local")
    assert table_path_for(out, parse_device_spec("adb:R58M12345")) == Path("latency_tables/lab-R58M12345")
    assert table_path_for("latency_tables/lab.csv", parse_device_spec("adb:192.168.1.20:5555")) == Path(
        "latency_tables/lab-192.168.1.20-5555")
    assert table_path_for(out, parse_device_spec("adb:[fe80::1]:5555")) == Path("latency_tables/lab-fe80-1-5555")
