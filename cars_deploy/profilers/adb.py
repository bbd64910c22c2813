"""``--device adb:SERIAL`` (USB) and ``adb:HOST:PORT`` (TCP): times models on an Android phone.

Talks to the phone's ``adbd`` directly through ``adb-shell`` (no ``adb`` binary or server needed):

- authentication with an RSA key created on first use under the user's config folder
  (``~/.config/cars-deploy/adbkey``, mode 0600); the phone asks once to allow it;
- the runner binary (``onnxruntime_perf_test`` ...) is pushed once to ``/data/local/tmp/cars/``,
  skipped when the copy there has the same sha256; models go to ``/data/local/tmp/cars/models/``;
- device facts (model, SoC, per-core maximum frequency, governor, thermal zones) for the sidecar;
- each batch is one shell call running many models, each under ``taskset MASK`` with a thread count
  matching the mask, with the thermal-zone temperatures printed before and after each model and
  markers around each runner's output, so that ADB round trips do not dominate; a cooldown wait
  precedes a batch while the phone is hotter than a threshold;
- read timeouts are long (a batch may run minutes); a dropped connection is reopened with
  exponential backoff, leftovers of the interrupted batch are stopped, and the batch is run again.

Every path that reaches the device shell is quoted with ``shlex.quote``: a model named
``my model; rm -rf 'x'.onnx`` is pushed and timed under that name and nothing else runs.
"""
from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import shlex
import socket
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

from adb_shell.transport.tcp_transport import TcpTransport

from ..errors import DeviceError, UserInputError
from .device import (
    CooldownLog,
    DeviceOptions,
    DeviceSpec,
    Sample,
    TimedModel,
    max_temperature,
    to_celsius,
    wait_for_cooldown,
)
from .runners import Runner, runner_for_format

__all__ = ["AdbDevice", "ensure_adb_key", "default_key_path", "batch_command", "parse_batch_output"]

_log = logging.getLogger(__name__)
T = TypeVar("T")

_THERMAL_TEMPS = "cat /sys/class/thermal/thermal_zone*/temp 2>/dev/null"
_MARK = "@@CARS"
_BEGIN = re.compile(_MARK + r":B:(?P<index>\d+):T:(?P<temps>[^\n]*)")
_END = re.compile(_MARK + r":E:(?P<index>\d+):(?P<rc>-?\d+):T:(?P<temps>[^\n]*)")
_DONE = re.compile(_MARK + r":DONE\b")


def default_key_path() -> Path:
    """``<user config dir>/cars-deploy/adbkey`` (``~/.config/cars-deploy/adbkey`` on Linux)."""
    import platformdirs

    return Path(platformdirs.user_config_dir("cars-deploy")) / "adbkey"


def ensure_adb_key(path: Path | None = None) -> Path:
    """The private key at ``path`` (default ``default_key_path()``), created on first use.

    The key is generated inside a fresh private (0700) folder next to its destination and renamed
    into place, so it is never readable by others, not even for a moment; an existing key with loose
    permissions is tightened to 0600."""
    from adb_shell.auth.keygen import keygen

    path = Path(path) if path is not None else default_key_path()
    public = path.with_name(path.name + ".pub")
    if path.is_file() and public.is_file():
        if path.stat().st_mode & 0o077:
            os.chmod(path, 0o600)
        return path
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".adbkey-") as folder:
        fresh = Path(folder) / "adbkey"
        keygen(str(fresh))
        os.chmod(fresh, 0o600)
        os.replace(fresh.with_name("adbkey.pub"), public)
        os.replace(fresh, path)
    _log.info("created ADB key %s; the phone will ask once to allow it", path)
    return path


