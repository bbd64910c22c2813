"""Trainer behaviour on the embedded digits and a tiny ImageFolder tree of real PNG files."""
import numpy as np
import pytest
import torch
from PIL import Image

from cars_deploy.errors import CheckpointError
from cars_deploy.space import GENOTYPES, NetworkConfig
from cars_deploy.train import CHECKPOINT_NAME, MODEL_NAME, TrainConfig, Trainer, load_checkpoint, read_model_card

GENOTYPE = GENOTYPES.get("DARTS_V2")
DIGITS_NET = NetworkConfig.cifar(C=4, layers=3, input_size=8)


def _trainer(genotype=GENOTYPE, **changes):
    settings = {"epochs": 3, "batch_size": 32, "lr": 0.05, "max_train_batches": 6, **changes}
    return Trainer(genotype, DIGITS_NET, TrainConfig.cifar(**settings), dataset="digits")


class Killed(Exception):
    """Stands for the process dying right after an epoch's checkpoint reached the disk."""


def test_killed_run_resumes_to_the_uninterrupted_result(tmp_path):
    full = _trainer().fit(tmp_path / "full")

    def die_after_epoch_2(record):
        if record.epoch == 2:
            raise Killed

    with pytest.raises(Killed):
        _trainer().fit(tmp_path / "resumed", on_epoch_end=die_after_epoch_2)
    assert load_checkpoint(tmp_path / "resumed" / CHECKPOINT_NAME).epoch == 2
    assert not (tmp_path / "resumed" / MODEL_NAME).exists()
    torch.manual_seed(1234)  # a new process: the global generator is wherever it happens to be
    resumed = _trainer().fit(tmp_path / "resumed")

    assert (resumed.resumed_from_epoch, resumed.epochs_run, full.epochs_run) == (2, 1, 3)
    assert resumed.test_accuracy == full.test_accuracy
    a, b = load_checkpoint(full.model_path), load_checkpoint(resumed.model_path)
    assert a.model_state.keys() == b.model_state.keys()
    assert all(torch.equal(a.model_state[k], b.model_state[k]) for k in a.model_state)
    strip = lambda history: [(r.epoch, r.lr, r.drop_path, r.train_loss, r.test_accuracy) for r in history]  # noqa: E731
    assert strip(resumed.history) == strip(full.history)
    assert full.history[2].drop_path > 0  # the resumed epoch really drew from the restored generator


def test_resume_refuses_another_run(tmp_path):
    _trainer(epochs=1, max_train_batches=2).fit(tmp_path)
    with pytest.raises(CheckpointError, match="other training settings"):
        _trainer(epochs=1, max_train_batches=2, lr=0.1).fit(tmp_path)
    with pytest.raises(CheckpointError, match="another genotype"):
        _trainer(GENOTYPES.get("CARS_B"), epochs=1, max_train_batches=2).fit(tmp_path)
    _trainer(epochs=1, max_train_batches=2, lr=0.1).fit(tmp_path, resume="never")  # explicit fresh start
    assert load_checkpoint(tmp_path / CHECKPOINT_NAME).train_config["lr"] == 0.1


def test_digits_turn_off_what_8x8_inputs_cannot_use():
    trainer = _trainer()
    assert not trainer.network.auxiliary and trainer.config.auxiliary_weight == 0.0
    assert trainer.config.cutout == 0 and not trainer.config.augment
    assert any("auxiliary head" in note for note in trainer.notes)


def _image_folder(root, rng):
    for split, count in (("train", 6), ("test", 2)):
        for label in ("cat", "dog"):
            folder = root / split / label
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")


def test_image_training_uses_auxiliary_head_cutout_and_drop_path(tmp_path, rng):
    _image_folder(tmp_path / "data", rng)
    network = NetworkConfig.cifar(C=4, layers=3, num_classes=2, input_size=32)
    config = TrainConfig.cifar(epochs=2, batch_size=4)
    trainer = Trainer(GENOTYPE, network, config, dataset="imagefolder", data_dir=tmp_path / "data")
    assert trainer.network.auxiliary and trainer.config == config
    head_before = {k: v.clone() for k, v in trainer.model.auxiliary_head.state_dict().items()}
    result = trainer.fit(tmp_path / "out")

    assert all(np.isfinite(r.train_loss) for r in result.history) and result.history[1].drop_path == pytest.approx(0.1)
    head_after = trainer.model.auxiliary_head.state_dict()
    assert any(not torch.equal(head_before[k], head_after[k]) for k in head_before)  # it got gradients
    assert any(k.startswith("auxiliary_head.") for k in load_checkpoint(result.checkpoint_path).model_state)
    raw = torch.load(result.model_path, weights_only=True)
    assert not any(k.startswith("auxiliary_head.") for k in raw["model_state"])
    card = read_model_card(result.card_path)
    assert card["class_names"] == ["cat", "dog"] and card["input"]["shape"] == [1, 3, 32, 32]
    assert card["weights"] == "trained" and card["training"]["cutout"] == 16 and card["params"] > 0
