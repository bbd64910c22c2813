"""LatencyTable: round trip, validation, no duplicates, missing blocks, and the shipped host table."""
from __future__ import annotations

import json

import numpy as np
import pytest

from cars_deploy.profilers.blocks import BlockKey, block_index, network_blocks
from cars_deploy.profilers.table import FORMAT, LatencyTable, MissingBlockError, TableError, resolve_table, table_files
from cars_deploy.space import GENOTYPES, NetworkConfig

from .conftest import SMALL


def _rows(keys, scale=1.0):
    return [
        {**k.as_dict(), "latency_ms": scale * (i + 1) / 100, "p10_ms": scale * (i + 1) / 110, "p50_ms": scale * (i + 1) / 90,
         "p90_ms": scale * (i + 1) / 80, "iqr_ms": 0.001, "overhead_ms": 0.003, "rounds": 5, "runs": 50}
        for i, k in enumerate(keys)
    ]


def _table(keys):
    return LatencyTable.empty({"settings": {"device": "local", "runtime": "onnxruntime", "threads": 1}}).with_rows(_rows(keys))


def test_save_and_load_round_trip(tmp_path):
    keys = network_blocks(SMALL)
    table = _table(keys)
    csv = table.save(tmp_path / "t")
    assert csv == tmp_path / "t.csv" and (tmp_path / "t.json").is_file()
    loaded = LatencyTable.load(tmp_path / "t")
    assert loaded.keys() == keys and len(loaded) == len(keys)
    np.testing.assert_allclose(loaded.vector(keys), [r["latency_ms"] for r in _rows(keys)], rtol=1e-5)
    assert LatencyTable.load(str(csv)).meta["format"] == FORMAT
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv", "t.json"]  # nothing temporary left


def test_adding_rows_never_duplicates_nor_overwrites(tmp_path):
    keys = network_blocks(SMALL)
    table = _table(keys[:10])
    bigger = table.with_rows(_rows(keys, scale=100.0))  # keys[:10] again, with other values
    assert len(bigger) == len(keys)
    np.testing.assert_allclose(bigger.vector(keys[:10]), table.vector(keys[:10]))
    bigger.save(tmp_path / "t")
    assert not LatencyTable.load(tmp_path / "t").frame.duplicated(["kind", "C_in", "C_out", "H", "W", "stride"]).any()


def test_missing_block_names_the_block_and_the_command_that_fills_it(tmp_path):
    table = _table(network_blocks(SMALL)[:5])
    table.save(tmp_path / "t")
    table = LatencyTable.load(tmp_path / "t")
    missing = BlockKey("sep_conv_5x5", 96, 96, 14, 14, 1)
    with pytest.raises(MissingBlockError) as error:
        table.vector([table.keys()[0], missing])
    message = str(error.value)
    assert error.value.key == missing and "sep_conv_5x5-96-96-14x14-s1" in message and "\n" not in message
    assert f"cars-profile --device local --runtime onnxruntime --threads 1 --out {tmp_path / 't'}" in message
    with pytest.raises(MissingBlockError, match="--network cifar --C 4 --layers 3 --input-size 8 --out"):
        table.vector([missing], config=SMALL)
    assert "--network imagenet --out" in table.fill_command(NetworkConfig.imagenet())


@pytest.mark.parametrize(
    "damage, match",
    [
        (lambda csv, js: csv.write_text(csv.read_text().replace("latency_ms", "latency")), "missing columns latency_ms"),
        (lambda csv, js: csv.write_text(csv.read_text() + csv.read_text().splitlines()[1] + "\n"), "appears twice"),
        (lambda csv, js: csv.write_text(csv.read_text().replace(",5,50", ",5,-50", 1)), "runs"),
        (lambda csv, js: csv.write_text(csv.read_text().replace("stem,", "stemm,", 1)), "unknown block kinds stemm"),
        (lambda csv, js: js.write_text("{not json"), "unreadable"),
        (lambda csv, js: js.write_text(json.dumps({"format": "something else"})), "sidecar"),
        (lambda csv, js: js.unlink(), "has no sidecar"),
        (lambda csv, js: csv.write_text('kind,C_in\n"unterminated'), "unreadable|missing columns"),
    ],
    ids=["column", "duplicate", "negative", "kind", "json", "format", "no-sidecar", "csv"],
)
def test_damaged_tables_are_one_line_errors(tmp_path, damage, match):
    _table(network_blocks(SMALL)).save(tmp_path / "t")
    damage(*table_files(tmp_path / "t"))
    with pytest.raises(TableError, match=match) as error:
        LatencyTable.load(tmp_path / "t")
    assert "\n" not in str(error.value)


def test_unknown_table_lists_the_shipped_ones(tmp_path):
    with pytest.raises(TableError, match="host-cpu-imagenet-ort1"):
        resolve_table(tmp_path / "nope")


def test_shipped_host_table_covers_every_imagenet_block():
    """The table installed with the package (latency_tables/), loaded by bare name, has every block
    of the ImageNet mobile network, so the published genotypes get a block sum without profiling."""
    table = LatencyTable.load("host-cpu-imagenet-ort1")
    config = NetworkConfig.imagenet()
    assert set(network_blocks(config)) <= set(table.keys())
    assert table.meta["settings"] == {"device": "local", "runtime": "onnxruntime", "threads": 1, "cpu_mask": None, "runner": None}
    index = block_index(config)
    latencies = table.vector(index.keys)
    sums = index.block_sum(np.stack([GENOTYPES.get(n).encode() for n in ("CARS_Lat_A", "CARS_H")]), latencies)
    assert (latencies >= 0).all() and 0 < sums[0] < sums[1]  # the latency-searched model is the faster one
