"""cars-profile over ADB, against the emulated phone of adb_emulator.py (real wire protocol on 127.0.0.1)."""
from __future__ import annotations

import hashlib
import json
import shlex
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

from cars_deploy.cli.profile import main
from cars_deploy.profilers.blocks import BlockKey, block_input_shapes, network_blocks
from cars_deploy.profilers.device import DeviceOptions, TimedModel
from cars_deploy.profilers.devices import open_device
from cars_deploy.profilers.export_blocks import BlockExporter
from cars_deploy.profilers.table import LatencyTable, table_files

from .adb_emulator import AdbEmulator, make_sandbox
from .conftest import SMALL, SMALL_FLAGS, script

#: One round of two runs per block, no warm-up, no cooldown: the protocol at its cheapest.
FAST = ["--rounds", "1", "--runs", "2", "--warmup", "0", "--cooldown-above", "0", "--batch-size", "16"]


def _pub(key: Path) -> str:
    return key.with_name(key.name + ".pub").read_text()


def _argv(emulator: AdbEmulator, key: Path, cache: Path, *extra: str) -> list[str]:
    return ["--device", emulator.spec, "--adb-key", str(key), "--cache-dir", str(cache), *FAST, *extra]


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("cars-profile: error:") and "Traceback" not in err, err
    return err


@pytest.fixture(scope="module")
def undisturbed(tmp_path_factory, adb_key, fake_perf_test, block_cache):
    """A full profiling run of the small network through the emulated phone, pinned to CPU 0."""
    root = tmp_path_factory.mktemp("undisturbed")
    out = root / "table"
    with AdbEmulator(make_sandbox(root / "phone"), accepted_keys=[_pub(adb_key)]) as phone:
        code = main(_argv(phone, adb_key, block_cache, *SMALL_FLAGS, "--cpu-mask", "1", "--runner", str(fake_perf_test),
                          "--out", str(out)))
        assert code == 0
        return {"out": out, "commands": list(phone.shell_commands), "pushed": list(phone.pushed), "spec": phone.spec}


def test_full_profiling_run_through_the_emulated_phone(undisturbed, fake_perf_test):
    table = LatencyTable.load(undisturbed["out"])
    assert table.keys() == network_blocks(SMALL)
    assert (table.frame["latency_ms"] >= 0).all() and (table.frame["rounds"] == 1).all() and (table.frame["runs"] == 2).all()
    meta = table.meta
    device = meta["device"]
    assert meta["settings"] == {"device": undisturbed["spec"], "runtime": "onnxruntime", "threads": 1, "cpu_mask": "1",
                                "runner": "onnxruntime_perf_test"}
    assert device["model"] == "CarsEmu 8" and device["soc"] == "SM8150" and device["android"] == "12"
    assert device["cpu_count"] == 8 and device["cpus"][7] == {"cpu": 7, "max_freq_khz": 2841600, "governor": "schedutil"}
    assert device["thermal_zones"]["thermal_zone2"] == "battery"
    assert device["runner"]["sha256"] == hashlib.sha256(fake_perf_test.read_bytes()).hexdigest()
    assert meta["temperatures"]["start"]["thermal_zone1:cpu-1-0-usr"] == 41.0
    assert meta["temperatures"]["per_block"]["stem-3-12-8x8-s1"] == [[41.0, 41.0]]
    # The drift reference's latency in every round sits beside the phone's temperatures in that round.
    reference = meta["runs"][-1]["reference"]
    assert reference["per_round_temperatures_c"] == [[41.0, 41.0]] and len(reference["per_round_ms"]) == 1
    pushed = undisturbed["pushed"]
    assert pushed.count("/data/local/tmp/cars/onnxruntime_perf_test") == 1
    # + the empty probe and the drift reference
    assert len([p for p in pushed if p.startswith("/data/local/tmp/cars/models/")]) == len(table) + 2
    batches = [c for c in undisturbed["commands"] if "@@CARS:B" in c]
    assert len(batches) == 4  # 55 models in batches of 16: round trips do not grow with the blocks
    assert all("taskset 1 /data/local/tmp/cars/onnxruntime_perf_test -e cpu -m times -r 2 -x 1 -I" in c for c in batches)


