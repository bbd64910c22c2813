"""``--device local``: times models on this machine's CPU.

In process by default: ONNX Runtime's CPU provider (``intra_op_num_threads`` = threads, one inter-op
thread, ``ORT_ENABLE_ALL`` graph optimisation, as ``onnxruntime_perf_test`` uses by default) for
``.onnx``, the PyTorch lite interpreter for ``.ptl`` and the ExecuTorch runtime for ``.pte``. With
``--runner PATH`` the vendor binary is run instead (as an argv list, never through a shell), which is
how a host build of ``onnxruntime_perf_test`` is compared with the in-process numbers.

A ``--cpu-mask`` pins this process (and so the runners it starts) to those CPUs for the lifetime of
the device; the previous affinity is restored by ``close``.
"""
from __future__ import annotations

import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import DeviceError, UserInputError
from ..formats import ONNX, PTE, PTL, format_for_runtime, format_for_suffix, suffix_choices
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
from .runners import RUNNERS, Runner, runner_for_format

__all__ = ["LocalDevice"]

_THERMAL = Path("/sys/class/thermal")
_CPUS = Path("/sys/devices/system/cpu")


class LocalDevice:
    """The host CPU as a ``Device``."""

    def __init__(self, spec: DeviceSpec, options: DeviceOptions) -> None:
        self.spec = spec
        self.options = options
        self._calls: dict[str, Callable[[], object]] = {}
        self._cooldown = CooldownLog()
        self._saved_affinity: set[int] | None = None
        self._saved_torch_threads: int | None = None
        self._runner: Runner | None = None
        if options.cpu_mask is not None:
            self._pin(options.cpu_mask)

    # ----- Device protocol -----------------------------------------------------------------------
    def facts(self) -> dict[str, Any]:
        facts: dict[str, Any] = {
            "kind": "local",
            "machine": platform.machine(),
            "system": f"{platform.system()} {platform.release()}",
            "cpu_model": _cpu_model(),
            "cpu_count": os.cpu_count(),
            "cpus": _cpu_frequencies(),
            "python": platform.python_version(),
        }
        if hasattr(os, "sched_getaffinity"):
            facts["affinity"] = sorted(os.sched_getaffinity(0))
        facts["runtime_version"] = _runtime_version(self.options.runtime)
        if self.options.runner_path is not None:
            facts["runner"] = str(self.options.runner_path)
        zones = self._zones()
        if zones:
            facts["thermal_zones"] = {name: kind for name, (kind, _) in zones.items()}
        return facts

    def prepare(self, models: Sequence[TimedModel]) -> None:
        for model in models:
            if model.name in self._calls:
                continue
            suffix = model.path.suffix.lower()
            model_format = format_for_suffix(suffix)
            if self.options.runner_path is not None:
                self._runner = runner_for_format(suffix)
                self._calls[model.name] = lambda: None
            elif model_format is ONNX:  # ONNX Runtime loads .onnx and its own .ort files
                self._calls[model.name] = self._onnx_call(model)
            elif model_format is PTL and suffix == PTL.suffix:  # in process only .ptl; a .pt needs --runner
                self._calls[model.name] = self._lite_call(model)
            elif model_format is PTE:
                self._calls[model.name] = self._executorch_call(model)
            else:
                raise UserInputError(f"cannot time {model.path.name}: expected a {suffix_choices()} model")

    def time_batch(self, models: Sequence[TimedModel], *, runs: int, warmup: int) -> list[Sample]:
        wait_for_cooldown(
            self._hottest, threshold_c=self.options.cooldown_above_c, max_wait_s=self.options.cooldown_max_s,
            poll_s=self.options.cooldown_poll_s, log=self._cooldown,
        )
        samples = []
        for model in models:
            before = self._hottest()
            if self.options.runner_path is not None:
                ms, count = self._run_runner(model, runs=runs, warmup=warmup)
            else:
                ms, count = self._time_in_process(model, runs=runs, warmup=warmup)
            samples.append(Sample(model.name, ms, count, before, self._hottest()))
        return samples

    def temperatures(self) -> dict[str, float]:
        out = {}
        for name, (kind, raw) in self._zones().items():
            celsius = to_celsius(raw)
            if celsius is not None:
                out[f"{name}:{kind}"] = celsius
        return out

    def events(self) -> dict[str, Any]:
        return {"cooldown": self._cooldown.as_dict()}

    def close(self) -> None:
        self._calls.clear()
        if self._saved_affinity is not None:
            os.sched_setaffinity(0, self._saved_affinity)
            self._saved_affinity = None
        if self._saved_torch_threads is not None:
            import torch

            torch.set_num_threads(self._saved_torch_threads)
            self._saved_torch_threads = None

    # ----- in-process runtimes -------------------------------------------------------------------
    def _time_in_process(self, model: TimedModel, *, runs: int, warmup: int) -> tuple[float, int]:
        call = self._calls[model.name]
        for _ in range(warmup):
            call()
        times = np.empty(runs, dtype=np.float64)
        clock = time.perf_counter_ns
        for i in range(runs):
            start = clock()
            call()
            times[i] = clock() - start
        return float(np.median(times)) / 1e6, runs

    def _onnx_call(self, model: TimedModel) -> Callable[[], object]:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = self.options.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        try:
            session = ort.InferenceSession(str(model.path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for unreadable models
            raise UserInputError(f"ONNX Runtime cannot load {model.path.name}: {exc}") from None
        rng = np.random.default_rng(0)
        feeds = {}
        for index, spec in enumerate(session.get_inputs()):
            shape = model.input_shapes[index] if index < len(model.input_shapes) else None
            shape = shape or tuple(d if isinstance(d, int) and d > 0 else 1 for d in spec.shape)
            feeds[spec.name] = rng.standard_normal(shape).astype(np.float32)
        return lambda: session.run(None, feeds)

    def _lite_call(self, model: TimedModel) -> Callable[[], object]:
        import torch
        from torch.jit.mobile import _load_for_lite_interpreter

        if self._saved_torch_threads is None:
            self._saved_torch_threads = torch.get_num_threads()
        torch.set_num_threads(self.options.threads)
        try:
            module = _load_for_lite_interpreter(str(model.path))
        except Exception as exc:  # torch raises RuntimeError subclasses with long C++ traces
            raise UserInputError(f"the PyTorch lite interpreter cannot load {model.path.name}: {str(exc).splitlines()[0]}") from None
        generator = torch.Generator().manual_seed(0)
        inputs = [torch.randn(shape, generator=generator) for shape in model.input_shapes]

        def call() -> object:
            with torch.no_grad():
                return module(*inputs)

        return call

    def _executorch_call(self, model: TimedModel) -> Callable[[], object]:
        try:
            from executorch.runtime import Runtime
        except ImportError:
            raise UserInputError(
                f"timing {model.path.name} on the host needs the executorch package, or --runner PATH to an "
                "executor_runner binary"
            ) from None
        import torch

        try:
            method = Runtime.get().load_program(model.path).load_method("forward")
        except Exception as exc:  # executorch raises RuntimeError/ValueError for unloadable programs
            raise UserInputError(f"ExecuTorch cannot load {model.path.name}: {exc}") from None
        generator = torch.Generator().manual_seed(0)
        inputs = [torch.randn(shape, generator=generator) for shape in model.input_shapes]
        return lambda: method.execute(inputs)

    # ----- a vendor runner on the host ------------------------------------------------------------
    def _run_runner(self, model: TimedModel, *, runs: int, warmup: int) -> tuple[float, int]:
        runner = self._runner or RUNNERS.get(ONNX.runner)
        argv = [str(self.options.runner_path)] + runner.arguments(
            str(model.path), runs=runs, warmup=warmup, threads=self.options.threads, input_shapes=model.input_shapes
        )
        try:
            done = subprocess.run(argv, capture_output=True, text=True, errors="replace", timeout=self.options.read_timeout_s)
        except (PermissionError, OSError) as exc:
            raise UserInputError(f"runner {self.options.runner_path} cannot be executed: {exc.strerror or exc}") from None
        except subprocess.TimeoutExpired:
            raise DeviceError(f"{runner.name} did not finish {model.name} within {self.options.read_timeout_s:.0f} s") from None
        output = done.stdout + done.stderr
        if done.returncode != 0:
            last = output.strip().splitlines()[-1] if output.strip() else "no output"
            raise DeviceError(f"{runner.name} failed on {model.name} with exit code {done.returncode}: {last[:200]}")
        result = runner.parse(output, model=model.name)
        return result.per_call_ms, result.runs or runs

    # ----- host facts -----------------------------------------------------------------------------
    def _pin(self, mask: int) -> None:
        if not hasattr(os, "sched_setaffinity"):
            raise UserInputError("--cpu-mask needs Linux (sched_setaffinity) for --device local")
        cpus = {i for i in range(mask.bit_length()) if mask >> i & 1}
        available = os.sched_getaffinity(0)
        if not cpus <= available:
            raise UserInputError(
                f"--cpu-mask {mask:x} names CPUs {sorted(cpus - available)} this machine does not offer "
                f"(available: {sorted(available)})"
            )
        self._saved_affinity = available
        os.sched_setaffinity(0, cpus)

    def _zones(self) -> dict[str, tuple[str, str]]:
        zones = {}
        for zone in sorted(_THERMAL.glob("thermal_zone*")):
            try:
                zones[zone.name] = ((zone / "type").read_text().strip(), (zone / "temp").read_text().strip())
            except OSError:
                continue
        return zones

    def _hottest(self) -> float | None:
        return max_temperature([raw for _, raw in self._zones().values()])


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware")):  # x86 / ARM
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _cpu_frequencies() -> list[dict[str, Any]]:
    out = []
    for cpu in sorted(_CPUS.glob("cpu[0-9]*"), key=lambda p: int(p.name[3:])):
        entry: dict[str, Any] = {"cpu": int(cpu.name[3:])}
        for name, key in (("cpuinfo_max_freq", "max_freq_khz"), ("scaling_governor", "governor")):
            try:
                text = (cpu / "cpufreq" / name).read_text().strip()
            except OSError:
                continue
            entry[key] = int(text) if text.isdigit() else text
        out.append(entry)
    return out


def _runtime_version(runtime: str) -> str:
    try:
        if format_for_runtime(runtime) is ONNX:
            import onnxruntime

            return f"onnxruntime {onnxruntime.__version__}"
        if format_for_runtime(runtime) is PTE:
            from importlib.metadata import version

            return f"executorch {version('executorch')}"
        import torch

        return f"torch {torch.__version__}"
    except ImportError:
        return "unknown"
