"""``--adb-key PATH``: a key is created only where nothing is, and never replaces or litters a file."""
from __future__ import annotations

import stat

import pytest

from cars_deploy.cli.profile import main
from cars_deploy.errors import UserInputError
from cars_deploy.profilers.adb_transport import ensure_adb_key


def _snapshot(folder):
    return {p.relative_to(folder): (p.read_bytes() if p.is_file() else None, stat.S_IMODE(p.lstat().st_mode))
            for p in folder.rglob("*")}


@pytest.mark.parametrize("case", ["not-a-key", "binary", "empty", "key-without-pub", "lone-pub", "folder", "pub-is-folder"])
def test_anything_but_a_key_pair_is_refused_and_left_as_it_is(tmp_path, case, adb_key):
    path = tmp_path / "adbkey"
    public = tmp_path / "adbkey.pub"
    if case == "not-a-key":
        path.write_text("my notes, not a key\n")
        public.write_text("not a public key either\n")
    elif case == "binary":
        path.write_bytes(bytes(range(256)) * 4)
        public.write_bytes(b"\x00")
    elif case == "empty":
        path.write_bytes(b"")
        public.write_bytes(b"")
    elif case == "key-without-pub":
        path.write_bytes(adb_key.read_bytes())
    elif case == "lone-pub":
        public.write_text("AAAA pub\n")
    elif case == "folder":
        path.mkdir()
    elif case == "pub-is-folder":
        path.write_bytes(adb_key.read_bytes())
        public.mkdir()
    before = _snapshot(tmp_path)
    with pytest.raises(UserInputError) as refused:
        ensure_adb_key(path)
    assert "\n" not in str(refused.value) and str(path) in str(refused.value)
    assert _snapshot(tmp_path) == before  # nothing replaced, tightened or created (no stray .pub)


def test_a_key_is_created_where_nothing_is_and_a_pair_is_reused(tmp_path):
    path = tmp_path / "keys" / "adbkey"
    assert ensure_adb_key(path) == path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == ["adbkey", "adbkey.pub"]  # no temporary folder left
    private = path.read_bytes()
    assert ensure_adb_key(path) == path and path.read_bytes() == private


def test_a_key_under_a_file_is_a_one_line_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserInputError, match="cannot create the key"):
        ensure_adb_key(tmp_path / "file" / "adbkey")
    assert [p.name for p in tmp_path.iterdir()] == ["file"]


def test_cars_profile_with_a_file_that_is_not_a_key_exits_2_and_keeps_it(tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("important\n")
    notes.chmod(0o644)
    before = _snapshot(tmp_path)
    # An unreachable phone: the key is checked before any connection is tried.
    code = main(["--device", "adb:127.0.0.1:9", "--adb-key", str(notes), "--out", str(tmp_path / "t"),
                 "--cache-dir", str(tmp_path / "cache")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "--adb-key" in err and "Traceback" not in err, err
    assert {k: v for k, v in _snapshot(tmp_path).items() if k.parts[0] != "cache"} == before