# ----- the batch script ---------------------------------------------------------------------------
def batch_command(
    runner: Runner,
    remote_dir: str,
    entries: Sequence[tuple[str, TimedModel]],
    *,
    runs: int,
    warmup: int,
    threads: int,
    cpu_mask: int | None,
) -> str:
    """One shell command timing each ``(remote model path, model)`` in turn, with markers and
    temperatures around each runner call; every path is quoted."""
    prefix = ["taskset", format(cpu_mask, "x")] if cpu_mask is not None else []
    runner_path = f"{remote_dir}/{runner.name}"
    lines = [
        f"cd {shlex.quote(remote_dir)} || exit 97",
        f"echo $$ > {shlex.quote(remote_dir + '/batch.pid')}",
        f"t() {{ {_THERMAL_TEMPS} | tr '\\n' ' '; }}",
    ]
    for index, (remote_path, model) in enumerate(entries):
        argv = prefix + [runner_path] + runner.arguments(
            remote_path, runs=runs, warmup=warmup, threads=threads, input_shapes=model.input_shapes
        )
        lines.append(f'echo "{_MARK}:B:{index}:T:$(t)"')
        lines.append(" ".join(shlex.quote(a) for a in argv) + " 2>&1")
        lines.append(f'r=$?; echo ""; echo "{_MARK}:E:{index}:$r:T:$(t)"')
    lines.append(f"rm -f {shlex.quote(remote_dir + '/batch.pid')}; echo {_MARK}:DONE")
    return "; ".join(lines)


def parse_batch_output(output: str, count: int) -> list[tuple[str, int, list[str], list[str]]] | None:
    """Per model ``(runner output, exit code, temperatures before, after)``; None if the batch did not
    finish (no DONE marker or a model's markers missing): the caller runs the batch again."""
    done = _DONE.search(output)
    if done is None:
        return None
    body = output[: done.start()]
    begins = {int(m["index"]): m for m in _BEGIN.finditer(body)}
    ends = {int(m["index"]): m for m in _END.finditer(body)}
    results = []
    for index in range(count):
        begin, end = begins.get(index), ends.get(index)
        if begin is None or end is None or end.start() < begin.end():
            return None
        results.append((body[begin.end() : end.start()], int(end["rc"]), begin["temps"].split(), end["temps"].split()))
    return results


# ----- the device ---------------------------------------------------------------------------------
def _dropped_errors() -> tuple[type[BaseException], ...]:
    from adb_shell import exceptions as ex

    return (
        OSError,  # ConnectionError, TimeoutError and socket errors
        ex.AdbConnectionError, ex.AdbTimeoutError, ex.TcpTimeoutException, ex.InvalidResponseError,
        ex.InvalidChecksumError, ex.InvalidCommandError, ex.UsbReadFailedError, ex.UsbWriteFailedError,
    )


class _IncompleteBatch(Exception):
    """A batch whose output lacks its end markers: the shell died or the stream was cut."""


class _AuthRefused(Exception):
    """The phone did not accept our key."""


