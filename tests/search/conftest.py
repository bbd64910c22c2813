import pytest

from cars_deploy.search.config import SearchConfig


@pytest.fixture
def tiny_config() -> SearchConfig:
    """A search that runs in seconds: a 3-cell SuperNet of 4 channels, 4 generations of 4 individuals."""
    return SearchConfig(
        C=4,
        layers=3,
        population=4,
        epochs=5,
        warmup_epochs=1,
        evolve_every=1,
        batch_size=16,
        eval_batch_size=64,
        max_train_batches=2,
        max_val_batches=2,
        bn_recalibration_batches=1,
        deploy_network="cifar",
        objectives=("params",),
        seed=3,
    )
