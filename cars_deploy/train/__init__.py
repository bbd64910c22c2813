"""Retraining a genotype from scratch with the DARTS/CARS evaluation protocol, checkpoints and model cards."""
from .checkpoint import Checkpoint, load_checkpoint, save_checkpoint, strip_auxiliary
from .config import PRESET_NETWORK, PRESETS, TrainConfig
from .model_card import build_model_card, read_model_card, write_model_card
from .outputs import prepare_output_dir
from .records import EpochRecord, TrainingDivergedError, TrainResult
from .trainer import CARD_NAME, CHECKPOINT_NAME, MODEL_NAME, Trainer

__all__ = [
    "CARD_NAME",
    "CHECKPOINT_NAME",
    "Checkpoint",
    "EpochRecord",
    "MODEL_NAME",
    "PRESETS",
    "PRESET_NETWORK",
    "TrainConfig",
    "TrainResult",
    "TrainingDivergedError",
    "Trainer",
    "build_model_card",
    "load_checkpoint",
    "prepare_output_dir",
    "read_model_card",
    "save_checkpoint",
    "strip_auxiliary",
    "write_model_card",
]
