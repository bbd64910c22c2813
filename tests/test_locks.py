"""Locks (cars_deploy._locks) and the atomic writers' temporary-file cleanup (cars_deploy._io)."""
from __future__ import annotations

import os
import signal

import pytest

from cars_deploy._io import atomic_write_text, remove_stale_temps
from cars_deploy._locks import hold_lock, lock_path
from cars_deploy.errors import UserInputError
from tests.lock_holder import start_holder


def test_a_second_process_is_refused_naming_the_holder_and_a_killed_holder_blocks_nothing(tmp_path):
    target = tmp_path / "run"
    holder = start_holder("path", target)
    try:
        with pytest.raises(UserInputError) as refused:
            hold_lock(target, what="search run X")
        message = str(refused.value)
        assert "\n" not in message and message.startswith("search run X is in use by process ")
        assert f"process {holder.pid} on " in message and "lock_holder" in message
    finally:
        holder.send_signal(signal.SIGKILL)  # as a crash: no release, no cleanup
        holder.wait()
    with hold_lock(target, what="search run X") as held:  # the OS dropped the dead holder's lock
        assert held.path == lock_path(target)
    assert not target.exists() and list(tmp_path.iterdir()) == []  # nothing is created beside the target


def test_locks_are_reentrant_in_one_process_and_the_info_file_goes_with_the_last_release(tmp_path):
    outer = hold_lock(tmp_path / "t.csv", what="table")
    inner = hold_lock(tmp_path / "t.csv", what="table")
    info = outer.path.with_name(outer.path.name + ".info")
    assert str(os.getpid()) in info.read_text()
    inner.release()
    inner.release()  # a second release of one hold does nothing
    assert info.exists()
    outer.release()
    assert not info.exists()


def test_lock_paths_differ_per_target_and_survive_odd_names(tmp_path):
    odd = tmp_path / "a b;$(rm -rf x)\n"
    assert lock_path(odd) != lock_path(tmp_path / "a b")
    assert lock_path(tmp_path / "x" / ".." / "y") == lock_path(tmp_path / "y")
    with hold_lock(odd, what="odd"):
        pass


def test_only_the_atomic_writers_temporaries_are_removed(tmp_path):
    atomic_write_text(tmp_path / "pareto.csv", "a\n")
    stale = [tmp_path / ".checkpoint.pt.k2j_9x0q.tmp", tmp_path / ".pareto.csv.abcdefgh.tmp"]
    kept = [tmp_path / "notes.tmp", tmp_path / ".pareto.csv.tmp", tmp_path / ".x.abc.tmp", tmp_path / "pareto.csv"]
    for path in stale + kept[:-1]:
        path.write_text("x")
    (tmp_path / ".folder.abcdefgh.tmp").mkdir()  # a folder is never removed
    assert remove_stale_temps(tmp_path, names={"pareto.csv"}) == [stale[1]]
    assert sorted(remove_stale_temps(tmp_path)) == sorted(stale[:1])
    assert all(p.exists() for p in kept) and (tmp_path / ".folder.abcdefgh.tmp").is_dir()
    assert remove_stale_temps(tmp_path / "absent") == []
