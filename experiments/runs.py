"""Searches and retraining runs of the experiments: the product's own commands, resumable and cached.

Each search is a ``cars-search`` run folder and each retraining a ``cars-train`` output folder under the
work folder (``runs/experiments`` by default, outside version control). The folder's name is a hash
of the command's settings, so:

- running an experiment again continues each run where it stopped (``cars-search --resume``;
  ``cars-train`` resumes its own folder by itself) and skips the runs that are finished;
- two experiments that need the same run share it: experiments 2 and 3 reuse the pNSGA-III search of
  experiment 1, and a genotype picked twice is trained once.

The commands are called in-process through their ``main(argv)`` (the same code path as the console
scripts, with the same one-line errors); a failed command raises ``RunError``. An advisory lock
(``fcntl.flock`` on ``<folder>.lock``) stops two experiment processes from writing the same run at
once; the kernel releases it when a process dies, so a killed run never leaves a stale lock. Two
experiments may therefore run side by side (experiments 2 and 3 on one core each): a search held by
the other process is waited for, and a retraining run it holds is put off until the end of the list
and then waited for, so neither process trains a model twice or idles while there is other work.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import torch

from cars_deploy.errors import CarsError
from cars_deploy.search.rundir import RunDir

from .records import ResultsDir

__all__ = [
    "RunBusy",
    "RunError",
    "SearchRun",
    "TrainedModel",
    "command_text",
    "retrain",
    "run_key",
    "run_search",
    "search_folder",
    "train_command",
    "train_dir",
    "train_each",
]

log = logging.getLogger("experiments")


class RunError(CarsError):
    """A ``cars-search`` or ``cars-train`` run failed; its own one-line message was printed above. The exit
    code is the command's (2 for bad input such as a damaged checkpoint, 1 for a failure)."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


def _check(prog: str, status: int, folder: Path) -> None:
    """Turns a command's exit status into the outcome a direct call would have had."""
    if status == 130:  # the command caught Ctrl-C and said "interrupted": stop this process the same way
        raise KeyboardInterrupt
    if status != 0:
        raise RunError(f"{prog} exited with status {status} on {folder}", status)


def run_key(argv: Sequence[str]) -> str:
    """A short stable name for a command's settings."""
    return hashlib.sha256(json.dumps(list(argv)).encode()).hexdigest()[:12]


def command_text(prog: str, argv: Sequence[str]) -> str:
    """The command as a user would type it (shell-quoted)."""
    return shlex.join([prog, *argv])


class RunBusy(CarsError):
    """Another experiment process is writing this run folder right now."""