def test_a_run_dropped_twice_ends_with_the_same_rows(undisturbed, tmp_path, adb_key, fake_perf_test, block_cache, capsys):
    out = tmp_path / "table"
    with AdbEmulator(make_sandbox(tmp_path / "phone"), accepted_keys=[_pub(adb_key)], drop_at={1, 3}, drop_filter="@@CARS:B") as phone:
        assert main(_argv(phone, adb_key, block_cache, *SMALL_FLAGS, "--cpu-mask", "1", "--runner", str(fake_perf_test),
                          "--out", str(out), "--json")) == 0
        assert phone.drops == 2 and phone.connections == 3
    summary = json.loads(capsys.readouterr().out)
    dropped, reference = LatencyTable.load(out), LatencyTable.load(undisturbed["out"])
    assert summary["reconnects"] == 2 and len(dropped.meta["events"]["reconnects"]) == 2
    assert dropped.keys() == reference.keys()
    assert not dropped.frame.duplicated(["kind", "C_in", "C_out", "H", "W", "stride"]).any()
    assert (dropped.frame["rounds"] == 1).all() and (dropped.frame["runs"] == 2).all()


def test_errors_leave_the_existing_table_intact(undisturbed, tmp_path, adb_key, block_cache, capsys):
    out = tmp_path / "table"
    for source, target in zip(table_files(undisturbed["out"]), table_files(out)):
        shutil.copy(source, target)
    with AdbEmulator(make_sandbox(tmp_path / "phone"), accepted_keys=[_pub(adb_key)]) as phone:
        sidecar = table_files(out)[1]  # the same phone, reached at this emulator's port
        sidecar.write_text(sidecar.read_text().replace(undisturbed["spec"], phone.spec))
        intact = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
        runners = tmp_path / "runners"
        runners.mkdir()
        garbage = script(runners / "onnxruntime_perf_test", "echo 'I am not a benchmark'")
        bigger = ["--network", "cifar", "--C", "6", "--layers", "3", "--input-size", "8", "--cpu-mask", "1", "--out", str(out)]
        assert main(_argv(phone, adb_key, block_cache, *bigger, "--runner", str(garbage))) == 2
        assert "printed no 'Average inference time cost' line" in _one_line_error(capsys)
        script(garbage, "echo 'Segmentation fault' >&2; exit 139")
        assert main(_argv(phone, adb_key, block_cache, *bigger, "--runner", str(garbage))) == 1
        assert "exit code 139: Segmentation fault" in _one_line_error(capsys)
        assert main(_argv(phone, adb_key, block_cache, *bigger, "--runner", str(runners / "absent"))) == 2
        assert "not found" in _one_line_error(capsys)
        assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == intact
        assert not Path(str(out) + ".partial.json").exists()


def test_missing_runner_on_the_phone(phone, adb_key, block_cache, tmp_path, capsys):
    model = BlockExporter(block_cache).export(BlockKey("avg_pool_3x3", 4, 4, 8, 8, 1), "onnx")
    with AdbEmulator(phone, accepted_keys=[_pub(adb_key)]) as emulator:
        assert main(_argv(emulator, adb_key, block_cache, "--model", str(model))) == 2
    assert "no onnxruntime_perf_test on adb:127.0.0.1" in _one_line_error(capsys)


def test_a_phone_refusing_the_key_is_a_one_line_error(phone, adb_key, other_key, block_cache, capsys):
    with AdbEmulator(phone, accepted_keys=[_pub(other_key)]) as emulator:
        model = BlockExporter(block_cache).export(BlockKey("avg_pool_3x3", 4, 4, 8, 8, 1), "onnx")
        assert main(_argv(emulator, adb_key, block_cache, "--model", str(model))) == 1
    assert "refused the ADB key" in _one_line_error(capsys)


def test_an_unreachable_phone_is_a_one_line_error(adb_key, block_cache, capsys):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    model = BlockExporter(block_cache).export(BlockKey("avg_pool_3x3", 4, 4, 8, 8, 1), "onnx")
    argv = ["--device", f"adb:127.0.0.1:{port}", "--adb-key", str(adb_key), "--model", str(model), *FAST]
    assert main(argv) == 1
    assert "cannot reach adb:127.0.0.1:" in _one_line_error(capsys)


@pytest.mark.parametrize("spec", ["adb:", "adb:127.0.0.1:99999", "adb:bad serial", "adb:a:b:c"])
def test_malformed_adb_specs_exit_2(spec, adb_key, capsys):
    assert main(["--device", spec, "--adb-key", str(adb_key), "--out", "t"]) == 2
    _one_line_error(capsys)


