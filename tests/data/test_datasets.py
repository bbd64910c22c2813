import numpy as np
import pytest
import torch
from PIL import Image

from cars_deploy.data import dataset_info, load_dataset, split_train_val
from cars_deploy.data.datasets import Cutout
from cars_deploy.errors import UserInputError


def test_embedded_digits_are_real_and_split_disjointly():
    train, test = load_dataset("digits", split="train"), load_dataset("digits", split="test")
    assert len(train) + len(test) == 1797 and len(test) == 359
    x, y = train[0]
    assert x.shape == (3, 8, 8) and 0 <= int(y) < 10
    assert torch.equal(x[0], x[1])  # grey repeated over three channels
    labels = {int(y) for _, y in test}
    assert labels == set(range(10))


def test_search_split_is_seeded_and_disjoint():
    data = load_dataset("digits", split="train")
    a_train, a_val = split_train_val(data, seed=3)
    b_train, b_val = split_train_val(data, seed=3)
    assert a_val.indices == b_val.indices
    assert not set(a_train.indices) & set(a_val.indices)
    assert abs(len(a_train) - len(a_val)) <= 1


def _write_imagefolder(root, classes=("cat", "dog"), per_class=3, size=12):
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for name in classes:
            (root / split / name).mkdir(parents=True)
            for i in range(per_class):
                Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(root / split / name / f"{i}.jpg")


def test_imagefolder_reads_the_real_layout(tmp_path):
    _write_imagefolder(tmp_path)
    info = dataset_info("imagefolder", tmp_path, input_size=16)
    assert info.class_names == ("cat", "dog") and info.num_classes == 2
    data = load_dataset("imagefolder", split="train", data_dir=tmp_path, augment=True, cutout=4, input_size=16)
    assert len(data) == 6 and data[0][0].shape == (3, 16, 16)


def test_missing_data_is_a_clear_error(tmp_path):
    with pytest.raises(UserInputError, match="not a folder"):
        load_dataset("cifar10", split="train", data_dir=tmp_path)
    with pytest.raises(UserInputError, match="unknown dataset"):
        dataset_info("mnist")


def test_cutout_zeroes_a_square():
    out = Cutout(4)(torch.ones(3, 16, 16))
    zeros = (out == 0).all(dim=0).sum().item()
    assert 4 <= zeros <= 16
