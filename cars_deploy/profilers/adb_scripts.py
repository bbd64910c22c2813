"""The shell commands sent to a phone, and the reader of a timing batch's output.

Every path that reaches the device shell is quoted with ``shlex.quote``: a model named
``my model; rm -rf 'x'.onnx`` is pushed and timed under that name and nothing else runs.

A timing batch (``batch_command``) is one shell call running many models, each under ``taskset MASK``
when a CPU mask is given, with the thermal-zone temperatures printed before and after each model and
markers around each runner's output, so that ADB round trips do not dominate; ``parse_batch_output``
splits its output per model and tells a finished batch from one cut short. The batch writes its
shell's pid to ``batch-RUNID.pid`` (``pid_file``; ``RUNID`` is unique to one ``AdbDevice``), so that
``stop_batch`` can stop a batch of this run left running by a dropped connection: only a process whose
command line names this run's pid file, never the batch of another run sharing the phone's folder.
"""
from __future__ import annotations

import re
import shlex
from typing import Sequence

from .device import TimedModel
from .runners import Runner

__all__ = [
    "THERMAL_TEMPS",
    "THERMAL_ZONES",
    "FACTS",
    "make_folder",
    "is_executable",
    "sha256_of",
    "sha256_listing",
    "batch_command",
    "pid_file",
    "parse_batch_output",
    "batch_started",
    "stop_batch",
]

#: The raw readings of every thermal zone, on one line each.
THERMAL_TEMPS = "cat /sys/class/thermal/thermal_zone*/temp 2>/dev/null"
#: ``thermal_zoneN TYPE READING`` per zone.
THERMAL_ZONES = (
    'for z in /sys/class/thermal/thermal_zone*; do echo "${z##*/} $(cat "$z/type" 2>/dev/null) '
    '$(cat "$z/temp" 2>/dev/null)"; done'
)
#: Device facts in ``@@NAME`` sections: properties, cpuinfo, possible CPUs, per-core frequency and governor, zones.
FACTS = "; ".join([
    "echo @@PROPS", "getprop",
    "echo @@CPUINFO", "cat /proc/cpuinfo 2>/dev/null",
    "echo @@POSSIBLE", "cat /sys/devices/system/cpu/possible 2>/dev/null",
    "echo @@FREQ",
    'for c in /sys/devices/system/cpu/cpu[0-9]*; do echo "${c##*/} $(cat "$c/cpufreq/cpuinfo_max_freq" 2>/dev/null) '
    '$(cat "$c/cpufreq/scaling_governor" 2>/dev/null)"; done',
    "echo @@THERMAL",
    THERMAL_ZONES,
    "echo @@END",
])

_MARK = "@@CARS"
_BEGIN = re.compile(_MARK + r":B:(?P<index>\d+):T:(?P<temps>[^\n]*)")
_END = re.compile(_MARK + r":E:(?P<index>\d+):(?P<rc>-?\d+):T:(?P<temps>[^\n]*)")
_DONE = re.compile(_MARK + r":DONE\b")


def make_folder(path: str) -> str:
    """Creates the folder ``path`` and its parents."""
    return f"mkdir -p {shlex.quote(path)}"


def is_executable(path: str) -> str:
    """Prints ``yes`` if ``path`` is an executable file, else ``no``."""
    return f"[ -x {shlex.quote(path)} ] && echo yes || echo no"


def sha256_of(path: str) -> str:
    """Prints the sha256 of ``path`` (nothing if it is missing)."""
    return f"sha256sum {shlex.quote(path)} 2>/dev/null"


def sha256_listing(folder: str) -> str:
    """Prints ``DIGEST  ./NAME`` for every file in ``folder``."""
    return f"cd {shlex.quote(folder)} && sha256sum ./* 2>/dev/null"


def pid_file(remote_dir: str, run_id: str) -> str:
    """The phone-side file holding the pid of run ``run_id``'s timing batch."""
    if not re.fullmatch(r"[0-9A-Za-z_-]{1,64}", run_id):
        raise ValueError(f"run id {run_id!r} must be 1-64 letters, digits, '-' or '_'")
    return f"{remote_dir}/batch-{run_id}.pid"


def batch_command(
    runner: Runner,
    remote_dir: str,
    entries: Sequence[tuple[str, TimedModel]],
    *,
    runs: int,
    warmup: int,
    threads: int,
    cpu_mask: int | None,
    run_id: str,
) -> str:
    """One shell command timing each ``(remote model path, model)`` in turn, with markers and
    temperatures around each runner call; every path is quoted. Its pid goes to ``pid_file(remote_dir, run_id)``."""
    prefix = ["taskset", format(cpu_mask, "x")] if cpu_mask is not None else []
    runner_path = f"{remote_dir}/{runner.name}"
    pid = shlex.quote(pid_file(remote_dir, run_id))
    lines = [
        f"cd {shlex.quote(remote_dir)} || exit 97",
        f"echo $$ > {pid}",
        f"t() {{ {THERMAL_TEMPS} | tr '\\n' ' '; }}",
    ]
    for index, (remote_path, model) in enumerate(entries):
        argv = prefix + [runner_path] + runner.arguments(
            remote_path, runs=runs, warmup=warmup, threads=threads, input_shapes=model.input_shapes
        )
        lines.append(f'echo "{_MARK}:B:{index}:T:$(t)"')
        lines.append(" ".join(shlex.quote(a) for a in argv) + " 2>&1")
        lines.append(f'r=$?; echo ""; echo "{_MARK}:E:{index}:$r:T:$(t)"')
    lines.append(f"rm -f {pid}; echo {_MARK}:DONE")
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


def batch_started(output: str) -> bool:
    """Whether a batch's output shows its first model starting (else the shell refused the batch)."""
    return _BEGIN.search(output) is not None


def stop_batch(remote_dir: str, run_id: str) -> str:
    """Stops run ``run_id``'s batch whose pid is in its ``pid_file`` if it still runs (its shell's process
    group) and its command line names that pid file (so a reused pid or another run's batch is never hit),
    and removes the pid file."""
    path = pid_file(remote_dir, run_id)
    quoted, name = shlex.quote(path), shlex.quote(path.rsplit("/", 1)[-1])
    return (
        f'p=$(cat {quoted} 2>/dev/null); if [ -n "$p" ] && grep -q {_MARK} /proc/$p/cmdline 2>/dev/null '
        f"&& grep -qF {name} /proc/$p/cmdline 2>/dev/null; "
        f"then kill -TERM -$p 2>/dev/null || kill -TERM $p 2>/dev/null; fi; rm -f {quoted}"
    )
