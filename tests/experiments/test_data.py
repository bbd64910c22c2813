import json
import tarfile

import pytest

from cars_deploy.errors import UserInputError
from experiments.data import Subset, extract_archive, image_subset, locate_dataset

from .conftest import write_image_folder


def _names(folder):
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*.jpg")}


def test_subset_keeps_n_images_per_class_as_links_and_is_reproducible(image_folder, tmp_path):
    subset = image_subset(image_folder, Subset(5, 3, seed=1), cache_dir=tmp_path)
    manifest = json.loads((subset / "subset.json").read_text())
    assert manifest["images"]["train"] == {f"class{c}": 5 for c in range(4)}
    assert manifest["images"]["test"] == {f"class{c}": 3 for c in range(4)}
    links = list(subset.rglob("*.jpg"))
    assert len(links) == 4 * (5 + 3) and all(p.is_symlink() and p.resolve().is_file() for p in links)
    assert _names(subset) <= _names(image_folder)
    # The same settings give the same folder (built once); another seed picks other images.
    assert image_subset(image_folder, Subset(5, 3, seed=1), cache_dir=tmp_path) == subset
    other = image_subset(image_folder, Subset(5, 3, seed=2), cache_dir=tmp_path)
    assert other != subset and _names(other) != _names(subset)
    assert not [p for p in subset.parent.iterdir() if p.name.startswith(".")]  # no staging folder left


def test_subset_of_everything_is_the_tree_itself_and_too_many_is_refused(image_folder, tmp_path):
    assert image_subset(image_folder, Subset(None, None), cache_dir=tmp_path) == image_folder
    with pytest.raises(UserInputError, match="fewer than the 25"):
        image_subset(image_folder, Subset(25, None), cache_dir=tmp_path)
    assert not list((tmp_path / "cars-deploy-experiments" / "subsets").iterdir())  # the failed build left nothing


def test_archive_is_extracted_once_into_the_cache(tmp_path):
    source = write_image_folder(tmp_path / "src" / "cifar10-jpg", classes=2, train=2, test=1)
    archive = tmp_path / "cifar10-jpg.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(source, arcname="cifar10-jpg")
    cache = tmp_path / "cache"
    root = locate_dataset(None, archive=archive, cache_dir=cache)
    assert root == (cache / "cifar10-jpg").resolve() and _names(root) == _names(source)
    archive.unlink()  # a second call does not need the archive any more
    assert extract_archive(archive, cache) == cache / "cifar10-jpg"
    with pytest.raises(UserInputError, match="archive not found"):
        locate_dataset(None, archive=archive, cache_dir=tmp_path / "empty")
    with pytest.raises(UserInputError, match="must hold train"):
        locate_dataset(tmp_path / "src", archive=archive)
