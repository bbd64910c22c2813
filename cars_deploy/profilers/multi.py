"""Several devices profiled at once: ``cars-profile --device A --device B ... --out NAME``.

Each device gets its own table and sidecar (``NAME-<device>.csv`` / ``.json``, see ``table_path_for``)
built by the ordinary single-device driver (``builder.build_table``): same protocol, same resumable
partial file, same atomic writes, so each table has exactly the rows a run on that device alone
would give. The devices run concurrently, one thread each: the host's work per device is waiting on
a phone's shell (``adb-shell`` sockets), so threads overlap them without a process per phone, and a
``local`` device among phones shares the host CPU with nothing heavier than that I/O.

What concurrency needs, done here before any thread starts, in the calling thread:

- the block models every device will time are exported once (``BlockExporter``): the exporters seed
  torch's global generator and drive the TorchScript exporter, neither of which is safe to run from
  several threads at once; the threads then only find the cached files;
- each ADB key is created once (two threads creating the same key pair could pair one's private key
  with the other's public key).

One progress display counts the samples of all devices (``tqdm``, off when stderr is not a terminal),
with one ``done/planned`` entry per device; the per-device bars of ``protocol.measure`` are turned off.
A device that fails - unreachable, refusing the key, a runner crashing midway - ends its own thread
with its error recorded; the other devices carry on, and ``profile_devices`` returns one
``DeviceOutcome`` per device for the command to report (one line per failed device, exit 1 or 2).
"""
from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from .._progress import progress
from ..errors import CarsError, UserInputError
from .adb_transport import ensure_adb_key
from .blocks import EMPTY_KEY, network_blocks
from .builder import BuildReport, ProfileConfig, build_table, partial_path
from .device import Device, DeviceOptions, DeviceSpec, Sample, TimedModel
from .devices import open_device
from .export_blocks import BlockExporter
from .table import table_files

__all__ = ["DeviceJob", "DeviceOutcome", "profile_devices", "table_path_for", "device_slug", "exit_code"]


@dataclass(frozen=True)
class DeviceJob:
    """One device of a multi-device run and the table it fills."""

    spec: DeviceSpec  # the device
    options: DeviceOptions  # how it runs models (runtime, threads, CPU mask, runner, ADB key, ...)
    config: ProfileConfig  # what it profiles and where its table goes (``config.out``)


@dataclass
class DeviceOutcome:
    """How one device's profile ended."""

    spec: DeviceSpec  # the device
    out: Path  # its table base path
    report: BuildReport | None = None  # the build report when it succeeded
    error: str | None = None  # one-line reason when it failed
    exit_code: int = 0  # 0, or the exit code its error stands for (1 device failure, 2 bad input)

    @property
    def ok(self) -> bool:
        return self.error is None


def device_slug(spec: DeviceSpec) -> str:
    """A file-name-safe name of a device: ``local``, the USB serial, or ``HOST-PORT``."""
    if spec.kind == "local":
        return "local"
    text = spec.serial if spec.serial is not None else f"{spec.host}-{spec.port}"
    return re.sub(r"[^A-Za-z0-9._-]+", "-", str(text)).strip("-.") or "device"


def table_path_for(out: str | Path, spec: DeviceSpec) -> Path:
    """The table base path of ``spec`` in a multi-device run writing to ``out``: ``OUT-<device>``
    (``latency_tables/p30`` and ``adb:192.168.1.20:5555`` give ``latency_tables/p30-192.168.1.20-5555``)."""
    csv, _ = table_files(out)
    base = csv.with_suffix("")
    return base.with_name(f"{base.name}-{device_slug(spec)}")


def exit_code(outcomes: Sequence[DeviceOutcome]) -> int:
    """0 if every device succeeded; 1 if any failed for a device reason (or unexpectedly); else 2."""
    codes = {o.exit_code for o in outcomes if not o.ok}
    if not codes:
        return 0
    return 1 if 1 in codes else max(codes)


class _Display:
    """The one progress display of a multi-device run: a tqdm bar over all devices' samples."""

    def __init__(self, specs: Sequence[DeviceSpec], show_progress: bool | None):
        self._lock = threading.Lock()
        self._names = [str(s) for s in specs]
        self._done = {name: 0 for name in self._names}
        self._planned = {name: 0 for name in self._names}
        self._state = {name: "" for name in self._names}
        self._bar = progress(total=0, desc=f"profiling {len(specs)} devices", unit="sample",
                             **({} if show_progress is None else {"disable": not show_progress}))

    def plan(self, name: str, samples: int) -> None:
        with self._lock:
            self._planned[name] += samples
            self._bar.total = sum(self._planned.values())
            self._refresh()

    def advance(self, name: str, samples: int) -> None:
        with self._lock:
            self._done[name] += samples
            self._bar.update(samples)
            self._refresh()

    def finish(self, name: str, state: str) -> None:
        with self._lock:
            self._state[name] = state
            self._refresh()

    def _refresh(self) -> None:
        parts = [f"{n} {self._state[n] or f'{self._done[n]}/{self._planned[n]}'}" for n in self._names]
        self._bar.set_postfix_str(" | ".join(parts), refresh=True)

    def close(self) -> None:
        self._bar.close()


