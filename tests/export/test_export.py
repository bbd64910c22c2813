"""Every format of published genotypes, checked in its real runtime, plus the failure paths of the API."""
import logging
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from cars_deploy.errors import UserInputError
from cars_deploy.export import (
    EXPORTERS,
    ExportConfig,
    ExporterUnavailableError,
    NetworkRequest,
    VerificationError,
    export_model,
    get_exporter,
    load_export_source,
    parse_formats,
)
from cars_deploy.export.onnx import OnnxExporter
from cars_deploy.export.ptl import xnnpack_available
from cars_deploy.space import GENOTYPES, Genotype
from cars_deploy.train import load_checkpoint, read_model_card


def test_random_weights_of_a_published_genotype_onnx_and_ptl(tmp_path, caplog):
    source = load_export_source(GENOTYPES.get("CARS_H"), request=NetworkRequest(C=8, layers=5), seed=1)
    with caplog.at_level(logging.WARNING):
        results = export_model(source, ExportConfig(formats=("onnx", "ptl"), out_dir=tmp_path), label="CARS_H")

    assert [r.format for r in results] == ["onnx", "ptl"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx", "model.onnx.card.json", "model.ptl", "model.ptl.card.json"]
    for result in results:
        card = read_model_card(result.card_path)
        assert card["weights"] == "random" and card["accuracy"] is None and card["name"] == "CARS_H"
        assert card["network"]["C"] == 8 and card["input"]["shape"] == [1, 3, 32, 32] and len(card["class_names"]) == 10
        check = card["export"]["verification"]
        assert check["passed"] and check["max_abs_diff"] == result.max_abs_diff < 1e-4 and check["inputs"] == 3

    proto = onnx.load(str(tmp_path / "model.onnx"))
    assert next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) == 17
    assert {p.key: p.value for p in proto.metadata_props}["genotype"] == str(GENOTYPES.get("CARS_H"))
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(9))  # a batch size never verified
    got = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"]).run(None, {"input": x.numpy()})[0]
    with torch.no_grad():
        np.testing.assert_allclose(got, source.model(x).numpy(), atol=1e-4)

    if not xnnpack_available():
        assert any("XNNPACK" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
        assert read_model_card(tmp_path / "model.ptl.card.json")["export"]["optimizer"] == "torch.jit.freeze"


def test_all_three_formats_of_a_trained_checkpoint(trained, tmp_path):
    # checkpoint.pt is the resumable training state: its auxiliary head and optimizer are left behind.
    source = load_export_source(GENOTYPES.get("DARTS_V2"), checkpoint=trained / "checkpoint.pt")
    results = export_model(source, ExportConfig(formats=("onnx", "ptl", "pte"), out_dir=tmp_path))
    stored = load_checkpoint(trained / "checkpoint.pt")
    assert [r.format for r in results] == ["onnx", "ptl", "pte"]
    for result in results:
        card = read_model_card(result.card_path)
        assert card["weights"] == "trained" and card["accuracy"]["top1"] == stored.test_accuracy
        assert card["dataset"] == "digits" and card["input"]["shape"] == [1, 3, 8, 8]
        assert card["source"]["checkpoint"] == str(trained / "checkpoint.pt") and len(card["source"]["checkpoint_sha256"]) == 64
        assert result.max_abs_diff < 1e-4 == card["export"]["verification"]["tolerance"]
        # Independently of the exporter's own check: run the file on disk in its runtime.
        runner = get_exporter(result.format).load(result.path)
        x = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(42))
        with torch.no_grad():
            assert (runner(x) - source.model(x)).abs().max() < 1e-4
    pte = read_model_card(tmp_path / "model.pte.card.json")["export"]
    assert pte["runtime"].startswith("executorch") and pte["xnnpack_delegates"] >= 1
    assert pte["verification"]["batch_sizes"] == [1, 1, 1] and pte["dynamic_batch"] is False


def test_a_failed_numeric_check_leaves_nothing(trained, tmp_path):
    source = load_export_source(GENOTYPES.get("DARTS_V2"), checkpoint=trained / "model.pt")
    with pytest.raises(VerificationError, match="differ from PyTorch"):
        export_model(source, ExportConfig(formats=("onnx",), out_dir=tmp_path, tolerance=1e-12))
    assert list(tmp_path.iterdir()) == []


def test_missing_executorch_is_a_one_line_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "executorch.runtime", None)  # what an environment without the extra sees
    with pytest.raises(ExporterUnavailableError, match=r"pip install 'cars-deploy\[executorch\]'") as info:
        get_exporter("pte").check_available()
    assert "\n" not in str(info.value)


def test_edge_order_of_a_node_does_not_matter(trained, tmp_path):
    darts = GENOTYPES.get("DARTS_V2")
    swapped = Genotype.of(normal=[darts.normal[1], darts.normal[0], *darts.normal[2:]], reduce=darts.reduce)
    source = load_export_source(swapped, checkpoint=trained / "model.pt")
    assert source.genotype == darts  # the stored order, which the weights are laid out in


def test_format_names():
    assert parse_formats("onnx, PTL,onnx") == ["onnx", "ptl"]
    for bad in ("tflite", ",", "onnx,coreml"):
        with pytest.raises(UserInputError, match="format"):
            parse_formats(bad)


class _DisagreeingOnnx(OnnxExporter):
    """A real ONNX export whose runtime answers 0.5 off: stands for a runtime that computes something else."""

    name = "onnx-off-by-half"
    suffix = ".off.onnx"

    def load(self, path):
        run = super().load(path)
        return lambda x: run(x) + 0.5


def test_one_failing_format_writes_no_format_at_all(tmp_path, monkeypatch):
    monkeypatch.setitem(EXPORTERS._items, _DisagreeingOnnx.name, _DisagreeingOnnx)  # registered for this test only
    source = load_export_source(GENOTYPES.get("CARS_A"), request=NetworkRequest(C=4, layers=3))
    with pytest.raises(VerificationError, match="onnx-off-by-half outputs differ from PyTorch by 0.5"):
        export_model(source, ExportConfig(formats=("onnx", "ptl", _DisagreeingOnnx.name), out_dir=tmp_path))
    assert list(tmp_path.iterdir()) == []  # the verified onnx and ptl files were not put in place either
