"""LatencyPredictor: the block sum is exactly the table summed over a genotype's blocks, vectorised."""
from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from cars_deploy.errors import UserInputError
from cars_deploy.latency import LatencyPredictor, fit_calibration, network_id
from cars_deploy.latency.calibration import write_calibration
from cars_deploy.profilers.blocks import genotype_blocks
from cars_deploy.profilers.table import LatencyTable, MissingBlockError, table_files
from cars_deploy.space import GENOTYPES, PRIMITIVES, NetworkConfig, random_genotype

from .conftest import SMALL

SHIPPED = "host-cpu-imagenet-ort1"


def _reference(table: LatencyTable, genotype, network: NetworkConfig) -> float:
    """The definition: every block's row, times how often the network contains it."""
    return sum(table.latency(key) * count for key, count in genotype_blocks(genotype, network).items())


@pytest.mark.parametrize("which", ["shipped imagenet table", "small host table"])
def test_block_sum_is_the_sum_of_table_rows_of_genotype_blocks(which, small_table, rng):
    table = LatencyTable.load(SHIPPED if which.startswith("shipped") else small_table)
    predictor = LatencyPredictor(table, calibration=None)
    assert predictor.network == (NetworkConfig.imagenet() if which.startswith("shipped") else SMALL)
    # DARTS' 8 ops, so that 'none' edges (which add no block) are covered too
    genotypes = [random_genotype(rng, ops=PRIMITIVES) for _ in range(25)] + [GENOTYPES.get(n) for n in GENOTYPES.names()]
    assert any(op == "none" for g in genotypes for op, _ in g.normal + g.reduce)
    expected = np.array([_reference(table, g, predictor.network) for g in genotypes])
    np.testing.assert_allclose(predictor.block_sum(genotypes), expected, rtol=1e-12)
    # Uncalibrated, the prediction is the block sum; encodings and genotypes give the same numbers.
    np.testing.assert_allclose(predictor.predict(genotypes), expected, rtol=1e-12)
    codes = np.stack([g.encode() for g in genotypes])
    np.testing.assert_allclose(predictor(codes), expected, rtol=1e-12)
    assert predictor.predict(genotypes[0]).shape == (1,) and predictor.predict([]).shape == (0,)
    # Heavier ops cost more: a network of separable convolutions is slower than one of skips.
    assert len(set(np.round(expected, 9))) > 20


def test_encodings_from_outside_are_checked(rng):
    predictor = LatencyPredictor.load(SHIPPED)
    good = random_genotype(rng).encode()
    for bad, why in [
        (good[:30], "shape"),
        (np.where(np.arange(32) == 1, 8, good), "range"),  # op index 8 does not exist
        (np.where(np.arange(32) == 0, 2, good), "range"),  # node 0 reads state 2, which is not computed yet
        (good.astype(float), "integers"),
    ]:
        with pytest.raises(UserInputError, match=why):
            predictor.predict(bad)
    with pytest.raises(UserInputError):
        predictor.predict(["not a genotype"])


def test_a_missing_block_is_a_one_line_error_naming_the_key_and_the_fill_command(small_table):
    table = LatencyTable.load(small_table)
    dropped = table.frame[table.frame["kind"] == "sep_conv_5x5"].index[0]
    gone = table.keys()[dropped]
    table.frame = table.frame.drop(index=dropped).reset_index(drop=True)
    table.save(small_table)
    with pytest.raises(MissingBlockError) as info:
        LatencyPredictor.load(small_table)
    message = str(info.value)
    assert info.value.key == gone and "\n" not in message and gone.id in message
    base = str(table_files(small_table)[0].with_suffix(""))
    fill = "cars-profile --device local --runtime onnxruntime --threads 1 --network cifar --C 4 --layers 3 --input-size 8"
    assert f"{fill} --out {base}" in message
    # The same table, asked for another network, names the first block it lacks for that one.
    with pytest.raises(MissingBlockError, match="stem-3-108-32x32-s1"):
        LatencyPredictor.load(SHIPPED, network=NetworkConfig.cifar())


def test_a_stored_calibration_is_applied_only_to_the_rows_it_was_fitted_on(small_table, rng, caplog):
    table = LatencyTable.load(small_table)
    raw = LatencyPredictor(table, calibration=None)
    genotypes = [random_genotype(rng) for _ in range(12)]
    block_sum = raw.block_sum(genotypes)
    calibration = fit_calibration(block_sum[:, None], 0.8 * block_sum + 0.01, model="linear",
                                  network=json.loads(json.dumps(SMALL.__dict__)), table_fingerprint=raw.fingerprint)
    write_calibration(table.meta, network_id(SMALL), calibration)
    table.save(small_table)

    calibrated = LatencyPredictor.load(small_table)
    assert calibrated.calibrated and calibrated.describe()["calibration_model"] == "linear"
    np.testing.assert_allclose(calibrated.predict(genotypes), 0.8 * block_sum + 0.01, rtol=1e-9)
    assert not LatencyPredictor.load(small_table, calibrated=False).calibrated

    # Re-profiling changes the rows: the old calibration no longer describes them and is ignored, loudly.
    # (+0.01 ms, not x2: a block measured at the floor of 0 ms would stay 0 when doubled)
    table.frame.loc[0, "latency_ms"] += 0.01
    table.save(small_table)
    with caplog.at_level(logging.WARNING, logger="cars_deploy.latency.predictor"):
        stale = LatencyPredictor.load(small_table)
    assert not stale.calibrated and "fitted on other table rows" in caplog.text


def test_a_calibration_for_another_network_is_refused(small_table):
    table = LatencyTable.load(small_table)
    predictor = LatencyPredictor(table, calibration=None)
    other = fit_calibration(np.array([[1.0], [2.0], [3.0]]), np.array([1.0, 2.0, 3.0]), model="linear",
                            network=NetworkConfig.cifar().__dict__, table_fingerprint=predictor.fingerprint)
    with pytest.raises(UserInputError, match="cannot predict"):
        LatencyPredictor(table, calibration=other)