@contextlib.contextmanager
def _locked(folder: Path, *, wait: bool) -> Iterator[None]:
    """Holds the advisory lock of ``folder``. When another process holds it: waits for it (``wait``)
    or raises ``RunBusy`` at once."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    lock_path = folder.with_name(folder.name + ".lock")
    with open(lock_path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not wait:
                raise RunBusy(f"{folder} is being written by another experiment process") from None
            log.info("waiting for another experiment process to finish %s", folder)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@dataclass(frozen=True)
class SearchRun:
    """A finished (or stopped) ``cars-search`` run folder."""

    path: Path  # the run folder (config.json, history.jsonl, population.csv, pareto.csv, checkpoint.pt)
    command: str  # the cars-search command that made it
    seconds: float  # wall time this call spent on it (0 when it was already finished)

    def history(self) -> list[dict[str, Any]]:
        return RunDir(self.path).read_history()


def _finished(run: Path) -> bool:
    if not (run / "config.json").is_file():
        return False
    _, config = RunDir.open(run)
    return len(RunDir(run).read_history()) >= config.n_generations + 1


def _check_settings(run: Path, argv: Sequence[str]) -> None:
    """Refuses to reuse or resume ``run`` when the settings it was made with are not the ones ``argv`` gives
    now. Runs are keyed by their command line, so a changed default (the op set, the warmup path sampling)
    leaves the key as it was; without this check an old run would silently stand in for a new one."""
    from cars_deploy.cli.search import config_from_argv

    wanted = config_from_argv([*argv, "--out", str(run)]).to_dict()
    _, saved_config = RunDir.open(run)
    saved = saved_config.to_dict()
    changed = [key for key in wanted if key != "preset" and saved.get(key) != wanted[key]]
    if changed:
        shown = "; ".join(f"{key}: {saved.get(key)!r} -> {wanted[key]!r}" for key in changed[:3])
        raise RunError(f"{run} was made with other search settings ({shown}), e.g. an earlier default; "
                       "delete it or choose another --work-dir", 2)


def search_folder(argv: Sequence[str], *, work_dir: Path, name: str) -> SearchRun:
    """The run folder and command ``run_search`` gives the search with settings ``argv``, without running
    it: for an experiment whose picks from that search are already saved in its results, so that its
    retraining resumes on a machine where the search folder (under ``runs/``, outside the repository)
    is gone, rather than spending an hour on the search again."""
    run = work_dir / "searches" / f"{name}-{run_key(argv)}"
    return SearchRun(run, command_text("cars-search", [*argv, "--out", str(run)]), 0.0)


def run_search(argv: Sequence[str], *, work_dir: Path, name: str, threads: int, device: str,
               wait: bool = True) -> SearchRun:
    """Runs (or resumes, or reuses) the ``cars-search`` run with settings ``argv`` under ``work_dir/searches``;
    waits while another experiment process runs it, then reuses it (with ``wait=False``, raises
    ``RunBusy`` instead, so a caller with several searches can take another one first). A folder made
    with other settings than ``argv`` now gives (a default changed since) is refused, not reused."""
    from cars_deploy.cli.search import main as cars_search

    planned = search_folder(argv, work_dir=work_dir, name=name)
    run, command = planned.path, planned.command
    with _locked(run, wait=wait):
        if (run / "config.json").is_file():
            _check_settings(run, argv)
        if _finished(run):
            return SearchRun(run, command, 0.0)
        extra = ["--threads", str(threads), "--device", device]
        if (run / "config.json").is_file():
            log.info("resuming search %s", run)
            call = ["--resume", str(run), *extra]
        else:
            log.info("starting search: %s", command)
            call = [*argv, "--out", str(run), *extra]
        began = time.perf_counter()
        status = cars_search(call)
        seconds = time.perf_counter() - began
    _check("cars-search", status, run)
    if not _finished(run):
        raise RunError(f"cars-search returned but {run} is not finished")
    return SearchRun(run, command, seconds)


@dataclass(frozen=True)
class TrainedModel:
    """A retrained genotype: the model card cars-train wrote, and what the run cost."""

    path: Path  # the cars-train output folder
    command: str  # the cars-train command
    test_accuracy: float  # top-1 on the test split after the last epoch
    test_images: int  # images it was tested on
    params: int  # parameters of the retrained network (no auxiliary head)
    mult_adds: int  # its mult-adds
    train_seconds: float  # wall time of its epochs (from the card's history)
    history: list[dict[str, Any]]  # per-epoch records (loss, accuracy, test accuracy when evaluated)
    seconds: float  # wall time this call spent (0 when it was already trained)


def _read_card(path: Path, command: str, seconds: float) -> TrainedModel:
    card = json.loads((path / "model_card.json").read_text())
    history = card.get("history", [])
    return TrainedModel(
        path=path,
        command=command,
        test_accuracy=float(card["accuracy"]["top1"]),
        test_images=int(card["accuracy"].get("images") or 0),
        params=int(card["params"]),
        mult_adds=int(card["mult_adds"]),
        train_seconds=float(sum(r.get("seconds", 0.0) for r in history)),
        history=history,
        seconds=seconds,
    )


def train_dir(argv: Sequence[str], *, work_dir: Path) -> Path:
    """The ``cars-train`` output folder of the run with settings ``argv``."""
    return work_dir / "train" / run_key(argv)


def train_command(argv: Sequence[str], *, work_dir: Path) -> str:
    """The ``cars-train`` command of the run with settings ``argv``, as a user would type it."""
    return command_text("cars-train", [*argv, "--out", str(train_dir(argv, work_dir=work_dir))])


def retrain(argv: Sequence[str], *, work_dir: Path, threads: int, device: str, wait: bool = True) -> TrainedModel:
    """Trains (or resumes, or reuses) the ``cars-train`` run with settings ``argv`` under ``work_dir/train``.
    While another experiment process trains it: waits and reuses its model, or raises ``RunBusy``
    when ``wait`` is false."""
    from cars_deploy.cli.train import main as cars_train

    out = train_dir(argv, work_dir=work_dir)
    command = train_command(argv, work_dir=work_dir)
    with _locked(out, wait=wait):
        if (out / "model_card.json").is_file():
            return _read_card(out, command, 0.0)
        torch.set_num_threads(threads)  # cars-train has no --threads flag; it keeps the process's setting
        began = time.perf_counter()
        status = cars_train([*argv, "--out", str(out), "--device", device])
        seconds = time.perf_counter() - began
    _check("cars-train", status, out)
    return _read_card(out, command, seconds)


def train_each(
    items: Sequence[Mapping[str, Any]],
    *,
    key: str,
    argv_of: Callable[[Mapping[str, Any]], list[str]],
    results: ResultsDir,
    name: str,
    work_dir: Path,
    threads: int,
    device: str,
    after_each: Callable[[list[dict[str, Any]]], None] | None = None,
    wait_for_busy: bool = True,
) -> list[dict[str, Any]]:
    """Retrains every item not yet in the JSONL file ``name`` of ``results`` (items are told apart by
    ``item[key]``), appending one record per model as soon as it is trained: the item's fields plus the
    card's test accuracy, size and cost. ``after_each`` gets all records so far after each model (and
    once at the start), so the analysis is always up to date. A model that another experiment process
    is training right now is put off until the others are done, then waited for; with
    ``wait_for_busy=False`` it is left to that process, so a caller with several lists can move on to
    the next one instead of idling (and call again with waiting at the end). Returns all records."""
    records = results.read_jsonl(name)
    done = {record[key] for record in records}
    if after_each is not None and records:
        after_each(records)
    todo = [(position, item) for position, item in enumerate(items, start=1) if item[key] not in done]
    put_off = []
    # First pass: skip what the other process holds. Second pass: wait for those, then reuse them.
    passes = ((False, todo), (True, put_off)) if wait_for_busy else ((False, todo),)
    for wait, batch in passes:
        for position, item in batch:
            log.info("retraining %d of %d (%s=%s)", position, len(items), key, item[key])
            try:
                model = retrain(argv_of(item), work_dir=work_dir, threads=threads, device=device, wait=wait)
            except RunBusy:
                log.info("another experiment process is training %s=%s; coming back to it later", key, item[key])
                put_off.append((position, item))
                continue
            # The other process may have recorded it since this one read the file (it trained the model
            # this one just reused): keep its record rather than write a second one.
            recorded = {r[key]: r for r in results.read_jsonl(name)}
            record = recorded.get(item[key]) or {
                **item,
                "test_accuracy": model.test_accuracy,
                "test_images": model.test_images,
                "params_trained": model.params,
                "mult_adds_trained": model.mult_adds,
                "train_seconds": round(model.train_seconds, 1),
                "run": str(model.path),
            }
            if item[key] not in recorded:
                results.append(name, record)
                results.add_seconds("retraining", model.seconds)
            records.append(record)
            if after_each is not None:
                after_each(records)
    return records
