"""Training settings for retraining a genotype from scratch: the DARTS/CARS evaluation protocols.

CARS retrains every searched architecture with "all the training parameters the same as DARTS"
(paper section 4.2): SGD with momentum 0.9, learning rate 0.025 annealed by a cosine to 0, weight decay
3e-4, batch 96, Cutout 16, an auxiliary classifier weighted 0.4, drop path 0.2 ramped linearly over
the epochs, gradient norm clipped at 5, 600 epochs. ``TrainConfig.cifar()`` is that protocol.

``TrainConfig.imagenet()`` is the ILSVRC2012 protocol of paper section 4.3: 250 epochs, batch 640,
learning rate 0.5 warmed up linearly for 5 epochs then decayed linearly, momentum 0.9, weight decay
3e-5, label smoothing 0.1 (plus the DARTS auxiliary weight 0.4 and gradient clip 5, which the paper
keeps from DARTS). ``TrainConfig.darts_imagenet()`` is DARTS' own ImageNet protocol (quark0/darts
``train_imagenet.py``: lr 0.1, batch 128, decay by 0.97 every epoch), for comparison with DARTS.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any, Callable, Literal

from .._fields import check_finite, dataclass_from_dict
from ..errors import UserInputError

__all__ = ["PRESETS", "PRESET_NETWORK", "Schedule", "TrainConfig"]

Schedule = Literal["cosine", "linear", "step"]
_SCHEDULES: tuple[str, ...] = ("cosine", "linear", "step")
#: Seeds are 32-bit unsigned wherever they are used (numpy, torch, DataLoader workers).
MAX_SEED = 2**32 - 1


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one retraining run; the defaults are the DARTS CIFAR-10 protocol (section 4.2)."""

    epochs: int = 600  # passes over the training set
    batch_size: int = 96  # images per SGD step
    lr: float = 0.025  # initial (peak, after warm-up) learning rate
    lr_min: float = 0.0  # learning rate the cosine schedule anneals to
    momentum: float = 0.9  # SGD momentum
    weight_decay: float = 3e-4  # L2 penalty applied by SGD to every parameter
    schedule: Schedule = "cosine"  # per-epoch learning-rate schedule: cosine to lr_min, linear to 0, or step
    warmup_epochs: int = 0  # epochs of linear warm-up from lr / warmup_epochs to lr before the schedule
    step_gamma: float = 0.97  # factor applied to the learning rate every epoch by the "step" schedule
    label_smoothing: float = 0.0  # cross-entropy label smoothing (0.1 in the ImageNet protocols)
    auxiliary_weight: float = 0.4  # weight of the auxiliary-head loss; 0 trains without the head
    drop_path: float = 0.2  # final drop-path probability, ramped linearly from 0 over the epochs (DARTS)
    cutout: int = 16  # side of the Cutout square on training images; 0 turns it off
    augment: bool = True  # random crop (4-pixel padding) and horizontal flip on training images
    grad_clip: float = 5.0  # maximum gradient L2 norm; 0 turns clipping off
    seed: int = 0  # seeds the weights, the data order, augmentation and drop path
    max_train_batches: int | None = None  # stop each epoch after this many batches (quick runs); None: all
    max_test_images: int | None = None  # test on a fixed random subset of this many images; None: all

    # ----- presets ------------------------------------------------------------------------------
    @classmethod
    def cifar(cls, **changes: Any) -> "TrainConfig":
        """The DARTS CIFAR-10 evaluation protocol that CARS uses (section 4.2)."""
        return replace(cls(), **changes)

    @classmethod
    def imagenet(cls, **changes: Any) -> "TrainConfig":
        """The CARS ILSVRC2012 protocol (section 4.3): 250 epochs, batch 640, lr 0.5 with 5 warm-up
        epochs and linear decay, weight decay 3e-5, label smoothing 0.1; no Cutout nor drop path."""
        base = cls(
            epochs=250,
            batch_size=640,
            lr=0.5,
            schedule="linear",
            warmup_epochs=5,
            weight_decay=3e-5,
            label_smoothing=0.1,
            auxiliary_weight=0.4,
            drop_path=0.0,
            cutout=0,
        )
        return replace(base, **changes)

    @classmethod
    def darts_imagenet(cls, **changes: Any) -> "TrainConfig":
        """DARTS' ImageNet protocol: 250 epochs, batch 128, lr 0.1 decayed by 0.97 each epoch, weight
        decay 3e-5, label smoothing 0.1, auxiliary weight 0.4; no Cutout nor drop path."""
        base = cls(
            epochs=250,
            batch_size=128,
            lr=0.1,
            schedule="step",
            step_gamma=0.97,
            weight_decay=3e-5,
            label_smoothing=0.1,
            auxiliary_weight=0.4,
            drop_path=0.0,
            cutout=0,
        )
        return replace(base, **changes)

    # ----- checks and forms ------------------------------------------------------------------------
    def validate(self) -> None:
        """Raises ``UserInputError`` naming the first setting that no run can use."""
        check_finite(self, "training settings")
        if self.seed > MAX_SEED:
            raise UserInputError(f"seed must be in 0..{MAX_SEED}, got {self.seed}")
        positive = {"epochs": self.epochs, "batch_size": self.batch_size, "lr": self.lr}
        for name, value in positive.items():
            if not value > 0:
                raise UserInputError(f"{name} must be positive, got {value}")
        non_negative = {
            "lr_min": self.lr_min,
            "momentum": self.momentum,
            "weight_decay": self.weight_decay,
            "warmup_epochs": self.warmup_epochs,
            "auxiliary_weight": self.auxiliary_weight,
            "cutout": self.cutout,
            "grad_clip": self.grad_clip,
            "seed": self.seed,
        }
        for name, value in non_negative.items():
            if value < 0:
                raise UserInputError(f"{name} must not be negative, got {value}")
        if self.schedule not in _SCHEDULES:
            raise UserInputError(f"unknown schedule {self.schedule!r}; expected one of {', '.join(_SCHEDULES)}")
        if self.warmup_epochs >= self.epochs and self.warmup_epochs > 0:
            raise UserInputError(f"warmup_epochs ({self.warmup_epochs}) must be fewer than epochs ({self.epochs})")
        if not 0.0 <= self.drop_path < 1.0:
            raise UserInputError(f"drop_path must be in [0, 1), got {self.drop_path}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise UserInputError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if not 0.0 < self.step_gamma <= 1.0:
            raise UserInputError(f"step_gamma must be in (0, 1], got {self.step_gamma}")
        if self.max_train_batches is not None and self.max_train_batches < 1:
            raise UserInputError(f"max_train_batches must be at least 1, got {self.max_train_batches}")
        if self.max_test_images is not None and self.max_test_images < 1:
            raise UserInputError(f"max_test_images must be at least 1, got {self.max_test_images}")

    def drop_path_at(self, epoch: int) -> float:
        """Drop-path probability during 0-based ``epoch``: ``drop_path * epoch / epochs`` (DARTS)."""
        return self.drop_path * epoch / self.epochs

    def lr_factor(self, epoch: int) -> float:
        """Multiplier of ``lr`` during 0-based ``epoch`` (the schedule is stepped once per epoch, as in DARTS).

        Warm-up: ``(epoch + 1) / warmup_epochs``. Then, with ``t`` the fraction of the remaining epochs
        done: cosine ``lr_min/lr + (1 - lr_min/lr) * (1 + cos(pi t)) / 2`` (the closed form of
        ``CosineAnnealingLR``), linear ``1 - t``, step ``step_gamma ** epochs_after_warmup``.
        """
        if epoch < self.warmup_epochs:
            return (epoch + 1) / self.warmup_epochs
        after = epoch - self.warmup_epochs
        if self.schedule == "step":
            return self.step_gamma**after
        t = after / (self.epochs - self.warmup_epochs)
        if self.schedule == "linear":
            return 1.0 - t
        floor = self.lr_min / self.lr
        return floor + (1.0 - floor) * (1.0 + math.cos(math.pi * t)) / 2.0

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON- and ``weights_only``-safe form (written to checkpoints and model cards)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any, where: str = "training settings") -> "TrainConfig":
        """Inverse of ``to_dict``; unknown keys, values of the wrong type or out of range are a
        ``UserInputError`` naming ``where`` (the file) and the field, so that a foreign file is not misread."""
        config = dataclass_from_dict(cls, data, where)
        try:
            config.validate()
        except UserInputError as exc:
            raise UserInputError(f"{where}: {exc}") from None
        return config


#: Named protocols for ``cars-train --preset``.
PRESETS: dict[str, Callable[..., TrainConfig]] = {
    "cifar": TrainConfig.cifar,
    "imagenet": TrainConfig.imagenet,
    "darts-imagenet": TrainConfig.darts_imagenet,
}

#: The network each preset is meant for (``NetworkConfig.cifar()`` or ``NetworkConfig.imagenet()``).
PRESET_NETWORK: dict[str, Literal["cifar", "imagenet"]] = {
    "cifar": "cifar",
    "imagenet": "imagenet",
    "darts-imagenet": "imagenet",
}
