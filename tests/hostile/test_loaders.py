"""Hostile files read by the library's loaders directly (the same loaders the commands use): each is a
``UserInputError`` (exit 2) naming the file and the field, and the file is left as it was."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from cars_deploy.errors import UserInputError
from cars_deploy.profilers.protocol import SampleStore
from cars_deploy.search.config import SearchConfig
from cars_deploy.space import NetworkConfig
from cars_deploy.train import read_model_card
from cars_deploy.train.config import TrainConfig

SETTINGS = {"device": "local", "runs": 5}


def _partial(path: Path, samples: object, settings: object = SETTINGS) -> SampleStore:
    path.write_text(json.dumps({"settings": settings, "samples": samples}))
    return SampleStore.open(path, SETTINGS)


PARTIAL_FILES = {
    "samples is a list": ([], "'samples'"),
    "rounds are a list": ({"m": [1]}, "samples.m"),
    "round key is not a number": ({"m": {"x": {"ms": 1.0, "runs": 5}}}, "samples.m.x"),
    "ms is text": ({"m": {"0": {"ms": "1", "runs": 5}}}, "samples.m.0.ms"),
    "ms is negative": ({"m": {"0": {"ms": -1.0, "runs": 5}}}, "samples.m.0.ms"),
    "runs is zero": ({"m": {"0": {"ms": 1.0, "runs": 0}}}, "samples.m.0.runs"),
    "sample is a number": ({"m": {"0": 3}}, "samples.m.0.ms"),
}


@pytest.mark.parametrize("samples, fragment", PARTIAL_FILES.values(), ids=list(PARTIAL_FILES))
def test_partial_file_with_fields_of_the_wrong_type(samples, fragment, tmp_path):
    path = tmp_path / "t.partial.json"
    with pytest.raises(UserInputError, match=str(path)) as caught:
        _partial(path, samples)
    assert fragment in str(caught.value) and "\n" not in str(caught.value)
    assert json.loads(path.read_text())["samples"] == samples  # left as it was


def test_partial_file_whose_settings_is_a_list(tmp_path):
    with pytest.raises(UserInputError, match="'settings'"):
        _partial(tmp_path / "p.json", {}, settings=[1])


def test_partial_file_that_is_valid_resumes(tmp_path):
    store = _partial(tmp_path / "p.json", {"m": {"0": {"ms": 1.5, "runs": 5}}})
    assert store.count() == 1 and store.values("m").tolist() == [1.5]


SEARCH_CONFIGS = {
    "C is a string": ({"C": "8"}, "'C'"),
    "objectives is a string": ({"objectives": "params"}, "'objectives'"),
    "seed is a float": ({"seed": 1.5}, "'seed'"),
    "selection unknown": ({"selection": "random"}, "'selection'"),
    "augment is a number": ({"augment": 1}, "'augment'"),
    "max_train_batches is a list": ({"max_train_batches": [1]}, "'max_train_batches'"),
}


@pytest.mark.parametrize("change, fragment", SEARCH_CONFIGS.values(), ids=list(SEARCH_CONFIGS))
def test_search_config_with_fields_of_the_wrong_type(change, fragment):
    with pytest.raises(UserInputError, match="config.json") as caught:
        SearchConfig.from_dict({**SearchConfig().to_dict(), **change}, where="run/config.json")
    assert fragment in str(caught.value)


@pytest.mark.parametrize("change", [{"lr": float("nan")}, {"weight_decay": float("inf")}, {"seed": -1}, {"seed": 2**40},
                                    {"epochs": "3"}, {"drop_path": 1.0}, {"schedule": 3}])
def test_train_config_out_of_range_or_wrong_type(change):
    with pytest.raises(UserInputError, match="ckpt"):
        TrainConfig.from_dict({**TrainConfig().to_dict(), **change}, where="ckpt")


@pytest.mark.parametrize("change", [{"C": 200_000}, {"layers": 100_000}, {"input_size": 64_000}, {"num_classes": -1},
                                    {"C": "8"}, {"layers": 3.0}])
def test_network_config_sizes_are_bounded(change):
    with pytest.raises(UserInputError):
        NetworkConfig.cifar(**change).validate()


@pytest.mark.parametrize("card, fragment", [
    ([1, 2], "(top level)"),
    ({"genotype": 7, "network": {}, "input": {}, "class_names": [], "weights": "random"}, "'genotype'"),
    ({"genotype": "x", "network": {"C": "8"}, "input": {}, "class_names": [], "weights": "random"}, "network.C"),
], ids=["list", "genotype an integer", "C a string"])
def test_model_card_with_fields_of_the_wrong_type(card, fragment, tmp_path):
    path = tmp_path / "model_card.json"
    path.write_text(json.dumps(card))
    with pytest.raises(UserInputError, match="model_card.json") as caught:
        read_model_card(path)
    assert fragment in str(caught.value)
