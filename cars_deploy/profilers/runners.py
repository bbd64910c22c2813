"""Vendor benchmark binaries that users already have on phones: how to call each, and how to read it.

A ``Runner`` is a command builder plus an output parser. The same runner serves a phone (its command
is quoted into an ADB shell script, see ``adb.py``) and the host (``local.py`` runs it as an argv list).

- ``onnxruntime_perf_test`` (ONNX Runtime's ``onnxruntime/test/perftest``):
  ``-e cpu -m times -r N -x THREADS -I MODEL``. Its summary changed over the years; all forms are read:
  ``Average time cost: X ms`` + ``P50 Latency is X sec`` (before 2020), ``Average inference time
  cost: X ms`` + ``P50 Latency: X s`` (2020-2025) and ``Average inference time cost total: X ms``
  (2025 on). The per-call time is the P50 when printed, else the average.
- ``speed_benchmark_torch`` built with the lite interpreter (PyTorch ``binaries/``):
  ``--model --input_dims --input_type=float --warmup --iter --report_pep=true --pthreadpool_size``; one
  ``PyTorchObserver {"type": "NET", "unit": "us", "metric": "latency", "value": "..."}`` line per
  iteration (median taken), else ``Main run finished. Microseconds per iter: X``.
- ExecuTorch's ``executor_runner``: ``--model_path --num_executions --cpu_threads``; ``Model executed successfully
  N time(s) in X ms.`` (X / N), or the median of its ``Iteration i of N: X ms`` lines when present.

A runner whose output has none of its lines raises ``RunnerOutputError`` (exit 2): the binary given
is not the runner it was declared as, or it printed an error instead of timings.
"""
from __future__ import annotations

import json
import re
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Sequence

from .._registry import Registry
from ..errors import UserInputError
from ..formats import ONNX, PTE, PTL, all_formats, format_for_suffix

__all__ = [
    "Runner",
    "RunnerResult",
    "RunnerOutputError",
    "RUNNERS",
    "runner_for_format",
    "resolve_runner_path",
    "OnnxruntimePerfTest",
    "SpeedBenchmarkTorch",
    "ExecutorRunner",
]


class RunnerOutputError(UserInputError):
    """A runner printed no timing this parser knows: wrong binary, or an error message instead."""


@dataclass(frozen=True)
class RunnerResult:
    """What one runner call reported about one model."""

    mean_ms: float  # average per-call latency over the timed runs
    runs: int  # number of timed runs the runner reports
    median_ms: float | None = None  # per-call median when the runner prints it (or per-run times)
    percentiles_ms: tuple[tuple[str, float], ...] = ()  # e.g. (("P90", 1.2), ...) as printed

    @property
    def per_call_ms(self) -> float:
        """The runner's typical per-call time: the median when known (robust to one preempted run)."""
        return self.median_ms if self.median_ms is not None else self.mean_ms


class Runner(Protocol):
    """A vendor benchmark binary: how to call it on one model and how to read what it prints."""

    name: str  # the binary's usual file name (also its name on the device under /data/local/tmp/cars)

    def arguments(
        self, model: str, *, runs: int, warmup: int, threads: int, input_shapes: Sequence[Sequence[int]]
    ) -> list[str]:
        """The argv after the binary's path, for timing ``model`` (a path on the machine that runs it)."""
        ...

    def parse(self, output: str, *, model: str) -> RunnerResult:
        """The timing in ``output`` (stdout and stderr together); ``RunnerOutputError`` if there is none."""
        ...


RUNNERS: Registry[Runner] = Registry("runner")

_NUMBER = r"([-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)"


def _excerpt(output: str) -> str:
    lines = [line.strip() for line in output.strip().splitlines() if line.strip()]
    if not lines:
        return "nothing"
    text = " | ".join(lines[:3])
    return repr(text[:160] + ("..." if len(text) > 160 else ""))


class OnnxruntimePerfTest:
    """ONNX Runtime's ``onnxruntime_perf_test`` (CPU provider, fixed repetitions, generated inputs)."""

    name = ONNX.runner
    _AVERAGE = re.compile(r"^\s*Average (?:inference )?time cost(?: total)?\s*:\s*" + _NUMBER + r"\s*ms", re.M)
    _RUNS = re.compile(r"^\s*(?:Total inference requests|Total iterations|Runs)\s*:\s*(\d+)", re.M)
    _PERCENTILE = re.compile(r"^\s*(Min|Max|P\d+) Latency(?::| is)\s*" + _NUMBER + r"\s*(s|sec)\b", re.M)

    def arguments(
        self, model: str, *, runs: int, warmup: int, threads: int, input_shapes: Sequence[Sequence[int]]
    ) -> list[str]:
        # The tool runs one untimed warm-up call of its own; -I generates the inputs from the model.
        return ["-e", "cpu", "-m", "times", "-r", str(runs), "-x", str(threads), "-I", model]

    def parse(self, output: str, *, model: str) -> RunnerResult:
        match = self._AVERAGE.search(output)
        if not match:
            raise RunnerOutputError(
                f"{self.name} printed no 'Average inference time cost' line for {model} (is the runner "
                f"really {self.name}?); its output began: {_excerpt(output)}"
            )
        runs_match = self._RUNS.search(output)
        percentiles = tuple((name, float(value) * 1000.0) for name, value, _ in self._PERCENTILE.findall(output))
        median = dict(percentiles).get("P50")
        return RunnerResult(
            mean_ms=float(match.group(1)),
            runs=int(runs_match.group(1)) if runs_match else 0,
            median_ms=median,
            percentiles_ms=percentiles,
        )


