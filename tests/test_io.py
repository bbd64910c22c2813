import os
import pickle

import pytest
import torch

from cars_deploy._io import atomic_torch_save, atomic_write_text


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path):
    target = tmp_path / "sub" / "table.csv"
    atomic_write_text(target, "a\n")
    atomic_write_text(target, "b\n")
    assert target.read_text() == "b\n"
    assert os.listdir(target.parent) == ["table.csv"]


def test_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "ckpt.pt"
    atomic_torch_save(target, {"w": torch.ones(2)})
    with pytest.raises((pickle.PicklingError, AttributeError)):  # lambdas: by name, local ones: not found
        atomic_torch_save(target, {"bad": lambda: None})  # not picklable
    assert torch.equal(torch.load(target, weights_only=True)["w"], torch.ones(2))
    assert os.listdir(tmp_path) == ["ckpt.pt"]


def test_atomic_write_gives_normal_permissions(tmp_path):
    target = tmp_path / "card.json"
    old = os.umask(0o022)
    try:
        atomic_write_text(target, "{}")
    finally:
        os.umask(old)
    assert target.stat().st_mode & 0o777 == 0o644