class _Tracked:
    """A ``Device`` passed to ``build_table`` that reports its progress to the shared display."""

    def __init__(self, device: Device, job: DeviceJob, display: _Display):
        self._device = device
        self._job = job
        self._display = display
        self._name = str(job.spec)
        self.spec = device.spec
        self.options = device.options

    def facts(self) -> dict[str, Any]:
        return self._device.facts()

    def prepare(self, models: Sequence[TimedModel]) -> None:
        self._device.prepare(models)
        protocol = self._job.config.protocol
        planned = len(models) * (protocol.rounds + (1 if protocol.warmup else 0)) - _resumed(self._job, models)
        self._display.plan(self._name, max(planned, 0))

    def time_batch(self, models: Sequence[TimedModel], *, runs: int, warmup: int) -> list[Sample]:
        samples = self._device.time_batch(models, runs=runs, warmup=warmup)
        self._display.advance(self._name, len(models))
        return samples

    def temperatures(self) -> dict[str, float]:
        return self._device.temperatures()

    def events(self) -> dict[str, Any]:
        return self._device.events()

    def close(self) -> None:
        self._device.close()


def _resumed(job: DeviceJob, models: Sequence[TimedModel]) -> int:
    """Round samples an interrupted run of this device already holds (they are not timed again)."""
    path = partial_path(job.config.out)
    try:
        samples = json.loads(path.read_text())["samples"]
    except (OSError, ValueError, KeyError, TypeError):
        return 0
    names = {m.name for m in models}
    rounds = job.config.protocol.rounds
    return sum(1 for name, by_round in samples.items() if name in names for r in by_round if int(r) < rounds)


def _prepare_shared(jobs: Sequence[DeviceJob]) -> dict[int, tuple[str, int]]:
    """Exports every job's blocks (cached: a second job of the same format finds them) and creates
    ADB keys, in this thread; returns job index -> (error, exit code) for jobs that cannot start."""
    failed: dict[int, tuple[str, int]] = {}
    for i, job in enumerate(jobs):
        fmt = job.options.model_format
        try:
            exporter = BlockExporter(job.config.cache_dir)
            for network in job.config.networks:
                for block in network_blocks(network):
                    exporter.export(block, fmt)
            exporter.export(EMPTY_KEY, fmt)
            if job.spec.kind == "adb":
                ensure_adb_key(job.options.key_path)
        except CarsError as exc:
            failed[i] = (_one_line(exc), exc.exit_code)
        except (OSError, ValueError) as exc:
            failed[i] = (f"{type(exc).__name__}: {_one_line(exc)}", 1)
    return failed


def profile_devices(
    jobs: Sequence[DeviceJob],
    *,
    show_progress: bool | None = None,
    opener: Callable[[DeviceSpec, DeviceOptions], Device] = open_device,
) -> list[DeviceOutcome]:
    """Profiles every job's device concurrently (one thread each) into its own table; returns one
    outcome per job, in order. A failing device never stops the others. ``UserInputError`` before
    anything starts when two jobs name the same device or the same table."""
    specs = [str(job.spec) for job in jobs]
    duplicated = sorted({s for s in specs if specs.count(s) > 1})
    if duplicated:
        raise UserInputError(f"device {duplicated[0]} is given twice; give each --device once")
    outs = [table_files(job.config.out)[0] for job in jobs]
    if len(set(outs)) != len(outs):
        raise UserInputError("two devices would write the same table; give each its own --out")
    outcomes = [DeviceOutcome(spec=job.spec, out=Path(job.config.out)) for job in jobs]
    for i, (error, code) in _prepare_shared(jobs).items():
        outcomes[i].error, outcomes[i].exit_code = error, code
    display = _Display([job.spec for job in jobs], show_progress)

    def work(i: int) -> None:
        job, outcome = jobs[i], outcomes[i]
        device: Device | None = None
        try:
            device = opener(job.spec, job.options)
            outcome.report = build_table(_Tracked(device, job, display), job.config, show_progress=False)
            display.finish(str(job.spec), "done")
        except CarsError as exc:
            outcome.error, outcome.exit_code = _one_line(exc), exc.exit_code
        except Exception as exc:  # noqa: BLE001 - one device's bug must not stop the others; reported as exit 1
            outcome.error, outcome.exit_code = f"internal error: {type(exc).__name__}: {_one_line(exc)}", 1
        finally:
            if outcome.error is not None:
                display.finish(str(job.spec), "failed")
            if device is not None:
                try:
                    device.close()
                except Exception:  # noqa: BLE001 - closing a broken device must not hide its real error
                    pass

    # Daemon threads: an interrupted command (Ctrl-C) exits without waiting for phones to answer;
    # every table and partial file is written atomically, so a rerun resumes each device.
    threads = [threading.Thread(target=work, args=(i,), name=f"profile {jobs[i].spec}", daemon=True)
               for i in range(len(jobs)) if outcomes[i].ok]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        display.close()
    return outcomes


def _one_line(exc: BaseException) -> str:
    return " ".join((str(exc).strip() or type(exc).__name__).split())
