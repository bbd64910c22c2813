"""What a retraining run reports: one record per epoch, the run's result, and its one failure of its own."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import CarsError

__all__ = ["EpochRecord", "TrainResult", "TrainingDivergedError", "describe_epoch"]


class TrainingDivergedError(CarsError):
    """The loss became NaN or infinite; a lower learning rate usually cures it (exit code 1)."""

    exit_code = 1


@dataclass(frozen=True)
class EpochRecord:
    """What one epoch measured (kept in checkpoints and model cards)."""

    epoch: int  # 1-based epoch number
    lr: float  # learning rate used during the epoch
    drop_path: float  # drop-path probability used during the epoch
    train_loss: float  # mean training loss (auxiliary term included)
    train_accuracy: float  # top-1 on the augmented training batches
    test_accuracy: float | None  # top-1 on the test split after the epoch; None when not evaluated
    seconds: float  # wall time of the epoch, evaluation included


@dataclass(frozen=True)
class TrainResult:
    """The outcome of ``Trainer.fit``."""

    test_accuracy: float  # top-1 on the test split after the last epoch
    history: list[EpochRecord]  # every epoch of the run, resumed ones included
    epochs_run: int  # epochs trained by this call (fewer than ``history`` after a resume)
    resumed_from_epoch: int  # finished epochs found in the checkpoint; 0 for a fresh run
    checkpoint_path: Path
    model_path: Path
    card_path: Path
    card: dict[str, Any]


def describe_epoch(record: EpochRecord, epochs: int) -> str:
    """The log line of one finished epoch."""
    test = "" if record.test_accuracy is None else f", test acc {100 * record.test_accuracy:.2f}%"
    loss = record.train_loss if math.isfinite(record.train_loss) else float("nan")
    return (
        f"epoch {record.epoch}/{epochs}: lr {record.lr:.5f}, drop path {record.drop_path:.3f}, "
        f"train loss {loss:.4f}, train acc {100 * record.train_accuracy:.2f}%{test} ({record.seconds:.1f}s)"
    )
