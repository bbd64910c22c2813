"""cars-profile --calibrate and --model NAME, on the host and through the emulated phone (tests/profilers)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from cars_deploy.cli.profile import main
from cars_deploy.latency import LatencyPredictor, ValidationConfig, calibrate_table, network_id
from cars_deploy.latency.report import default_report_dir
from cars_deploy.profilers.adb_transport import ensure_adb_key
from cars_deploy.profilers.device import DeviceOptions
from cars_deploy.profilers.devices import open_device
from cars_deploy.profilers.protocol import ProtocolConfig
from cars_deploy.profilers.table import LatencyTable, table_files
from cars_deploy.space import GENOTYPES
from tests.profilers.adb_emulator import AdbEmulator, make_sandbox

from .conftest import SMALL, SMALL_FLAGS

#: The protocol at its cheapest, for blocks and for whole networks.
FAST = ["--rounds", "1", "--runs", "2", "--warmup", "0", "--batch-size", "16", "--calibration-rounds", "1",
        "--calibration-runs", "2"]
PROFILER_TESTS = Path(__file__).resolve().parents[1] / "profilers"


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("cars-profile: error:") and "Traceback" not in err, err
    return err


def test_calibrate_on_the_host_writes_table_calibration_and_report(tmp_path, cache_dir, capsys):
    out = tmp_path / "host"
    argv = ["--device", "local", *SMALL_FLAGS, *FAST, "--cache-dir", str(cache_dir), "--out", str(out),
            "--calibrate", "5", "--fit", "3", "--json"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    calibration = summary["calibration"]
    assert summary["blocks"] == len(LatencyTable.load(out)) and calibration["networks"]["fit"] == 3
    assert calibration["networks"]["held_out"] == 2 + len(GENOTYPES.names())
    assert set(calibration["validation"]) >= {"calibrated", "block_sum", "repeat"}
    stored = LatencyTable.load(out).meta["calibration"][network_id(SMALL)]
    assert stored["command"].startswith("cars-profile --device local") and "--calibrate 5" in stored["command"]
    assert LatencyPredictor.load(out).calibrated
    report = table_files(out)[0].with_name("host.calibration")
    assert {p.name for p in report.iterdir()} == {"networks.csv", "summary.json", "scatter.png"}
    # Calibrating again reuses the table (no block re-timed) and replaces the calibration.
    assert main(argv[:-1]) == 0
    text = capsys.readouterr().out
    assert "all 53 blocks already timed" in text and "2nd measurement (ceiling)" in text and "raw block sum" in text


@pytest.mark.parametrize("argv, needle", [
    (["--model", "x.onnx", "--calibrate", "5"], "give it with --out"),
    (["--out", "{tmp}/t", "--fit", "3"], "--fit: only with --calibrate"),
    (["--out", "{tmp}/t", "--calibrate", "2"], "at least 3"),
    (["--out", "{tmp}/t", "--calibrate", "5", "--fit", "9"], "--fit must be in 2..5"),
    (["--model", "resnet_9000"], "baseline name"),
    (["--out", "{tmp}/t", "--reference-table", "{tmp}/t"], "--reference-table: only with --model"),
])
def test_bad_calibration_and_model_flags_are_one_line_errors_before_any_timing(argv, needle, tmp_path, capsys):
    code = main(["--device", "local", *SMALL_FLAGS, *(a.replace("{tmp}", str(tmp_path)) for a in argv)])
    assert code == 2 and needle in _one_line_error(capsys)
    assert not (tmp_path / "t.csv").exists()


def test_a_torchvision_baseline_is_timed_by_name(cache_dir, capsys):
    assert main(["--device", "local", "--model", "mnasnet1_0", "--input-size", "32", "--rounds", "2", "--runs", "2",
                 "--warmup", "1", "--cache-dir", str(cache_dir), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["latency_ms"] > 0 and report["model"].endswith("baselines/onnx17/mnasnet1_0-32px.onnx")


def test_a_model_is_expressed_in_a_tables_machine_state_on_request(small_table, cache_dir, capsys):
    argv = ["--device", "local", "--model", "mnasnet1_0", "--input-size", "32", "--rounds", "2", "--runs", "2",
            "--warmup", "1", "--cache-dir", str(cache_dir), "--json"]
    assert main([*argv, "--reference-table", str(small_table)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["reference"]["base_ms"] == LatencyTable.load(small_table).meta["reference"]["base_ms"]
    assert report["reference"]["corrected"] is True and len(report["reference"]["per_round_ms"]) == 2
    assert main([*argv, "--no-drift-correction"]) == 0
    assert json.loads(capsys.readouterr().out)["reference"]["corrected"] is False


def test_calibration_through_the_emulated_phone(tmp_path, cache_dir, capsys):
    """The whole path over ADB (real wire protocol on 127.0.0.1): blocks profiled by cars-profile, then
    whole networks pushed and timed by the phone's onnxruntime_perf_test (the host-side stand-in really
    times them) in two passes, the calibration fitted and stored, the report written."""
    key = ensure_adb_key(tmp_path / "keys" / "adbkey")
    runner = tmp_path / "onnxruntime_perf_test"
    runner.write_text(f'#!/bin/sh\nexec {sys.executable} {PROFILER_TESTS / "fake_onnxruntime_perf_test.py"} "$@"\n')
    runner.chmod(0o755)
    out = tmp_path / "phone-table"
    with AdbEmulator(make_sandbox(tmp_path / "phone"), accepted_keys=[key.with_name("adbkey.pub").read_text()]) as phone:
        assert main(["--device", phone.spec, "--adb-key", str(key), "--cooldown-above", "0", "--cpu-mask", "1",
                     "--runner", str(runner), *SMALL_FLAGS, *FAST[:8], "--cache-dir", str(cache_dir), "--out", str(out)]) == 0
        device = open_device(phone.spec, DeviceOptions(threads=1, cpu_mask=1, runner_path=runner, key_path=key))
        try:
            result = calibrate_table(device, table_files(out)[0], ValidationConfig(
                networks=4, fit=3, published=False, protocol=ProtocolConfig(warmup=0, rounds=1, runs=2, batch_size=8),
            ), cache_dir=cache_dir, show_progress=False)
        finally:
            device.close()
        shell = list(phone.shell_commands)
        pushed = list(phone.pushed)
    table = LatencyTable.load(out)
    assert table.meta["settings"]["device"] == phone.spec and table.meta["settings"]["cpu_mask"] == "1"
    stored = table.meta["calibration"][network_id(SMALL)]
    assert stored["networks"] == {"random": 4, "published": 0, "fit": 3, "held_out": 1, "baselines": 0}
    # The drift reference ran on the phone too: in the table build and in the calibration's pass.
    assert table.meta["reference"]["base_ms"] > 0 and len(stored["reference"][0]["per_round_ms"]) == 1
    assert result.summary["validation"]["repeat"]["n"] == 1 and (result.frame["measured_ms"] > 0).all()
    # Every whole network was pushed once and run by the phone's runner, pinned as the blocks were.
    files = set(result.frame["model_file"])
    networks = [p for p in pushed if p.rsplit("/", 1)[1] in files]
    assert sorted(p.rsplit("/", 1)[1] for p in networks) == sorted(files)
    assert all(p.startswith("/data/local/tmp/cars/models/") for p in networks)
    runs = [c for c in shell if "onnxruntime_perf_test" in c and any(f in c for f in files)]
    assert runs and all("taskset 1 /data/local/tmp/cars/onnxruntime_perf_test" in c for c in runs)
    assert LatencyPredictor.load(out).calibrated
    assert (default_report_dir(out) / "scatter.png").is_file()
