"""The ``Device`` protocol, device specs (``local``, ``adb:SERIAL``, ``adb:HOST:PORT``) and what device kinds share.

A device times model files: ``prepare`` loads (or pushes) them once, then ``time_batch`` times several
of them in one call, each ``runs`` times, and returns one ``Sample`` per model. Everything about the
measurement protocol (warm-up, interleaved rounds, percentiles, overhead) lives in ``protocol.py``
and is the same for every device; a device only decides how one batch is run. The device kinds
(``local.py``, ``adb.py``) build on this module; ``devices.py`` registers them and opens one by spec.
"""
from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

from ..errors import UserInputError
from ..formats import ONNX, format_for_runtime

__all__ = [
    "Device",
    "DeviceSpec",
    "DeviceOptions",
    "TimedModel",
    "Sample",
    "parse_device_spec",
    "parse_cpu_mask",
    "max_temperature",
    "to_celsius",
    "CooldownLog",
    "wait_for_cooldown",
]

@dataclass(frozen=True)
class DeviceSpec:
    """A parsed ``--device`` value."""

    kind: str  # "local" or "adb"
    serial: str | None = None  # adb over USB: the device serial
    host: str | None = None  # adb over TCP: host name or address
    port: int | None = None  # adb over TCP: port

    def __str__(self) -> str:
        if self.kind == "local":
            return "local"
        if self.serial is not None:
            return f"adb:{self.serial}"
        host = f"[{self.host}]" if self.host and ":" in self.host else self.host
        return f"adb:{host}:{self.port}"


_SERIAL = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")
_IPV6 = re.compile(r"^[0-9A-Fa-f:.]{2,45}$")


def parse_device_spec(text: str) -> DeviceSpec:
    """``local``, ``adb:SERIAL`` (USB) or ``adb:HOST:PORT`` (TCP, ``adb:[::1]:5555`` for IPv6).

    Raises ``UserInputError`` naming what is malformed."""
    text = text.strip()
    if text == "local":
        return DeviceSpec("local")
    if not text.startswith("adb:"):
        raise UserInputError(f"unknown device {text!r}; use 'local', 'adb:SERIAL' or 'adb:HOST:PORT'")
    rest = text[4:]
    if not rest:
        raise UserInputError("device 'adb:' lacks a serial or HOST:PORT; e.g. adb:R58M12345 or adb:192.168.1.20:5555")
    if rest.startswith("["):
        match = re.match(r"^\[(?P<host>[^\]]+)\]:(?P<port>[^:]*)$", rest)
        if not match or not _IPV6.match(match["host"]):
            raise UserInputError(f"malformed device {text!r}; an IPv6 address is written adb:[ADDRESS]:PORT")
        return DeviceSpec("adb", host=match["host"], port=_port(match["port"], text))
    if ":" in rest:
        host, _, port = rest.partition(":")
        if ":" in port:
            raise UserInputError(f"malformed device {text!r}; expected adb:HOST:PORT (write IPv6 as adb:[ADDRESS]:PORT)")
        if not _HOSTNAME.match(host):
            raise UserInputError(f"malformed device {text!r}: {host!r} is not a host name or IPv4 address")
        return DeviceSpec("adb", host=host, port=_port(port, text))
    if not _SERIAL.match(rest):
        raise UserInputError(f"malformed device {text!r}: a serial has only letters, digits, '.', '_' and '-'")
    return DeviceSpec("adb", serial=rest)