def test_a_model_path_with_spaces_quotes_and_semicolons_is_timed_and_nothing_else_runs(
    phone, tmp_path, adb_key, fake_perf_test, block_cache, capsys
):
    name = """blk 'one' "two"; touch canary; $(touch canary2) `touch canary3`.onnx"""
    model = tmp_path / name
    shutil.copy(BlockExporter(block_cache).export(BlockKey("sep_conv_3x3", 8, 8, 8, 8, 1), "onnx"), model)
    with AdbEmulator(phone, accepted_keys=[_pub(adb_key)]) as emulator:
        argv = _argv(emulator, adb_key, block_cache, "--model", str(model), "--runner", str(fake_perf_test), "--json")
        assert main(argv) == 0
        assert main(argv) == 0  # the second time nothing is pushed: runner and model are up to date
        result = json.loads(capsys.readouterr().out.splitlines()[-1])
        # timed for real (a block this small can land at the overhead floor of 0 ms on a busy machine)
        assert result["raw_ms"] > 0 and result["latency_ms"] >= 0 and result["rounds"] > 0
        assert emulator.pushed.count(f"/data/local/tmp/cars/models/{name}") == 1
        assert emulator.pushed.count("/data/local/tmp/cars/onnxruntime_perf_test") == 1
        assert (phone / "data/local/tmp/cars/models" / name).read_bytes() == model.read_bytes()
        assert any(shlex.quote(f"models/{name}") in c for c in emulator.shell_commands)
    assert not [p for p in phone.rglob("canary*")] and not list(Path.cwd().glob("canary*"))


def test_a_hot_phone_is_left_to_cool_before_a_batch(phone, adb_key, fake_perf_test, block_cache):
    zone = phone / "sys/class/thermal/thermal_zone0/temp"
    zone.write_text("90000\n")
    cooler = threading.Timer(0.5, lambda: zone.write_text("35000\n"))
    key = BlockKey("max_pool_3x3", 4, 4, 8, 8, 1)
    model = TimedModel(key.id, BlockExporter(block_cache).export(key, "onnx"), block_input_shapes(key))
    with AdbEmulator(phone, accepted_keys=[_pub(adb_key)]) as emulator:
        options = DeviceOptions(runner_path=fake_perf_test, key_path=adb_key, cooldown_above_c=60.0, cooldown_poll_s=0.1,
                                cooldown_max_s=20.0)
        device = open_device(emulator.spec, options)
        try:
            device.prepare([model])
            cooler.start()
            started = time.monotonic()
            (sample,) = device.time_batch([model], runs=2, warmup=0)
            waited = time.monotonic() - started
            cooldown = device.events()["cooldown"]
        finally:
            cooler.cancel()
            device.close()
    assert cooldown["waits"] == 1 and cooldown["gave_up"] == 0 and cooldown["hottest_c"] == 90.0
    assert 0.4 <= cooldown["seconds"] <= waited < 20 and sample.temp_before_c == 41.0 and sample.ms > 0


def test_batch_output_is_split_per_model_and_a_cut_batch_is_detected(tmp_path):
    """The batch script run by a real /bin/sh: each model's output between its markers, paths intact."""
    import subprocess

    from cars_deploy.profilers.adb_scripts import batch_command, parse_batch_output
    from cars_deploy.profilers.runners import RUNNERS

    script(tmp_path / "onnxruntime_perf_test",
           'for a; do m=$a; done; echo "model=[$m]"; echo "Average inference time cost: 2.5 ms"; [ "$m" != models/bad ]')
    names = ["models/a b.onnx", "models/x';y $(z).onnx", "models/bad"]
    entries = [(n, TimedModel(str(i), Path(n), ((1, 1),))) for i, n in enumerate(names)]
    command = batch_command(RUNNERS.get("onnxruntime_perf_test"), str(tmp_path), entries, runs=3, warmup=0, threads=2,
                            cpu_mask=None, run_id="r1")
    output = subprocess.run(["/bin/sh", "-c", command], capture_output=True, text=True).stdout
    parsed = parse_batch_output(output, 3)
    assert [p[0].strip().split("\n")[0] for p in parsed] == [f"model=[{n}]" for n in names]
    assert [p[1] for p in parsed] == [0, 0, 1] and all("Average inference time cost: 2.5 ms" in p[0] for p in parsed)
    assert parse_batch_output(output[: output.index("@@CARS:E:2")], 3) is None
    assert parse_batch_output(output.replace("@@CARS:DONE", ""), 3) is None
    assert not (tmp_path / "batch-r1.pid").exists() and not list(tmp_path.glob("*.pid"))
