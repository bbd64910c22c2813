"""A small trained checkpoint shared by the export tests (one short epoch on the embedded digits)."""
import pytest

from cars_deploy.space import GENOTYPES, NetworkConfig
from cars_deploy.train import TrainConfig, Trainer


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """``cars-train`` output of DARTS_V2 (C=4, 3 cells, 8x8 digits): checkpoint.pt, model.pt, model_card.json."""
    out = tmp_path_factory.mktemp("trained")
    config = TrainConfig.cifar(epochs=1, batch_size=32, lr=0.05, max_train_batches=8)
    Trainer(GENOTYPES.get("DARTS_V2"), NetworkConfig.cifar(C=4, layers=3, input_size=8), config, dataset="digits").fit(out)
    return out
