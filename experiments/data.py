"""The experiments' data: CIFAR-10 as an ImageFolder tree, and seeded per-class image subsets of it.

The project ships CIFAR-10 as JPEG files in ``../shared/data/cifar10-jpg.tar.gz``
(``cifar10-jpg/train/<class>/*.jpg``, 5,000 per class, and ``cifar10-jpg/test/<class>/*.jpg``, 1,000
per class). ``locate_dataset`` finds an extracted copy or extracts the archive once into a cache folder
(never into the repository). ``image_subset`` then builds a smaller ImageFolder tree of symbolic links -
the first ``n`` images of each class in a seeded random order - so that ``cars-search`` and
``cars-train`` (which read whole ImageFolder trees) run on a CPU-sized share of the data without copying
a pixel. Both steps build in a temporary folder beside the target and rename it into place, so a killed
run never leaves a half-made tree that a later run would trust.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from cars_deploy.errors import UserInputError

__all__ = [
    "DEFAULT_ARCHIVE",
    "IMAGE_SUFFIXES",
    "Subset",
    "default_cache_dir",
    "extract_archive",
    "image_subset",
    "locate_dataset",
]

#: The CIFAR-10 JPEG archive beside the project (``/work/shared/data`` seen from ``/work/main``).
DEFAULT_ARCHIVE = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpg.tar.gz"
#: File endings counted as images in a class folder.
IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png")
_TREE = "cifar10-jpg"  # the archive's top-level folder


def default_cache_dir() -> Path:
    """Where archives are extracted and subsets built: the system temporary folder (``/tmp``), so that
    the copy a benchmark or a helper already extracted (``/tmp/cifar10-jpg``) is reused."""
    return Path(tempfile.gettempdir())


def _is_tree(path: Path) -> bool:
    return (path / "train").is_dir() and (path / "test").is_dir()


def extract_archive(archive: Path, cache_dir: Path) -> Path:
    """``cache_dir/cifar10-jpg``, extracted from ``archive`` unless it is already there."""
    target = cache_dir / _TREE
    if _is_tree(target):
        return target
    if not archive.is_file():
        raise UserInputError(f"dataset archive not found: {archive}; pass --archive or --data-root")
    cache_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".extract-", dir=cache_dir))
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(staging, filter="data")  # refuses absolute paths, links out of the folder, devices
        if not _is_tree(staging / _TREE):
            raise UserInputError(f"{archive} does not hold {_TREE}/train and {_TREE}/test")
        try:
            os.rename(staging / _TREE, target)
        except OSError:
            if not _is_tree(target):  # another process won the race only if the tree is now complete
                raise
    except (tarfile.TarError, OSError) as exc:
        raise UserInputError(f"cannot extract {archive} into {cache_dir}: {exc}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def locate_dataset(data_root: Path | None, *, archive: Path = DEFAULT_ARCHIVE, cache_dir: Path | None = None) -> Path:
    """The ImageFolder root (holding ``train/`` and ``test/``): ``data_root`` when given, else the
    archive extracted into ``cache_dir``."""
    if data_root is not None:
        if not _is_tree(data_root):
            raise UserInputError(f"--data-root {data_root} must hold train/<class>/ and test/<class>/ folders")
        return data_root.resolve()
    return extract_archive(archive, cache_dir or default_cache_dir()).resolve()


@dataclass(frozen=True)
class Subset:
    """How many images of each class a subset keeps (None: all) and the seed that picks them."""

    train_per_class: int | None  # training images per class (CIFAR-10 has 5,000); the search splits them 50/50
    test_per_class: int | None  # test images per class (CIFAR-10 has 1,000); retrained models are tested on them
    seed: int = 0  # orders each class folder before the first images are taken

    def label(self) -> str:
        def count(n: int | None) -> str:
            return "all" if n is None else str(n)

        return f"tr{count(self.train_per_class)}-te{count(self.test_per_class)}-s{self.seed}"


def _class_files(split_dir: Path) -> dict[str, list[Path]]:
    classes = sorted(p for p in split_dir.iterdir() if p.is_dir())
    if not classes:
        raise UserInputError(f"{split_dir} has no class folders (expected {split_dir}/<class>/*.jpg)")
    return {
        c.name: sorted(f for f in c.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file()) for c in classes
    }


def image_subset(root: Path, subset: Subset, *, cache_dir: Path | None = None) -> Path:
    """An ImageFolder tree holding ``subset`` of ``root``'s images as symbolic links; ``root`` itself when
    the subset keeps everything. Built once under ``cache_dir/cars-deploy-experiments/subsets``; its
    ``subset.json`` lists what it holds."""
    if subset.train_per_class is None and subset.test_per_class is None:
        return root
    for name, n in (("train", subset.train_per_class), ("test", subset.test_per_class)):
        if n is not None and n < 1:
            raise UserInputError(f"--{name}-per-class must be at least 1, got {n}")
    root = root.resolve()
    key = hashlib.sha256(str(root).encode()).hexdigest()[:8]
    base = (cache_dir or default_cache_dir()) / "cars-deploy-experiments" / "subsets"
    target = base / f"{root.name}-{subset.label()}-{key}"
    if (target / "subset.json").is_file():
        return target
    base.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=base))
    try:
        manifest: dict[str, object] = {"source": str(root), **asdict(subset), "images": {}}
        for split, keep in (("train", subset.train_per_class), ("test", subset.test_per_class)):
            files = _class_files(root / split)
            counts = {}
            for index, (name, paths) in enumerate(files.items()):
                if keep is not None and len(paths) < keep:
                    raise UserInputError(f"{root / split / name} has {len(paths)} images, fewer than the {keep} asked for")
                order = np.random.default_rng([subset.seed, index, split == "test"]).permutation(len(paths))
                chosen = [paths[i] for i in (order[:keep] if keep is not None else order)]
                folder = staging / split / name
                folder.mkdir(parents=True)
                for path in sorted(chosen):
                    (folder / path.name).symlink_to(path)
                counts[name] = len(chosen)
            manifest["images"][split] = counts  # type: ignore[index]
        (staging / "subset.json").write_text(json.dumps(manifest, indent=2) + "\n")
        try:
            os.rename(staging, target)
        except OSError:
            if not (target / "subset.json").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
