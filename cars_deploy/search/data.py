"""The search's data: the training set split in two halves (section 4.2: 25,000 images update the
weights, 25,000 rank the architectures), with batches that depend only on the seed and the epoch.

Training batches of epoch ``e`` are drawn by a ``DataLoader`` whose ``torch.Generator`` is seeded from
``(seed, e)``, so a resumed run sees exactly the batches an uninterrupted one does, without any loader
state in the checkpoint. Validation batches and the few training batches used to re-estimate batch
norm statistics are fixed once (and kept in memory on the device), since every individual of every
generation is measured on the same images.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from ..data import DatasetInfo, dataset_info, load_dataset, split_train_val
from ..torch_device import images_to
from .config import SearchConfig

__all__ = ["SearchData", "Batch", "load_search_data", "epoch_generator"]

Batch = tuple[torch.Tensor, torch.Tensor]


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The generator that orders the training batches of ``epoch``."""
    state = np.random.SeedSequence([seed, 0x5EA2C4, epoch]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state) & 0x7FFF_FFFF_FFFF_FFFF)


@dataclass
class SearchData:
    """Train / validation halves of a dataset and the batches a search draws from them."""

    info: DatasetInfo  # classes, input size, normalisation
    train: Dataset  # updates the SuperNet weights (augmented for image datasets)
    train_plain: Dataset  # the same images without augmentation (for BN re-estimation)
    val: Dataset  # ranks the architectures
    config: SearchConfig
    device: torch.device
    _val: list[Batch] | None = field(default=None, repr=False)
    _recal: list[Batch] | None = field(default=None, repr=False)

    def steps_per_epoch(self) -> int:
        steps = len(self.train) // self.config.batch_size  # type: ignore[arg-type]
        steps = max(1, steps)
        return min(steps, self.config.max_train_batches or steps)

    def train_batches(self, epoch: int) -> Iterator[Batch]:
        """Shuffled training batches of ``epoch`` (full batches only), at most ``max_train_batches``."""
        config = self.config
        loader = DataLoader(
            self.train,
            batch_size=config.batch_size,
            shuffle=True,
            drop_last=len(self.train) >= config.batch_size,  # type: ignore[arg-type]
            generator=epoch_generator(config.seed, epoch),
            num_workers=config.num_workers,
            pin_memory=self.device.type == "cuda",
        )
        for step, (x, y) in enumerate(loader):
            if step >= self.steps_per_epoch():
                break
            yield images_to(x, self.device, non_blocking=True), y.to(self.device, non_blocking=True)

    def val_batches(self) -> list[Batch]:
        """The validation batches every individual is measured on, loaded once onto the device."""
        if self._val is None:
            self._val = self._fixed(self.val, self.config.eval_batch_size, self.config.max_val_batches, order=None)
        return self._val

    def recalibration_batches(self) -> list[Batch]:
        """A fixed random sample of training batches (no augmentation) for per-individual BN re-estimation."""
        if self._recal is None:
            n = len(self.train_plain)  # type: ignore[arg-type]
            order = np.random.default_rng([self.config.seed, 0xBA7C4]).permutation(n)
            self._recal = self._fixed(
                self.train_plain, self.config.batch_size, self.config.bn_recalibration_batches, order=order
            )
        return self._recal

    def _fixed(self, dataset: Dataset, batch_size: int, max_batches: int | None, order: np.ndarray | None) -> list[Batch]:
        if order is not None:
            dataset = Subset(dataset, order.tolist())
        loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=self.config.num_workers)
        batches: list[Batch] = []
        for x, y in loader:
            if max_batches is not None and len(batches) >= max_batches:
                break
            batches.append((images_to(x, self.device), y.to(self.device)))
        return batches


def load_search_data(config: SearchConfig, device: torch.device) -> SearchData:
    """Loads ``config.dataset`` and splits its training set ``1 - val_fraction`` / ``val_fraction`` by seed."""
    data_dir = Path(config.data_dir) if config.data_dir else None
    info = dataset_info(config.dataset, data_dir, input_size=config.input_size)
    plain = load_dataset(config.dataset, split="train", data_dir=data_dir, input_size=info.input_size)
    train_plain, val = split_train_val(plain, seed=config.seed, val_fraction=config.val_fraction)
    train = train_plain
    if config.augment and config.dataset != "digits":
        augmented = load_dataset(config.dataset, split="train", data_dir=data_dir, augment=True, input_size=info.input_size)
        train, _ = split_train_val(augmented, seed=config.seed, val_fraction=config.val_fraction)
    return SearchData(info=info, train=train, train_plain=train_plain, val=val, config=config, device=device)