class SpeedBenchmarkTorch:
    """PyTorch's ``speed_benchmark_torch`` built with the lite interpreter (``.ptl`` models)."""

    name = PTL.runner
    _OBSERVER = re.compile(r"^\s*PyTorchObserver\s+(\{.*\})\s*$", re.M)
    _SUMMARY = re.compile(r"Main run finished\. (Microseconds|Milliseconds) per iter:\s*" + _NUMBER)

    def arguments(
        self, model: str, *, runs: int, warmup: int, threads: int, input_shapes: Sequence[Sequence[int]]
    ) -> list[str]:
        # --pthreadpool_size sizes the lite interpreter's thread pool (a c10 flag of mobile builds).
        dims = ";".join(",".join(str(d) for d in shape) for shape in input_shapes)
        n = len(input_shapes)
        args = [
            f"--model={model}",
            f"--input_dims={dims}",
            "--input_type=" + ";".join(["float"] * n),
            f"--warmup={warmup}",
            f"--iter={runs}",
            "--report_pep=true",
            f"--pthreadpool_size={threads}",
        ]
        if n > 1:  # the tool checks that dims, types and memory formats have the same number of items
            args.append("--input_memory_format=" + ";".join(["contiguous_format"] * n))
        return args

    def parse(self, output: str, *, model: str) -> RunnerResult:
        values: list[float] = []
        for blob in self._OBSERVER.findall(output):
            try:
                record = json.loads(blob)
            except json.JSONDecodeError:
                continue
            if record.get("metric") != "latency" or record.get("type") != "NET":
                continue
            scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}.get(str(record.get("unit")), None)
            try:
                value = float(record["value"])
            except (KeyError, TypeError, ValueError):
                continue
            if scale is not None:
                values.append(value * scale)
        summary = self._SUMMARY.search(output)
        if values:
            return RunnerResult(mean_ms=statistics.fmean(values), runs=len(values), median_ms=statistics.median(values))
        if summary:
            scale = 1e-3 if summary.group(1) == "Microseconds" else 1.0
            return RunnerResult(mean_ms=float(summary.group(2)) * scale, runs=0)
        raise RunnerOutputError(
            f"{self.name} printed no 'PyTorchObserver' latency nor 'Main run finished' line for {model} (is the "
            f"runner really {self.name}, built with the lite interpreter?); its output began: {_excerpt(output)}"
        )


class ExecutorRunner:
    """ExecuTorch's ``executor_runner`` (``.pte`` programs, inputs of ones)."""

    name = PTE.runner
    _TOTAL = re.compile(r"Model executed successfully (\d+) time\(s\) in " + _NUMBER + r" ms")
    _ITERATION = re.compile(r"Iteration \d+ of \d+: " + _NUMBER + r" ms")

    def arguments(
        self, model: str, *, runs: int, warmup: int, threads: int, input_shapes: Sequence[Sequence[int]]
    ) -> list[str]:
        # executor_runner has no warm-up flag: its first execution is timed with the others (the median
        # of its per-iteration lines absorbs it). --cpu_threads sizes its threadpool (recent builds; an
        # older build rejects the flag and the error names it).
        return [f"--model_path={model}", f"--num_executions={runs}", f"--cpu_threads={threads}"]

    def parse(self, output: str, *, model: str) -> RunnerResult:
        match = self._TOTAL.search(output)
        if not match:
            raise RunnerOutputError(
                f"{self.name} printed no 'Model executed successfully N time(s) in X ms' line for {model} (is "
                f"the runner really {self.name}?); its output began: {_excerpt(output)}"
            )
        count, total = int(match.group(1)), float(match.group(2))
        if count <= 0:
            raise RunnerOutputError(f"{self.name} reports {count} executions for {model}")
        iterations = [float(v) for v in self._ITERATION.findall(output)]
        median = statistics.median(iterations) if len(iterations) == count else None
        return RunnerResult(mean_ms=total / count, runs=count, median_ms=median)


RUNNERS.add(OnnxruntimePerfTest.name, OnnxruntimePerfTest())
RUNNERS.add(SpeedBenchmarkTorch.name, SpeedBenchmarkTorch())
RUNNERS.add(ExecutorRunner.name, ExecutorRunner())


def runner_for_format(suffix: str) -> Runner:
    """The runner that times model files ending in ``suffix`` (``.onnx``, ``.ptl``, ``.pte``): its format's."""
    model_format = format_for_suffix(suffix)
    if model_format is None:
        known = ", ".join(fmt.suffix for fmt in all_formats())
        raise UserInputError(f"no runner times {suffix!r} models; known: {known}")
    return RUNNERS.get(model_format.runner)


def resolve_runner_path(path: Path | str) -> Path:
    """The absolute path of a ``--runner`` binary, checked once where it enters.

    A bare name (``--runner onnxruntime_perf_test``) means the file in the current folder, never a
    binary of that name found on ``$PATH``: the path checked here is the path run locally and pushed to
    phones, so the two cannot differ. ``absolute()`` (not ``resolve()``) keeps a symlink's own name,
    which names the runner in tables.
    """
    absolute = Path(path).expanduser().absolute()
    if not absolute.is_file():
        raise UserInputError(f"runner binary {path} not found (looked for {absolute})")
    return absolute