class AdbDevice:
    """An Android phone over ADB as a ``Device``."""

    def __init__(self, spec: DeviceSpec, options: DeviceOptions, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self.spec = spec
        self.options = options
        self._sleep = sleep
        self._key_path = ensure_adb_key(options.key_path)
        self._device: Any = None
        self._auth_prompted = False
        self._reconnects: list[dict[str, Any]] = []
        self._cooldown = CooldownLog()
        self._facts: dict[str, Any] | None = None
        self._runner: Runner | None = None
        self._remote_models: dict[str, str] = {}
        self._connect(first=True)

    # ----- Device protocol -----------------------------------------------------------------------
    def facts(self) -> dict[str, Any]:
        if self._facts is None:
            self._facts = self._read_facts()
        return dict(self._facts)

    def prepare(self, models: Sequence[TimedModel]) -> None:
        if not models:
            return
        suffixes = {m.path.suffix.lower() for m in models}
        runners = {runner_for_format(s).name: runner_for_format(s) for s in suffixes}
        if len(runners) != 1:
            raise UserInputError(f"one run times one model format, got {', '.join(sorted(suffixes))}")
        self._runner = next(iter(runners.values()))
        facts = self.facts()
        if self.options.cpu_mask is not None and facts.get("cpu_count"):
            if self.options.cpu_mask >> int(facts["cpu_count"]):
                raise UserInputError(
                    f"--cpu-mask {self.options.cpu_mask:x} names CPUs beyond the {facts['cpu_count']} of {self.spec}"
                )
        remote_dir = self.options.remote_dir
        self._shell(f"mkdir -p {shlex.quote(remote_dir + '/models')}", what="creating the work folder")
        self._install_runner()
        self._push_models(models)

    def time_batch(self, models: Sequence[TimedModel], *, runs: int, warmup: int) -> list[Sample]:
        if self._runner is None:
            raise RuntimeError("prepare() must run before time_batch()")
        wait_for_cooldown(
            self._hottest, threshold_c=self.options.cooldown_above_c, max_wait_s=self.options.cooldown_max_s,
            poll_s=self.options.cooldown_poll_s, log=self._cooldown, sleep=self._sleep,
        )
        limit = self._max_command_length()
        samples: list[Sample] = []
        for chunk in self._fit(list(models), runs=runs, warmup=warmup, limit=limit):
            samples.extend(self._run_chunk(chunk, runs=runs, warmup=warmup))
        return samples

    def temperatures(self) -> dict[str, float]:
        script = 'for z in /sys/class/thermal/thermal_zone*; do echo "${z##*/} $(cat "$z/type" 2>/dev/null) $(cat "$z/temp" 2>/dev/null)"; done'
        out = {}
        for line in self._shell(script, what="reading temperatures").splitlines():
            parts = line.split()
            if len(parts) >= 3 and (celsius := to_celsius(parts[-1])) is not None:
                out[f"{parts[0]}:{' '.join(parts[1:-1])}"] = celsius
        return out

    def events(self) -> dict[str, Any]:
        return {"reconnects": list(self._reconnects), "cooldown": self._cooldown.as_dict()}

    def close(self) -> None:
        if self._device is not None:
            try:
                self._device.close()
            except Exception:  # noqa: BLE001 - closing a broken connection must not mask the real error
                pass
            self._device = None

    # ----- connection ----------------------------------------------------------------------------
    def _connect(self, *, first: bool = False) -> None:
        from adb_shell.adb_device import AdbDevice as _AdbDevice
        from adb_shell.auth.sign_cryptography import CryptographySigner
        from adb_shell.exceptions import DeviceAuthError

        signer = CryptographySigner(str(self._key_path))
        self._auth_prompted = False
        try:
            if self.spec.serial is not None:
                device = self._usb_device()
            else:
                device = _AdbDevice(_EofAwareTcpTransport(self.spec.host, self.spec.port), default_transport_timeout_s=self.options.read_timeout_s)
            timeout = self.options.connect_timeout_s
            device.connect(
                rsa_keys=[signer], transport_timeout_s=timeout, auth_timeout_s=self.options.auth_timeout_s,
                read_timeout_s=max(timeout, self.options.auth_timeout_s), auth_callback=self._on_auth_prompt,
            )
        except DeviceAuthError as exc:
            raise DeviceError(f"{self.spec} refused authentication: {exc}") from None
        except _dropped_errors() as exc:
            if self._auth_prompted:
                if first:
                    raise DeviceError(self._refused_message()) from None
                raise _AuthRefused(str(exc)) from None
            if first:
                raise DeviceError(self._unreachable_message(exc)) from None
            raise
        self._device = device

    def _on_auth_prompt(self, _device: object) -> None:
        self._auth_prompted = True

    def _usb_device(self) -> Any:
        from adb_shell.adb_device import AdbDeviceUsb
        from adb_shell.exceptions import InvalidTransportError, UsbDeviceNotFoundError

        try:
            return AdbDeviceUsb(serial=self.spec.serial, default_transport_timeout_s=self.options.read_timeout_s)
        except InvalidTransportError:
            raise DeviceError(
                "USB devices need the libusb-1.0 system library (e.g. apt install libusb-1.0-0) and "
                "pip install 'adb-shell[usb]'; or connect over TCP with adb:HOST:PORT"
            ) from None
        except UsbDeviceNotFoundError:
            raise DeviceError(
                f"no USB device with serial {self.spec.serial} (plugged in, USB debugging on? if an adb server holds "
                "it, run `adb kill-server`)"
            ) from None

    def _unreachable_message(self, exc: BaseException) -> str:
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        if self.spec.serial is not None:
            return f"cannot open {self.spec}: {reason}"
        return (
            f"cannot reach {self.spec}: {reason} (is the phone on this network with `adb tcpip {self.spec.port}` "
            "run once over USB? Android 11+ paired wireless debugging (TLS) is not supported)"
        )

    def _refused_message(self) -> str:
        return (
            f"{self.spec} refused the ADB key {self._key_path}.pub: accept the 'Allow USB debugging?' prompt on "
            "the phone (tick 'Always allow') and retry"
        )

    def _retrying(self, what: str, call: Callable[[], T]) -> T:
        """Runs ``call``; on a dropped connection, reconnects with exponential backoff and runs it again."""
        attempt = 0
        while True:
            try:
                if self._device is None:
                    self._connect()
                return call()
            except (_IncompleteBatch, *_dropped_errors()) as exc:
                if isinstance(exc, (UserInputError, DeviceError)):
                    raise
                self.close()
                if attempt >= self.options.reconnect_attempts:
                    raise DeviceError(
                        f"lost the connection to {self.spec} while {what} ({type(exc).__name__}: {exc}) and "
                        f"{attempt} reconnection attempts failed; rerun the same command to resume"
                    ) from None
                delay = min(self.options.reconnect_backoff_s * 2**attempt, 30.0)
                attempt += 1
                self._reconnects.append({"while": what, "error": f"{type(exc).__name__}: {exc}"[:200], "wait_s": delay})
                _log.warning("connection to %s lost while %s (%s); reconnecting in %.1f s", self.spec, what, exc, delay)
                self._sleep(delay)
            except _AuthRefused:
                raise DeviceError(self._refused_message()) from None

    def _shell(self, command: str, *, what: str) -> str:
        timeout = self.options.read_timeout_s
        return self._retrying(what, lambda: self._device.shell(command, transport_timeout_s=timeout, read_timeout_s=timeout))

    def _push(self, data: bytes, remote: str, *, mode: int, what: str) -> None:
        timeout = self.options.read_timeout_s

        def push() -> None:
            from adb_shell.exceptions import AdbCommandFailureException, PushFailedError

            try:
                self._device.push(io.BytesIO(data), remote, st_mode=mode, transport_timeout_s=timeout, read_timeout_s=timeout)
            except (PushFailedError, AdbCommandFailureException) as exc:
                raise DeviceError(f"pushing {remote} to {self.spec} failed: {exc}") from None

        self._retrying(what, push)

    def _max_command_length(self) -> int:
        # adbd accepts a service request of up to its maximum payload (4 KiB on very old phones).
        maxdata = int(getattr(self._device, "_maxdata", 4096) or 4096) if self._device is not None else 4096
        return max(maxdata - 64, 1024)

    # ----- facts, runner, models ------------------------------------------------------------------
    def _read_facts(self) -> dict[str, Any]:
        script = "; ".join([
            "echo @@PROPS", "getprop",
            "echo @@CPUINFO", "cat /proc/cpuinfo 2>/dev/null",
            "echo @@POSSIBLE", "cat /sys/devices/system/cpu/possible 2>/dev/null",
            "echo @@FREQ",
            'for c in /sys/devices/system/cpu/cpu[0-9]*; do echo "${c##*/} $(cat "$c/cpufreq/cpuinfo_max_freq" 2>/dev/null) '
            '$(cat "$c/cpufreq/scaling_governor" 2>/dev/null)"; done',
            "echo @@THERMAL",
            'for z in /sys/class/thermal/thermal_zone*; do echo "${z##*/} $(cat "$z/type" 2>/dev/null) $(cat "$z/temp" 2>/dev/null)"; done',
            "echo @@END",
        ])
        sections = _sections(self._shell(script, what="reading device facts"))
        props = dict(re.findall(r"^\[([^\]]+)\]: \[(.*)\]\s*$", sections.get("PROPS", ""), re.M))
        hardware = re.search(r"^Hardware\s*:\s*(.+)$", sections.get("CPUINFO", ""), re.M)
        cpus = []
        for line in sections.get("FREQ", "").splitlines():
            parts = line.split()
            if parts and re.fullmatch(r"cpu\d+", parts[0]):
                entry: dict[str, Any] = {"cpu": int(parts[0][3:])}
                if len(parts) > 1 and parts[1].isdigit():
                    entry["max_freq_khz"] = int(parts[1])
                if len(parts) > 2:
                    entry["governor"] = parts[2]
                cpus.append(entry)
        cpus.sort(key=lambda e: e["cpu"])
        zones = {}
        for line in sections.get("THERMAL", "").splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0].startswith("thermal_zone"):
                zones[parts[0]] = " ".join(parts[1:-1]) if len(parts) > 2 else parts[1]
        return {
            "kind": "adb",
            "spec": str(self.spec),
            "model": props.get("ro.product.model"),
            "manufacturer": props.get("ro.product.manufacturer"),
            "device": props.get("ro.product.device"),
            "soc": props.get("ro.soc.model") or props.get("ro.board.platform") or props.get("ro.hardware")
            or (hardware.group(1).strip() if hardware else None),
            "soc_manufacturer": props.get("ro.soc.manufacturer"),
            "android": props.get("ro.build.version.release"),
            "sdk": props.get("ro.build.version.sdk"),
            "abi": props.get("ro.product.cpu.abi"),
            "cpu_count": _count_cpus(sections.get("POSSIBLE", "")) or len(cpus) or None,
            "cpus": cpus,
            "thermal_zones": zones,
        }

    def _install_runner(self) -> None:
        assert self._runner is not None
        remote = f"{self.options.remote_dir}/{self._runner.name}"
        local = self.options.runner_path
        if local is None:
            present = self._shell(f"[ -x {shlex.quote(remote)} ] && echo yes || echo no", what="looking for the runner")
            if present.strip() != "yes":
                raise UserInputError(
                    f"no {self._runner.name} on {self.spec} at {remote}; pass --runner PATH (an Android build of it) to push one"
                )
            self._facts = {**self.facts(), "runner": {"name": self._runner.name, "path": remote, "sha256": self._remote_sha(remote)}}
            return
        data = Path(local).read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if self._remote_sha(remote) != digest:
            self._push(data, remote, mode=0o100755, what=f"pushing {self._runner.name}")
            if self._remote_sha(remote) != digest:
                raise DeviceError(f"{remote} on {self.spec} does not match {local} after pushing (sha256 differs)")
        else:
            _log.info("%s on %s is up to date (sha256 matches)", self._runner.name, self.spec)
        self._facts = {**self.facts(), "runner": {"name": self._runner.name, "path": remote, "sha256": digest, "local": str(local)}}

    def _remote_sha(self, remote: str) -> str | None:
        out = self._shell(f"sha256sum {shlex.quote(remote)} 2>/dev/null", what="checking the runner")
        first = out.split()
        return first[0].lower() if first and re.fullmatch(r"[0-9a-fA-F]{64}", first[0]) else None

    def _push_models(self, models: Sequence[TimedModel]) -> None:
        folder = f"{self.options.remote_dir}/models"
        listing = self._shell(f"cd {shlex.quote(folder)} && sha256sum ./* 2>/dev/null", what="listing models")
        present = {}
        for line in listing.splitlines():
            digest, _, name = line.partition("  ")
            if re.fullmatch(r"[0-9a-f]{64}", digest) and name.startswith("./"):
                present[name[2:]] = digest
        for model in models:
            name = model.path.name
            if any(c in name for c in "\n\r\0/\\"):
                raise UserInputError(f"model file name {name!r} has a newline, slash or backslash; rename it")
            data = model.path.read_bytes()
            if present.get(name) != hashlib.sha256(data).hexdigest():
                self._push(data, f"{folder}/{name}", mode=0o100644, what=f"pushing {name}")
            self._remote_models[model.name] = f"models/{name}"

    # ----- timing ---------------------------------------------------------------------------------
    def _fit(self, models: list[TimedModel], *, runs: int, warmup: int, limit: int) -> list[list[TimedModel]]:
        """Splits ``models`` into chunks whose batch command fits in one service request."""
        if len(models) <= 1 or len(self._command(models, runs=runs, warmup=warmup)) <= limit:
            return [models] if models else []
        half = len(models) // 2
        return self._fit(models[:half], runs=runs, warmup=warmup, limit=limit) + self._fit(models[half:], runs=runs, warmup=warmup, limit=limit)

    def _command(self, models: Sequence[TimedModel], *, runs: int, warmup: int) -> str:
        assert self._runner is not None
        entries = [(self._remote_models[m.name], m) for m in models]
        return batch_command(
            self._runner, self.options.remote_dir, entries, runs=runs, warmup=warmup,
            threads=self.options.threads, cpu_mask=self.options.cpu_mask,
        )

    def _run_chunk(self, models: Sequence[TimedModel], *, runs: int, warmup: int) -> list[Sample]:
        assert self._runner is not None
        command = self._command(models, runs=runs, warmup=warmup)
        timeout = self.options.read_timeout_s
        interrupted = False

        def run() -> list[tuple[str, int, list[str], list[str]]]:
            nonlocal interrupted
            if interrupted:
                self._stop_leftovers()
            interrupted = True
            output = self._device.shell(command, transport_timeout_s=timeout, read_timeout_s=timeout)
            parsed = parse_batch_output(output, len(models))
            if parsed is None and _BEGIN.search(output) is None:
                raise DeviceError(f"the timing batch did not start on {self.spec}: {_last_line(output)}")
            if parsed is None:  # started, then cut short (the shell was killed): run it again
                raise _IncompleteBatch(f"the batch output ended early: ...{output[-120:]!r}")
            interrupted = False
            return parsed

        results = self._retrying(f"timing {len(models)} models", run)
        samples = []
        for model, (text, rc, before, after) in zip(models, results):
            if rc in (126, 127):
                raise UserInputError(
                    f"{self._runner.name} cannot run on {self.spec} (exit code {rc}: {_last_line(text)}); is --runner "
                    "an Android build for this phone's ABI?"
                )
            if rc != 0:
                raise DeviceError(f"{self._runner.name} failed on {model.name} on {self.spec} with exit code {rc}: {_last_line(text)}")
            result = self._runner.parse(text, model=model.name)
            samples.append(Sample(model.name, result.per_call_ms, result.runs or runs, max_temperature(before), max_temperature(after)))
        return samples

    def _stop_leftovers(self) -> None:
        """After a drop, stops the interrupted batch if it still runs (its shell's process group), so
        the rerun is not timed next to it. Only a process whose command line carries our marker is hit."""
        pid_file = shlex.quote(f"{self.options.remote_dir}/batch.pid")
        self._device.shell(
            f'p=$(cat {pid_file} 2>/dev/null); if [ -n "$p" ] && grep -q {_MARK} /proc/$p/cmdline 2>/dev/null; '
            f"then kill -TERM -$p 2>/dev/null || kill -TERM $p 2>/dev/null; fi; rm -f {pid_file}",
            transport_timeout_s=self.options.read_timeout_s, read_timeout_s=self.options.read_timeout_s,
        )

    def _hottest(self) -> float | None:
        return max_temperature(self._shell(_THERMAL_TEMPS, what="reading temperatures").split())


