"""Device specs, CPU masks, temperatures and the cooldown wait."""
from __future__ import annotations

import os

import pytest

from cars_deploy.errors import UserInputError
from cars_deploy.profilers.device import (
    CooldownLog,
    DeviceOptions,
    DeviceSpec,
    max_temperature,
    parse_cpu_mask,
    parse_device_spec,
    to_celsius,
    wait_for_cooldown,
)
from cars_deploy.profilers.devices import open_device


@pytest.mark.parametrize(
    "text, expected",
    [
        ("local", DeviceSpec("local")),
        ("adb:R58M12ABCDE", DeviceSpec("adb", serial="R58M12ABCDE")),
        ("adb:emulator-5554", DeviceSpec("adb", serial="emulator-5554")),
        ("adb:192.168.1.20:5555", DeviceSpec("adb", host="192.168.1.20", port=5555)),
        ("adb:pixel.lan:37000", DeviceSpec("adb", host="pixel.lan", port=37000)),
        ("adb:[fe80::1]:5555", DeviceSpec("adb", host="fe80::1", port=5555)),
    ],
)
def test_device_specs(text, expected):
    spec = parse_device_spec(text)
    assert spec == expected and parse_device_spec(str(spec)) == spec


@pytest.mark.parametrize(
    "text",
    ["", "adb", "adb:", "adb::5555", "adb:host:", "adb:host:port", "adb:host:0", "adb:host:70000", "adb:a:b:c",
     "adb:bad serial", "adb:x;rm -rf /", "adb:[zz]:1", "usb:123", "local:1", "adb:-host-:5555"],
)
def test_malformed_specs_are_one_line_user_errors(text):
    with pytest.raises(UserInputError) as error:
        parse_device_spec(text)
    assert "\n" not in str(error.value)


def test_cpu_masks():
    assert parse_cpu_mask("f0") == 0xF0 and parse_cpu_mask("0x3") == 3 and parse_cpu_mask(" 1 ") == 1
    for bad in ("", "0", "0x", "g1", "-1", "1" * 17):
        with pytest.raises(UserInputError):
            parse_cpu_mask(bad)


def test_threads_must_match_the_mask_and_runner_must_exist(tmp_path):
    with pytest.raises(UserInputError, match="does not match --cpu-mask"):
        open_device("local", DeviceOptions(threads=1, cpu_mask=0b11))
    with pytest.raises(UserInputError, match="not found"):
        open_device("local", DeviceOptions(runner_path=tmp_path / "missing"))
    with pytest.raises(UserInputError, match="unknown runtime"):
        open_device("local", DeviceOptions(runtime="tflite"))


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="needs Linux affinity")
def test_local_cpu_mask_pins_and_restores_affinity():
    before = os.sched_getaffinity(0)
    cpu = min(before)
    device = open_device("local", DeviceOptions(cpu_mask=1 << cpu, threads=1))
    try:
        assert os.sched_getaffinity(0) == {cpu} and device.facts()["affinity"] == [cpu]
    finally:
        device.close()
    assert os.sched_getaffinity(0) == before
    with pytest.raises(UserInputError, match="does not offer"):
        open_device("local", DeviceOptions(cpu_mask=1 << 40, threads=1))


def test_temperatures_in_milli_or_whole_degrees():
    assert to_celsius("45000") == 45.0 and to_celsius(38) == 38.0 and to_celsius("-273000") is None
    assert to_celsius("0") is None and to_celsius("n/a") is None
    assert max_temperature(["38000", "41500", "garbage", "-40"]) == 41.5 and max_temperature([]) is None


def test_cooldown_waits_until_cool_and_logs_it():
    readings = iter([72.0, 66.0, 58.0, 49.0])
    slept: list[float] = []
    log = CooldownLog()
    wait_for_cooldown(lambda: next(readings), threshold_c=50.0, max_wait_s=60, poll_s=5, log=log, sleep=slept.append)
    assert slept == [5, 5, 5] and log.waits == 1 and log.seconds == 15 and log.gave_up == 0 and log.hottest_c == 72.0


def test_cooldown_gives_up_after_the_maximum_and_skips_when_cool():
    log = CooldownLog()
    slept: list[float] = []
    wait_for_cooldown(lambda: 90.0, threshold_c=50.0, max_wait_s=12, poll_s=5, log=log, sleep=slept.append)
    assert slept == [5, 5, 2] and log.gave_up == 1
    wait_for_cooldown(lambda: 30.0, threshold_c=50.0, max_wait_s=12, poll_s=5, log=log, sleep=slept.append)
    wait_for_cooldown(lambda: None, threshold_c=50.0, max_wait_s=12, poll_s=5, log=log, sleep=slept.append)
    assert log.waits == 1 and len(slept) == 3


def test_adb_key_is_created_once_under_the_config_dir_and_kept_private(tmp_path, monkeypatch):
    import stat

    from cars_deploy.profilers.adb_transport import default_key_path, ensure_adb_key

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    path = default_key_path()
    assert path == tmp_path / "config" / "cars-deploy" / "adbkey"
    assert ensure_adb_key() == path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    public = path.with_name("adbkey.pub").read_text()
    assert len(public.split()[0]) > 500 and sorted(p.name for p in path.parent.iterdir()) == ["adbkey", "adbkey.pub"]
    path.chmod(0o644)
    private = path.read_bytes()
    assert ensure_adb_key() == path and path.read_bytes() == private  # reused, not regenerated
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # and tightened again
