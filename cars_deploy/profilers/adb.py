"""``--device adb:SERIAL`` (USB) and ``adb:HOST:PORT`` (TCP): times models on an Android phone.

Over one ``AdbConnection`` (``adb_transport.py``: key, connection, reconnects), with the shell
commands of ``adb_scripts.py``:

- the runner binary (``onnxruntime_perf_test`` ...) is pushed once to ``/data/local/tmp/cars/``,
  skipped when the copy there has the same sha256; models go to ``/data/local/tmp/cars/models/``;
- device facts (model, SoC, per-core maximum frequency, governor, thermal zones) for the sidecar;
- each batch of models is one shell call (``batch_command``), split in chunks that fit one service
  request; a cooldown wait precedes a batch while the phone is hotter than a threshold;
- a batch cut short by a dropped connection is stopped on the phone and run again.
"""
from __future__ import annotations

import hashlib
import logging
import re
import secrets
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from ..errors import DeviceError, UserInputError
from .adb_scripts import (
    FACTS,
    THERMAL_TEMPS,
    THERMAL_ZONES,
    batch_command,
    batch_started,
    is_executable,
    make_folder,
    parse_batch_output,
    sha256_listing,
    sha256_of,
    stop_batch,
)
from .adb_transport import AdbConnection, IncompleteOutput
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

__all__ = ["AdbDevice"]

_log = logging.getLogger(__name__)


class AdbDevice:
    """An Android phone over ADB as a ``Device``."""

    def __init__(self, spec: DeviceSpec, options: DeviceOptions, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self.spec = spec
        self.options = options
        self._sleep = sleep
        self._connection = AdbConnection(spec, options, sleep=sleep)
        self._cooldown = CooldownLog()
        self._facts: dict[str, Any] | None = None
        self._runner: Runner | None = None
        self._remote_models: dict[str, str] = {}
        self._run_id = secrets.token_hex(6)  # names this run's files on the phone (its batch's pid file)

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
        self._connection.shell(make_folder(self.options.remote_dir + "/models"), what="creating the work folder")
        self._install_runner()
        self._push_models(models)

    def time_batch(self, models: Sequence[TimedModel], *, runs: int, warmup: int) -> list[Sample]:
        if self._runner is None:
            raise RuntimeError("prepare() must run before time_batch()")
        wait_for_cooldown(
            self._hottest, threshold_c=self.options.cooldown_above_c, max_wait_s=self.options.cooldown_max_s,
            poll_s=self.options.cooldown_poll_s, log=self._cooldown, sleep=self._sleep,
        )
        limit = self._connection.max_command_length()
        samples: list[Sample] = []
        for chunk in self._fit(list(models), runs=runs, warmup=warmup, limit=limit):
            samples.extend(self._run_chunk(chunk, runs=runs, warmup=warmup))
        return samples

    def temperatures(self) -> dict[str, float]:
        out = {}
        for line in self._connection.shell(THERMAL_ZONES, what="reading temperatures").splitlines():
            parts = line.split()
            if len(parts) >= 3 and (celsius := to_celsius(parts[-1])) is not None:
                out[f"{parts[0]}:{' '.join(parts[1:-1])}"] = celsius
        return out

    def events(self) -> dict[str, Any]:
        return {"reconnects": list(self._connection.reconnects), "cooldown": self._cooldown.as_dict()}

    def close(self) -> None:
        self._connection.close()

    # ----- facts, runner, models ------------------------------------------------------------------
    def _read_facts(self) -> dict[str, Any]:
        sections = _sections(self._connection.shell(FACTS, what="reading device facts"))
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
            present = self._connection.shell(is_executable(remote), what="looking for the runner")
            if present.strip() != "yes":
                raise UserInputError(
                    f"no {self._runner.name} on {self.spec} at {remote}; pass --runner PATH (an Android build of it) to push one"
                )
            self._facts = {**self.facts(), "runner": {"name": self._runner.name, "path": remote, "sha256": self._remote_sha(remote)}}
            return
        data = Path(local).read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if self._remote_sha(remote) != digest:
            self._connection.push(data, remote, mode=0o100755, what=f"pushing {self._runner.name}")
            if self._remote_sha(remote) != digest:
                raise DeviceError(f"{remote} on {self.spec} does not match {local} after pushing (sha256 differs)")
        else:
            _log.info("%s on %s is up to date (sha256 matches)", self._runner.name, self.spec)
        self._facts = {**self.facts(), "runner": {"name": self._runner.name, "path": remote, "sha256": digest, "local": str(local)}}

    def _remote_sha(self, remote: str) -> str | None:
        out = self._connection.shell(sha256_of(remote), what="checking the runner")
        first = out.split()
        return first[0].lower() if first and re.fullmatch(r"[0-9a-fA-F]{64}", first[0]) else None

    def _push_models(self, models: Sequence[TimedModel]) -> None:
        folder = f"{self.options.remote_dir}/models"
        listing = self._connection.shell(sha256_listing(folder), what="listing models")
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
                self._connection.push(data, f"{folder}/{name}", mode=0o100644, what=f"pushing {name}")
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
            threads=self.options.threads, cpu_mask=self.options.cpu_mask, run_id=self._run_id,
        )

    def _run_chunk(self, models: Sequence[TimedModel], *, runs: int, warmup: int) -> list[Sample]:
        assert self._runner is not None
        command = self._command(models, runs=runs, warmup=warmup)
        interrupted = False

        def run() -> list[tuple[str, int, list[str], list[str]]]:
            nonlocal interrupted
            if interrupted:
                self._stop_leftovers()
            interrupted = True
            output = self._connection.shell_once(command)
            parsed = parse_batch_output(output, len(models))
            if parsed is None and not batch_started(output):
                raise DeviceError(f"the timing batch did not start on {self.spec}: {_last_line(output)}")
            if parsed is None:  # started, then cut short (the shell was killed): run it again
                raise IncompleteOutput(f"the batch output ended early: ...{output[-120:]!r}")
            interrupted = False
            return parsed

        results = self._connection.retrying(f"timing {len(models)} models", run)
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
        self._connection.shell_once(stop_batch(self.options.remote_dir, self._run_id))

    def _hottest(self) -> float | None:
        return max_temperature(self._connection.shell(THERMAL_TEMPS, what="reading temperatures").split())


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
