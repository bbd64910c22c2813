import math

import pytest
import torch

from cars_deploy.errors import UserInputError
from cars_deploy.train import PRESET_NETWORK, PRESETS, TrainConfig


def test_defaults_are_the_darts_cifar_protocol():
    c = TrainConfig.cifar()
    assert (c.epochs, c.batch_size, c.lr, c.lr_min, c.momentum, c.weight_decay) == (600, 96, 0.025, 0.0, 0.9, 3e-4)
    assert (c.schedule, c.cutout, c.auxiliary_weight, c.drop_path, c.grad_clip) == ("cosine", 16, 0.4, 0.2, 5.0)
    assert c == TrainConfig()


def test_imagenet_preset_is_section_4_3():
    c = TrainConfig.imagenet()
    assert (c.epochs, c.batch_size, c.lr, c.warmup_epochs, c.schedule) == (250, 640, 0.5, 5, "linear")
    assert (c.momentum, c.weight_decay, c.label_smoothing, c.auxiliary_weight) == (0.9, 3e-5, 0.1, 0.4)
    d = TrainConfig.darts_imagenet()
    assert (d.lr, d.batch_size, d.schedule, d.step_gamma, d.weight_decay, d.label_smoothing) == (0.1, 128, "step", 0.97, 3e-5, 0.1)
    assert set(PRESETS) == set(PRESET_NETWORK) and PRESET_NETWORK["imagenet"] == "imagenet"


def test_cosine_factor_matches_torch_cosine_annealing():
    config = TrainConfig.cifar(epochs=7, lr=0.1, lr_min=0.001)
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=config.lr)
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs, eta_min=config.lr_min)
    for epoch in range(config.epochs):
        assert config.lr * config.lr_factor(epoch) == pytest.approx(optimizer.param_groups[0]["lr"], rel=1e-9)
        optimizer.step()
        cosine.step()


def test_warmup_then_linear_and_step_schedules():
    linear = TrainConfig.imagenet(epochs=10)
    assert [linear.lr_factor(e) for e in range(5)] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    assert linear.lr_factor(5) == 1.0 and linear.lr_factor(9) == pytest.approx(0.2)
    step = TrainConfig.darts_imagenet()
    assert step.lr_factor(0) == 1.0 and step.lr_factor(10) == pytest.approx(0.97**10)


def test_drop_path_ramps_linearly_from_zero():
    c = TrainConfig.cifar(epochs=4)
    assert [c.drop_path_at(e) for e in range(4)] == pytest.approx([0.0, 0.05, 0.1, 0.15])


@pytest.mark.parametrize(
    "change",
    [{"epochs": 0}, {"lr": -1.0}, {"drop_path": 1.0}, {"cutout": -2}, {"schedule": "exp"}, {"warmup_epochs": 9, "epochs": 5},
     {"max_train_batches": 0}, {"label_smoothing": 1.0}],
)
def test_invalid_settings_are_user_errors(change):
    with pytest.raises(UserInputError):
        TrainConfig.cifar(**change).validate()


def test_dict_round_trip_and_unknown_keys():
    c = TrainConfig.imagenet(seed=3)
    assert TrainConfig.from_dict(c.to_dict()) == c
    with pytest.raises(UserInputError, match="unknown setting"):
        TrainConfig.from_dict({**c.to_dict(), "lr_decay": 0.5})
    assert not math.isnan(c.lr_factor(0))