def _port(text: str, spec: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise UserInputError(f"malformed device {spec!r}: port {text!r} is not a number in 1..65535")
    return int(text)


def parse_cpu_mask(text: str) -> int:
    """A ``taskset`` CPU mask in hex (``f0`` or ``0xf0``); ``UserInputError`` unless a non-zero hex number."""
    body = text.strip().lower()
    body = body[2:] if body.startswith("0x") else body
    if not body or not re.fullmatch(r"[0-9a-f]{1,16}", body) or int(body, 16) == 0:
        raise UserInputError(f"--cpu-mask {text!r} is not a non-zero hexadecimal CPU mask such as f0 or 0x3")
    return int(body, 16)


@dataclass(frozen=True)
class DeviceOptions:
    """How a device runs models; built by the CLI, shared by every device kind."""

    runtime: str = ONNX.runtime  # "onnxruntime" (.onnx), "pytorch-lite" (.ptl) or "executorch" (.pte)
    threads: int = 1  # intra-op threads; with a CPU mask, the number of CPUs in it
    cpu_mask: int | None = None  # run pinned to these CPUs (taskset on a phone, sched_setaffinity locally)
    runner_path: Path | None = None  # vendor benchmark binary to use (pushed to phones; run locally if set)
    key_path: Path | None = None  # ADB RSA private key; default <user config dir>/cars-deploy/adbkey
    remote_dir: str = "/data/local/tmp/cars"  # working folder on a phone
    connect_timeout_s: float = 10.0  # TCP connect / USB open
    auth_timeout_s: float = 30.0  # time for the user to accept the "Allow USB debugging?" prompt
    read_timeout_s: float = 900.0  # longest silence allowed while a batch runs on the phone
    reconnect_attempts: int = 5  # reconnections tried after a dropped connection, before giving up
    reconnect_backoff_s: float = 1.0  # first wait before reconnecting; doubles each attempt (capped at 30 s)
    cooldown_above_c: float | None = None  # wait before a batch while the hottest zone is above this (cars-profile: 50 on phones)
    cooldown_max_s: float = 120.0  # longest wait for one cooldown
    cooldown_poll_s: float = 5.0  # how often the temperature is read while cooling down

    @property
    def model_format(self) -> str:
        """The name of the model format ``runtime`` runs (``cars_deploy.formats``)."""
        return format_for_runtime(self.runtime).name

    def validate(self) -> None:
        """Raises ``UserInputError`` for a timeout, wait or count no run can use (NaN, infinite, negative)."""
        for name in ("connect_timeout_s", "auth_timeout_s", "read_timeout_s", "reconnect_backoff_s", "cooldown_poll_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise UserInputError(f"{name} must be a positive finite number of seconds, got {value}")
        if not (math.isfinite(self.cooldown_max_s) and self.cooldown_max_s >= 0):
            raise UserInputError(f"cooldown_max_s must be a finite number >= 0, got {self.cooldown_max_s}")
        if self.cooldown_above_c is not None and not math.isfinite(self.cooldown_above_c):
            raise UserInputError(f"cooldown_above_c must be finite, got {self.cooldown_above_c}")
        if self.reconnect_attempts < 0:
            raise UserInputError(f"reconnect_attempts must not be negative, got {self.reconnect_attempts}")


@dataclass(frozen=True)
class TimedModel:
    """One model file to time, under a name that identifies it in samples and tables."""

    name: str  # unique in a run: a block id, or the file name of a whole model
    path: Path  # the model file on this machine
    input_shapes: tuple[tuple[int, ...], ...]  # float input shapes, in the model's input order


@dataclass(frozen=True)
class Sample:
    """One timing of one model in one batch."""

    name: str  # the TimedModel's name
    ms: float  # per-call latency reported for this call (median of its runs where known)
    runs: int  # timed runs behind ``ms``
    temp_before_c: float | None = None  # hottest thermal zone before the model ran (None: no sensor)
    temp_after_c: float | None = None  # and after


class Device(Protocol):
    """Something that times model files: the host CPU or a phone over ADB."""

    spec: DeviceSpec
    options: DeviceOptions

    def facts(self) -> dict[str, Any]:
        """What the table's sidecar records about the device: model, SoC, CPUs, governors, runtime."""
        ...

    def prepare(self, models: Sequence[TimedModel]) -> None:
        """Loads or pushes ``models`` so that ``time_batch`` can time them (done once per run)."""
        ...

    def time_batch(self, models: Sequence[TimedModel], *, runs: int, warmup: int) -> list[Sample]:
        """Times each model ``runs`` times (after ``warmup`` untimed calls), in order, in one call."""
        ...

    def temperatures(self) -> dict[str, float]:
        """Thermal zone -> degrees Celsius now (empty when the device exposes none)."""
        ...

    def events(self) -> dict[str, Any]:
        """What happened that the sidecar should record: reconnects, cooldown waits."""
        ...

    def close(self) -> None:
        ...


# ----- thermal helpers shared by the device kinds ------------------------------------------------
def to_celsius(raw: float | str) -> float | None:
    """A thermal-zone reading in °C: zones report millidegrees (most) or degrees (some); unreadable or
    implausible values (sensors off, -273, 0) give None."""
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None
    if math.isnan(value):
        return None
    value = value / 1000.0 if abs(value) >= 1000 else value
    return value if 0.0 < value < 150.0 else None


def max_temperature(raw_readings: Sequence[float | str]) -> float | None:
    """The hottest plausible reading (°C) among raw thermal-zone values, or None without any."""
    celsius = [c for c in (to_celsius(v) for v in raw_readings) if c is not None]
    return max(celsius) if celsius else None


@dataclass
class CooldownLog:
    """Cooldown waits done before batches, for the sidecar."""

    waits: int = 0  # number of batches that waited
    seconds: float = 0.0  # total time waited
    gave_up: int = 0  # waits that hit the maximum with the device still hot
    hottest_c: float | None = None  # hottest temperature seen before a batch
    details: list[dict[str, float]] = field(default_factory=list)  # per wait: start/end temperature, seconds

    def as_dict(self) -> dict[str, Any]:
        return {"waits": self.waits, "seconds": round(self.seconds, 3), "gave_up": self.gave_up,
                "hottest_c": self.hottest_c, "details": self.details[-50:]}


def wait_for_cooldown(
    read: Callable[[], float | None],
    *,
    threshold_c: float | None,
    max_wait_s: float,
    poll_s: float,
    log: CooldownLog,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Waits while ``read()`` (hottest zone, °C) is above ``threshold_c``, up to ``max_wait_s``.

    Phones throttle when hot, so a block timed hot is slower than the same block cold; waiting keeps
    every block's samples in the same thermal state."""
    if threshold_c is None:
        return
    start_temp = read()
    if start_temp is not None:
        log.hottest_c = start_temp if log.hottest_c is None else max(log.hottest_c, start_temp)
    if start_temp is None or start_temp <= threshold_c:
        return
    waited, temp = 0.0, start_temp
    while temp is not None and temp > threshold_c and waited < max_wait_s:
        step = min(poll_s, max_wait_s - waited)
        sleep(step)
        waited += step
        temp = read()
    log.waits += 1
    log.seconds += waited
    if temp is not None and temp > threshold_c:
        log.gave_up += 1
    log.details.append({"start_c": start_temp, "end_c": temp if temp is not None else float("nan"), "seconds": waited})
