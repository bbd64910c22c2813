"""cars-profile on the host: tables, extension, resume after a kill, one-line errors, whole models."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cars_deploy.cli.profile import main
from cars_deploy.profilers.blocks import BlockKey, network_blocks
from cars_deploy.profilers.export_blocks import BlockExporter
from cars_deploy.profilers.table import LatencyTable
from cars_deploy.space import NetworkConfig

from .conftest import SMALL, SMALL_FLAGS, script

FAST = ["--rounds", "2", "--runs", "3", "--warmup", "1"]
ROOT = Path(__file__).resolve().parents[2]


def _one_line_error(capsys, prefix: str = "cars-profile: error:") -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(prefix) and "Traceback" not in err, err
    return err


def test_profile_writes_a_table_of_every_block_and_reruns_do_nothing(tmp_path, block_cache, capsys):
    out = tmp_path / "host"
    assert main(["--device", "local", *SMALL_FLAGS, *FAST, "--cache-dir", str(block_cache), "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    table = LatencyTable.load(out)
    assert table.keys() == network_blocks(SMALL) and summary["new_blocks"] == len(table) == 53
    frame = table.frame
    assert (frame["rounds"] == 2).all() and (frame["runs"] == 6).all() and (frame["latency_ms"] >= 0).all()
    assert (frame["p10_ms"] <= frame["p90_ms"]).all() and frame["overhead_ms"].nunique() == 1
    meta = table.meta
    assert meta["settings"]["device"] == "local" and meta["protocol"]["rounds"] == 2
    assert len(meta["samples_ms"]["stem-3-12-8x8-s1"]) == 2 and meta["runs"][0]["command"].startswith("cars-profile --device local")
    assert not (tmp_path / "host.partial.json").exists()
    before = (tmp_path / "host.csv").read_bytes()
    assert main(["--device", "local", *SMALL_FLAGS, *FAST, "--cache-dir", str(block_cache), "--out", str(out)]) == 0
    assert "nothing to do" in capsys.readouterr().out and (tmp_path / "host.csv").read_bytes() == before

    # another network extends the same table with its new blocks only; old rows stay as they were
    bigger = ["--network", "cifar", "--C", "4", "--layers", "4", "--input-size", "8"]
    assert main(["--device", "local", *bigger, *FAST, "--cache-dir", str(block_cache), "--out", str(out), "--json"]) == 0
    extended = LatencyTable.load(out)
    new = set(network_blocks(NetworkConfig(kind="cifar", C=4, layers=4, input_size=8))) - set(table.keys())
    assert json.loads(capsys.readouterr().out)["new_blocks"] == len(new) > 0
    assert set(extended.keys()) == set(table.keys()) | new
    assert extended.frame.iloc[: len(table)].equals(table.frame)
    assert len(extended.meta["runs"]) == 2 and len(extended.meta["networks"]) == 2


def test_a_killed_run_resumes_where_it_stopped(tmp_path, block_cache, capsys):
    out = tmp_path / "killed"
    argv = ["--device", "local", *SMALL_FLAGS, "--rounds", "40", "--runs", "40", "--warmup", "0", "--batch-size", "6",
            "--cache-dir", str(block_cache), "--out", str(out)]
    partial = tmp_path / "killed.partial.json"
    process = subprocess.Popen([sys.executable, "-m", "cars_deploy.cli.profile", *argv], cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not partial.exists() and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.02)
        assert partial.exists(), "the run never saved samples"
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    assert not (tmp_path / "killed.csv").exists()  # no row before every round of every block is in
    saved = json.loads(partial.read_text())["samples"]
    taken = sum(len(rounds) for rounds in saved.values())
    assert 0 < taken < 54 * 40

    assert main(argv + ["--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["resumed_samples"] == taken and summary["new_blocks"] == 53
    table = LatencyTable.load(out)
    assert len(table) == 53 and not table.frame.duplicated(["kind", "C_in", "C_out", "H", "W", "stride"]).any()
    for name, rounds in saved.items():  # what the killed run measured was kept, not measured again
        if name in table.meta["samples_ms"]:
            kept = table.meta["samples_ms"][name]
            for r, sample in rounds.items():
                assert kept[int(r)] == pytest.approx(sample["ms"], rel=1e-5)
    assert (table.frame["rounds"] == 40).all() and not partial.exists()


def test_errors_are_one_line_and_leave_the_table_intact(tmp_path, block_cache, capsys, fake_perf_test):
    out = tmp_path / "t"
    assert main(["--device", "local", *SMALL_FLAGS, *FAST, "--cache-dir", str(block_cache), "--out", str(out)]) == 0
    capsys.readouterr()
    intact = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    garbage = script(tmp_path / "garbage", 'echo "hello from a program that is not a benchmark"')
    crash = script(tmp_path / "crash", 'echo "Segmentation fault" >&2; exit 139')
    bigger = ["--network", "cifar", "--C", "6", "--layers", "3", "--input-size", "8"]
    fresh = tmp_path / "fresh"
    cases = [
        (out, ["--threads", "2", *SMALL_FLAGS], 2, "other settings"),  # a table holds one setting
        (out, ["--runner", str(tmp_path / "missing"), *SMALL_FLAGS], 2, "not found"),
        (fresh, ["--runner", str(garbage), *bigger], 2, "printed no 'Average inference time cost'"),
        (fresh, ["--runner", str(crash), *bigger], 1, "exit code 139: Segmentation fault"),
        (out, ["--network", "cifar", "--input-size", "30"], 2, "input_size"),
        (out, ["--cpu-mask", "zz"], 2, "--cpu-mask"),
    ]
    for target, extra, code, message in cases:
        assert main(["--device", "local", *FAST, "--cache-dir", str(block_cache), "--out", str(target), *extra]) == code, extra
        assert message in _one_line_error(capsys)
        assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.name in intact} == intact
        assert not list(tmp_path.glob("fresh*"))  # a failed first run leaves nothing behind
    assert main(["--device", "adb:", "--out", str(out)]) == 2
    _one_line_error(capsys)
    # usage errors, --rounds 0 among them (numbers are range-checked while parsing), exit through argparse
    for usage in (["--device", "local"], ["--device", "local", "--model", "x.onnx", "--out", "y"],
                  ["--device", "local", "--out", str(out), "--rounds", "0"]):
        with pytest.raises(SystemExit) as exited:
            main(usage)
        assert exited.value.code == 2
        _one_line_error(capsys)


def test_whole_model_in_process_and_through_a_host_runner(tmp_path, block_cache, capsys, fake_perf_test):
    model = BlockExporter(block_cache).export(BlockKey("sep_conv_3x3", 16, 16, 16, 16, 1), "onnx")
    common = ["--device", "local", "--model", str(model), *FAST, "--cache-dir", str(block_cache), "--json"]
    assert main(common) == 0
    inproc = json.loads(capsys.readouterr().out)
    assert inproc["latency_ms"] > 0 and inproc["overhead_ms"] > 0 and inproc["rounds"] == 2 and inproc["runs"] == 6
    assert inproc["raw_ms"] == pytest.approx(inproc["latency_ms"] + inproc["overhead_ms"])
    # the same model through the vendor runner's command line and output parser (the host stand-in)
    assert main(common + ["--runner", str(fake_perf_test)]) == 0
    runner = json.loads(capsys.readouterr().out)
    assert runner["latency_ms"] > 0 and runner["runs"] == 6


def test_whole_lite_model_and_bad_model_files(tmp_path, block_cache, capsys):
    model = BlockExporter(block_cache).export(BlockKey("add", 4, 4, 8, 8, 1), "ptl")
    assert main(["--device", "local", "--model", str(model), "--input-shape", "1,4,8,8", "--input-shape", "1,4,8,8",
                 *FAST, "--cache-dir", str(block_cache)]) == 0
    assert "add-4-4-8x8-s1.ptl on local:" in capsys.readouterr().out
    text = tmp_path / "model.txt"
    text.write_text("not a model")
    fake = tmp_path / "fake.onnx"
    fake.write_text("not a model")
    for argv, message in (
        (["--model", str(tmp_path / "absent.onnx")], "not found"),
        (["--model", str(text)], "expected a .onnx, .ptl or .pte"),
        (["--model", str(fake)], "not a readable ONNX model"),
        (["--model", str(model), "--input-shape", "1,x"], "--input-shape"),
    ):
        assert main(["--device", "local", *argv, *FAST, "--cache-dir", str(block_cache)]) == 2
        assert message in _one_line_error(capsys)


def test_several_whole_models_are_timed_together(tmp_path, block_cache):
    from cars_deploy.profilers.builder import time_models
    from cars_deploy.profilers.device import DeviceOptions
    from cars_deploy.profilers.devices import open_device
    from cars_deploy.profilers.protocol import ProtocolConfig

    exporter = BlockExporter(block_cache)
    small = exporter.export(BlockKey("sep_conv_3x3", 8, 8, 8, 8, 1), "onnx")
    large = exporter.export(BlockKey("sep_conv_5x5", 32, 32, 32, 32, 1), "onnx")
    device = open_device("local", DeviceOptions())
    try:
        results = time_models(device, [small, large], ProtocolConfig(warmup=2, rounds=5, runs=10), cache_dir=block_cache,
                              store_path=tmp_path / "validation.partial.json")
        with pytest.raises(Exception, match="one format"):
            time_models(device, [small, exporter.export(BlockKey("add", 4, 4, 8, 8, 1), "ptl")], ProtocolConfig(),
                        cache_dir=block_cache)
    finally:
        device.close()
    assert set(results) == {small.name, large.name} and results[large.name].latency_ms > results[small.name].latency_ms > 0
    assert results[small.name].rounds == 5 and not (tmp_path / "validation.partial.json").exists()
