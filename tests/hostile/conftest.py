"""Helpers of the hostile-input table: run a console script in-process inside a scratch folder and
report its exit code, its stderr, and every file it created, changed or removed."""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import pytest

from cars_deploy.cli import export, inspect, profile, search, train

MAINS: dict[str, Callable[[Sequence[str]], int]] = {
    "cars-train": train.main,
    "cars-search": search.main,
    "cars-profile": profile.main,
    "cars-export": export.main,
    "cars-inspect": inspect.main,
}


def snapshot(root: Path) -> dict[str, str]:
    """Relative path -> content digest ('dir' for folders) of everything under ``root``."""
    state = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames:
            state[os.path.relpath(os.path.join(dirpath, name), root)] = "dir"
        for name in filenames:
            path = os.path.join(dirpath, name)
            state[os.path.relpath(path, root)] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return state


@dataclass
class Outcome:
    code: int
    err: str
    before: dict[str, str]
    after: dict[str, str]

    def assert_refused(self, prog: str, code: int, fragment: str) -> None:
        """Exit ``code``, exactly one error line (the last one, naming ``fragment``), no traceback, and
        nothing created, changed or removed."""
        lines = [line for line in self.err.splitlines() if line.strip()]
        errors = [line for line in lines if f"{prog}: error:" in line or "internal error" in line]
        assert self.code == code, self.err
        assert len(errors) == 1 and lines[-1] == errors[0], self.err
        assert "Traceback" not in self.err
        assert fragment.lower() in errors[0].lower(), errors[0]
        assert self.after == self.before, "files changed: " + str(set(self.after.items()) ^ set(self.before.items()))


@pytest.fixture
def run_cli(tmp_path, monkeypatch, capsys) -> Callable[[str, Sequence[str]], Outcome]:
    """Runs ``prog argv`` with the working folder ``tmp_path`` (and the user cache there too)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path.parent / f"{tmp_path.name}-cache"))

    def run(prog: str, argv: Sequence[str]) -> Outcome:
        capsys.readouterr()
        before = snapshot(tmp_path)
        try:
            code = MAINS[prog](list(argv))
        except SystemExit as exc:  # usage errors: argparse exits with the code
            code = int(exc.code or 0)
        err = capsys.readouterr().err
        return Outcome(code, err, before, snapshot(tmp_path))

    return run
