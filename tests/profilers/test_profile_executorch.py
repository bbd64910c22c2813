"""Host timing of ExecuTorch (.pte) programs: whole models and a block table with --runtime executorch,
run for real with the executorch package of the dev extra (never skipped)."""
from __future__ import annotations

import json

import pytest

from cars_deploy.cli.profile import main
from cars_deploy.latency.predictor import LatencyPredictor
from cars_deploy.profilers.blocks import BlockKey, network_blocks
from cars_deploy.profilers.export_blocks import BlockExporter
from cars_deploy.profilers.table import LatencyTable
from cars_deploy.space import GENOTYPES

from .conftest import SMALL, SMALL_FLAGS

FAST = ["--rounds", "2", "--runs", "3", "--warmup", "1"]


def test_a_whole_pte_model_is_timed_in_process_with_the_overhead_probe(block_cache, capsys):
    model = BlockExporter(block_cache).export(BlockKey("sep_conv_3x3", 16, 16, 16, 16, 1), "pte")
    assert model.suffix == ".pte" and model.read_bytes()[4:8] == b"ET12"  # an ExecuTorch flatbuffer
    assert main(["--device", "local", "--model", str(model), "--input-shape", "1,16,16,16", *FAST,
                 "--cache-dir", str(block_cache), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["latency_ms"] > 0 and report["overhead_ms"] > 0 and report["runs"] == 6
    assert report["raw_ms"] == pytest.approx(report["latency_ms"] + report["overhead_ms"])


@pytest.mark.parametrize("kind", ["stem0", "stem1"])
def test_imagenet_stems_export_to_pte_and_compute_what_the_block_computes(block_cache, kind):
    """stem1 opens with an in-place ReLU on its input, which ExecuTorch's lowering once rejected
    ("Could not find input in either buffer or input nodes"), stopping every ImageNet .pte table."""
    import torch
    from executorch.runtime import Runtime

    from cars_deploy.profilers.blocks import build_block
    from cars_deploy.profilers.export_blocks import seeded, text_seed

    key = BlockKey(kind, 3 if kind == "stem0" else 24, 24, 56 if kind == "stem0" else 14, 56 if kind == "stem0" else 14,
                   4 if kind == "stem0" else 2)
    path = BlockExporter(block_cache).export(key, "pte")
    x = torch.randn(1, key.C_in, key.H, key.W)
    with seeded(text_seed(key.id)):
        expected = build_block(key).eval()(x.clone())
    got = Runtime.get().load_program(str(path)).load_method("forward").execute([x.clone()])[0]
    assert got.shape == expected.shape == (1, key.C_out, key.H // key.stride, key.W // key.stride)
    assert torch.allclose(got, expected, atol=1e-4)


def test_runtime_executorch_builds_a_table_of_every_block(tmp_path, block_cache, capsys):
    out = tmp_path / "pte-table"
    assert main(["--device", "local", "--runtime", "executorch", *SMALL_FLAGS, *FAST, "--cache-dir", str(block_cache),
                 "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    table = LatencyTable.load(out.with_suffix(".csv"))
    assert summary["blocks"] == len(table) == len(network_blocks(SMALL))
    assert (table.frame["latency_ms"] >= 0).all() and (table.frame["latency_ms"] > 0).mean() > 0.5
    settings = table.meta["settings"]
    assert settings["runtime"] == "executorch" and "executorch" in json.dumps(table.meta)
    assert all((block_cache / "pte" / f"{key.id}.pte").is_file() for key in network_blocks(SMALL))
    assert LatencyPredictor.load(out.with_suffix(".csv"), network=SMALL).block_sum([GENOTYPES.get("DARTS_V2")])[0] > 0
