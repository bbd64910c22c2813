"""A tiny real ImageFolder tree (JPEG files, 4 colour classes) and the tiny experiment scale the smoke
tests run at: a 3-cell SuperNet of 4 channels on 8x8 images, 4 individuals, 2 generations."""
from __future__ import annotations

import fcntl
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator, Sequence

import numpy as np
import pytest

#: Flags every smoke run shares (the search part is the same, so the experiments share one search).
TINY_SEARCH = [
    "--train-per-class", "20", "--input-size", "8", "--threads", "1",
    "--search-C", "4", "--search-layers", "3", "--search-population", "4", "--search-generations", "2",
    "--search-evolve-every", "1", "--search-warmup", "1", "--search-batch-size", "16", "--search-val-batches", "1",
]  # fmt: skip
TINY_TRAIN = ["--train-C", "4", "--train-layers", "3", "--train-epochs", "1", "--train-steps-per-epoch", "2",
              "--train-batch-size", "16"]  # fmt: skip


def write_image_folder(root: Path, *, classes: int = 4, train: int = 24, test: int = 8, side: int = 12) -> Path:
    """``root/train/<class>/*.jpg`` and ``root/test/<class>/*.jpg``: noisy images of one colour per class."""
    from PIL import Image

    rng = np.random.default_rng(0)
    colours = rng.integers(30, 225, size=(classes, 3))
    for split, count in (("train", train), ("test", test)):
        for c in range(classes):
            folder = root / split / f"class{c}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                pixels = np.clip(colours[c][None, None, :] + rng.normal(0, 35, (side, side, 3)), 0, 255)
                Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{i:04d}.jpg")
    return root


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_image_folder(tmp_path_factory.mktemp("imagefolder") / "tiny")


@pytest.fixture(scope="session")
def shared_dirs(tmp_path_factory: pytest.TempPathFactory, image_folder: Path) -> list[str]:
    """Data, cache and work folders shared by the smoke runs, so a search made by one is reused by the next."""
    base = tmp_path_factory.mktemp("experiments")
    return ["--data-root", str(image_folder), "--cache-dir", str(base / "cache"), "--work-dir", str(base / "work")]


@contextmanager
def moved_away(folders: Sequence[Path], aside: Path) -> Iterator[None]:
    """``folders`` moved under ``aside`` for the block, then put back: what a fresh checkout on another
    machine sees, where the run folders under ``runs/`` are gone (the work folder is shared by the tests)."""
    aside.mkdir(parents=True, exist_ok=True)
    moved = [(folder, aside / f"{number}-{folder.name}") for number, folder in enumerate(folders)]
    for folder, away in moved:
        folder.rename(away)
    try:
        yield
    finally:
        for folder, away in moved:
            away.rename(folder)


def drop_last_record(path: Path) -> list[str]:
    """Removes the last line of the JSONL file ``path`` (a kill right after training); returns all lines."""
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:-1]) + "\n")
    return lines



def hold_lock(folder: Path) -> IO[str]:
    """Takes the lock of a run folder as another experiment process would; close the handle to release it."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    handle = open(folder.with_name(folder.name + ".lock"), "a+")
    fcntl.flock(handle, fcntl.LOCK_EX)
    return handle
