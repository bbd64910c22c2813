import pytest
import torch

from cars_deploy.errors import CheckpointError
from cars_deploy.space import GENOTYPES, NetworkConfig, build_network
from cars_deploy.train import Checkpoint, load_checkpoint, save_checkpoint, strip_auxiliary
from cars_deploy.train.checkpoint import require_same_run


@pytest.fixture
def checkpoint():
    network = NetworkConfig.cifar(C=4, layers=3, auxiliary=True)
    model = build_network(GENOTYPES.get("CARS_A"), network)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    return Checkpoint(
        kind="train",
        genotype=str(GENOTYPES.get("CARS_A")),
        network=network.__dict__.copy(),
        dataset={"name": "cifar10", "num_classes": 10, "input_size": 32, "mean": (0.5,) * 3, "std": (0.5,) * 3,
                 "class_names": tuple("abcdefghij")},
        model_state=model.state_dict(),
        train_config={"epochs": 3},
        epoch=1,
        optimizer_state=optimizer.state_dict(),
        scheduler_state={"last_epoch": 1},
        rng_state={"torch": torch.get_rng_state()},
        history=[{"epoch": 1, "lr": 0.1, "drop_path": 0.0, "train_loss": 1.0, "train_accuracy": 0.5, "test_accuracy": None, "seconds": 1.0}],
    )


def test_round_trip_is_weights_only_loadable(tmp_path, checkpoint):
    path = tmp_path / "c.pt"
    save_checkpoint(path, checkpoint)
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == "cars-deploy/checkpoint"
    back = load_checkpoint(path)
    assert back.genotype_obj() == GENOTYPES.get("CARS_A") and back.network_config().auxiliary
    assert all(torch.equal(back.model_state[k], v) for k, v in checkpoint.model_state.items())
    assert torch.equal(back.rng_state["torch"], checkpoint.rng_state["torch"])


def test_strip_auxiliary_drops_the_head(checkpoint):
    final = strip_auxiliary(checkpoint)
    assert final.kind == "model" and final.optimizer_state is None and not final.network_config().auxiliary
    assert any(k.startswith("auxiliary_head.") for k in checkpoint.model_state)
    assert not any(k.startswith("auxiliary_head.") for k in final.model_state)
    build_network(final.genotype_obj(), final.network_config()).load_state_dict(final.model_state)


def test_truncated_corrupt_foreign_and_missing_files(tmp_path, checkpoint):
    good = tmp_path / "good.pt"
    save_checkpoint(good, checkpoint)
    data = good.read_bytes()
    (tmp_path / "truncated.pt").write_bytes(data[: len(data) // 2])
    (tmp_path / "garbage.pt").write_bytes(b"\x00not a checkpoint" * 50)
    torch.save({"weights": torch.ones(2)}, tmp_path / "foreign.pt")
    for name, message in [("truncated.pt", "truncated or corrupt"), ("garbage.pt", "truncated or corrupt"),
                          ("foreign.pt", "not a cars-deploy checkpoint"), ("missing.pt", "not found")]:
        with pytest.raises(CheckpointError, match=message):
            load_checkpoint(tmp_path / name)


def test_pickled_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": "cars-deploy/checkpoint", "payload": print}, path)
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(path)


def test_require_same_run_names_the_difference(checkpoint):
    network = checkpoint.network_config()
    require_same_run(checkpoint, genotype=GENOTYPES.get("CARS_A"), network=network, source="c")
    with pytest.raises(CheckpointError, match="another genotype"):
        require_same_run(checkpoint, genotype=GENOTYPES.get("CARS_B"), network=network, source="c")
    with pytest.raises(CheckpointError, match="layers 3 != 6"):
        require_same_run(checkpoint, genotype=GENOTYPES.get("CARS_A"), network=NetworkConfig.cifar(C=4, layers=6, auxiliary=True), source="c")
