"""Datasets the commands read: the embedded default, CIFAR-10 (torchvision layout) and ImageFolder trees.

The embedded default is scikit-learn's copy of the UCI handwritten digits (1,797 real 8x8 images, 10
classes), which ships inside the installed ``scikit-learn`` package: every command runs offline on it,
and a search on it finishes in minutes on two CPU cores. Grey levels are repeated over three channels
so that the same networks (and exported models) take it as they take RGB images.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal

import numpy as np
import torch
from torch.utils.data import Dataset, Subset, TensorDataset

from ..errors import UserInputError

__all__ = [
    "DATASETS",
    "DatasetInfo",
    "DatasetName",
    "dataset_info",
    "load_dataset",
    "split_train_val",
]

DatasetName = Literal["digits", "cifar10", "imagefolder"]
DATASETS: tuple[str, ...] = ("digits", "cifar10", "imagefolder")

_CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
_CIFAR_STD = (0.2470, 0.2435, 0.2616)
_CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


@dataclass(frozen=True)
class DatasetInfo:
    """What a model trained on a dataset needs to know about its inputs (also written to model cards)."""

    name: str  # dataset name: digits, cifar10 or imagefolder
    num_classes: int  # classifier outputs
    input_size: int  # square image side the network is built for
    mean: tuple[float, float, float]  # per-channel normalisation applied after scaling pixels to [0, 1]
    std: tuple[float, float, float]
    class_names: tuple[str, ...]


def dataset_info(name: str, data_dir: Path | None = None, *, input_size: int | None = None) -> DatasetInfo:
    """Facts about ``name``; for ``imagefolder`` the classes are read from ``data_dir/train``."""
    if name == "digits":
        return DatasetInfo("digits", 10, 8, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), tuple(str(d) for d in range(10)))
    if name == "cifar10":
        return DatasetInfo("cifar10", 10, input_size or 32, _CIFAR_MEAN, _CIFAR_STD, _CIFAR_CLASSES)
    if name == "imagefolder":
        classes = tuple(sorted(p.name for p in _require_dir(data_dir, "train").iterdir() if p.is_dir()))
        if not classes:
            raise UserInputError(f"{data_dir}/train has no class folders (expected train/<class>/*.jpg)")
        # ImageFolder trees are usually natural images; CIFAR statistics are a sound default for them.
        return DatasetInfo("imagefolder", len(classes), input_size or 32, _CIFAR_MEAN, _CIFAR_STD, classes)
    raise UserInputError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")


def load_dataset(
    name: str,
    *,
    split: Literal["train", "test"],
    data_dir: Path | None = None,
    augment: bool = False,
    cutout: int = 0,
    input_size: int | None = None,
) -> Dataset:
    """The ``split`` of a dataset as ``(image tensor, label)`` pairs, normalised.

    ``augment`` adds the DARTS training augmentation (random crop with 4-pixel padding, horizontal
    flip) for image datasets; ``cutout`` > 0 adds Cutout of that side (DARTS evaluation protocol).
    """
    info = dataset_info(name, data_dir, input_size=input_size)
    if name == "digits":
        return _digits(split)
    from torchvision import datasets

    transform = _image_transform(info, augment=augment, cutout=cutout)
    if name == "cifar10":
        root = _require_dir(data_dir, "cifar-10-batches-py").parent
        try:
            return datasets.CIFAR10(str(root), train=split == "train", transform=transform, download=False)
        except RuntimeError as exc:
            raise UserInputError(f"CIFAR-10 at {root}: {exc}") from None
    root = _require_dir(data_dir, split)
    _check_image_folder(root, info.class_names)
    return datasets.ImageFolder(str(root), transform=transform, loader=_load_image)


def split_train_val(dataset: Dataset, *, seed: int, val_fraction: float = 0.5) -> tuple[Subset, Subset]:
    """Seeded random split of a training set into (train, validation); CARS searches on a 50/50 split."""
    if not 0.0 < val_fraction < 1.0:
        raise UserInputError(f"val_fraction must be in (0, 1), got {val_fraction}")
    order = np.random.default_rng(seed).permutation(len(dataset))  # type: ignore[arg-type]
    n_val = int(round(len(order) * val_fraction))
    return Subset(dataset, order[n_val:].tolist()), Subset(dataset, order[:n_val].tolist())


def _digits(split: str) -> TensorDataset:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.from_numpy(digits.images.astype(np.float32) / 16.0)
    images = ((images - 0.5) / 0.5).unsqueeze(1).expand(-1, 3, -1, -1).contiguous()
    labels = torch.from_numpy(digits.target.astype(np.int64))
    # A fixed 80/20 train/test split, the same on every machine.
    order = np.random.default_rng(0).permutation(len(labels))
    n_test = len(labels) // 5
    index = torch.from_numpy(order[n_test:] if split == "train" else order[:n_test])
    return TensorDataset(images[index], labels[index])


def _image_transform(info: DatasetInfo, *, augment: bool, cutout: int) -> Callable:
    from torchvision import transforms

    steps: list[Callable] = [transforms.Resize((info.input_size, info.input_size))]
    if augment:
        steps += [transforms.RandomCrop(info.input_size, padding=4), transforms.RandomHorizontalFlip()]
    steps += [transforms.ToTensor(), transforms.Normalize(info.mean, info.std)]
    if cutout > 0:
        steps.append(Cutout(cutout))
    return transforms.Compose(steps)


class Cutout:
    """Zeroes one random ``size`` x ``size`` square (clipped at the border) of a CHW tensor (DeVries 2017)."""

    def __init__(self, size: int):
        self.size = size

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        _, h, w = image.shape
        y, x = int(torch.randint(h, (1,))), int(torch.randint(w, (1,)))
        y0, y1 = max(0, y - self.size // 2), min(h, y + self.size // 2)
        x0, x1 = max(0, x - self.size // 2), min(w, x + self.size // 2)
        image = image.clone()
        image[:, y0:y1, x0:x1] = 0.0
        return image


def _check_image_folder(root: Path, classes: tuple[str, ...]) -> None:
    """Refuses, before any training, an ImageFolder split whose classes differ from the training split's,
    a class folder without images, or an image that cannot be decoded: each is one line naming the
    folder or file. Every image is opened and ``verify``-ed by PIL (it reads headers and checksums
    without decoding pixels), so the scan costs a read of the files, not a pass of training; without it a
    bad file fails inside a DataLoader worker, mid-epoch, with the worker's traceback."""
    from PIL import Image
    from torchvision.datasets.folder import IMG_EXTENSIONS

    found = tuple(sorted(p.name for p in root.iterdir() if p.is_dir()))
    if found != classes:
        missing, extra = sorted(set(classes) - set(found)), sorted(set(found) - set(classes))
        detail = "; ".join(part for part in (
            f"missing {', '.join(missing[:5])}" if missing else "", f"unexpected {', '.join(extra[:5])}" if extra else "",
        ) if part) or "same names in another order"
        raise UserInputError(f"{root} has other classes than the training split ({detail}); both need the same class folders")
    for name in classes:
        folder = root / name
        images = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMG_EXTENSIONS and p.is_file())
        if not images:
            raise UserInputError(f"class folder {folder} holds no images ({', '.join(IMG_EXTENSIONS)})")
        for path in images:
            try:
                with Image.open(path) as image:
                    image.verify()
            except Exception as exc:  # noqa: BLE001 - PIL raises many types (OSError, SyntaxError, ...) for bad files
                raise UserInputError(f"image {path} cannot be decoded ({type(exc).__name__}: {exc})") from None


def _load_image(path: str) -> Any:
    """ImageFolder's loader, with a decoding failure (a file that passed ``verify`` but is truncated)
    turned into a ``UserInputError`` naming the file."""
    from PIL import Image

    try:
        with open(path, "rb") as handle:
            return Image.open(handle).convert("RGB")
    except Exception as exc:  # noqa: BLE001 - see _check_image_folder
        raise UserInputError(f"image {path} cannot be decoded ({type(exc).__name__}: {exc})") from None


def _require_dir(data_dir: Path | None, child: str) -> Path:
    if data_dir is None:
        raise UserInputError("this dataset needs --data-dir")
    path = Path(data_dir) / child
    if not path.is_dir():
        raise UserInputError(f"dataset not found: {path} is not a folder")
    return path