class _EofAwareTcpTransport(TcpTransport):  # type: ignore[misc]
    """adb-shell's ``TcpTransport`` that reports a closed connection.

    The stock transport returns ``b''`` forever once the phone closes the socket, and adb-shell then
    spins until its read timeout, which must be long here (a batch can run for minutes): a dropped
    connection would be noticed only after that. Raising ``ConnectionResetError`` on end-of-file
    makes a drop visible at once, so the reconnect logic can act. It also sets ``TCP_NODELAY``:
    adb-shell writes each message header and payload separately, and Nagle's algorithm would hold
    every small payload back for a delayed ACK (tens of milliseconds per message)."""

    def connect(self, transport_timeout_s: float | None) -> None:
        super().connect(transport_timeout_s)
        self._connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def bulk_read(self, numbytes: int, transport_timeout_s: float | None) -> bytes:
        if self._connection is None:
            raise ConnectionResetError("not connected")
        data = super().bulk_read(numbytes, transport_timeout_s)
        if numbytes and not data:
            raise ConnectionResetError("the device closed the connection")
        return data

    def bulk_write(self, data: bytes, transport_timeout_s: float | None) -> int:
        if self._connection is None:
            raise ConnectionResetError("not connected")
        return super().bulk_write(data, transport_timeout_s)


def _sections(text: str) -> dict[str, str]:
    out: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        match = re.fullmatch(r"@@([A-Z]+)\s*", line)
        if match:
            current = match.group(1)
            out.setdefault(current, [])
        elif current is not None:
            out[current].append(line)
    return {k: "\n".join(v) for k, v in out.items()}


def _count_cpus(possible: str) -> int | None:
    total = 0
    for part in possible.strip().split(","):
        if re.fullmatch(r"\d+", part):
            total += 1
        elif re.fullmatch(r"\d+-\d+", part):
            low, high = (int(v) for v in part.split("-"))
            total += high - low + 1
        elif part:
            return None
    return total or None


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:200] if lines else "no output"
