"""Blocks export alone to ONNX opset 17 and TorchScript Lite, run in their runtimes, and are cached."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch.jit.mobile import _load_for_lite_interpreter

from cars_deploy.errors import UserInputError
from cars_deploy.profilers.blocks import EMPTY_KEY, BlockKey, block_input_shapes, build_block
from cars_deploy.profilers.export_blocks import BlockExporter, seeded, text_seed

KEYS = [
    BlockKey("sep_conv_5x5", 8, 8, 16, 16, 2),
    BlockKey("skip_connect", 8, 8, 16, 16, 2),
    BlockKey("none", 8, 8, 8, 8, 1),
    BlockKey("concat", 4, 16, 8, 8, 1),
    BlockKey("stem0", 3, 8, 64, 64, 4),
    BlockKey("head", 32, 7, 2, 2, 1),
    EMPTY_KEY,
]


def _reference(key: BlockKey, inputs: list[np.ndarray]) -> np.ndarray:
    with seeded(text_seed(key.id)):
        module = build_block(key)
    with torch.no_grad():
        return module(*(torch.from_numpy(x) for x in inputs)).numpy()


@pytest.mark.parametrize("key", KEYS, ids=lambda k: k.id)
def test_onnx_export_is_opset_17_and_matches_pytorch_in_onnxruntime(key, block_cache, rng):
    path = BlockExporter(block_cache).export(key, "onnx")
    model = onnx.load(str(path))
    assert {o.domain or "ai.onnx": o.version for o in model.opset_import}["ai.onnx"] == 17
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inputs = [rng.standard_normal(s).astype(np.float32) for s in block_input_shapes(key)]
    (out,) = session.run(None, {i.name: x for i, x in zip(session.get_inputs(), inputs)})
    np.testing.assert_allclose(out, _reference(key, inputs), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("key", KEYS[:4], ids=lambda k: k.id)
def test_ptl_export_runs_in_the_lite_interpreter(key, block_cache, rng):
    path = BlockExporter(block_cache).export(key, "ptl")
    module = _load_for_lite_interpreter(str(path))
    inputs = [rng.standard_normal(s).astype(np.float32) for s in block_input_shapes(key)]
    with torch.no_grad():
        out = module(*(torch.from_numpy(x) for x in inputs)).numpy()
    np.testing.assert_allclose(out, _reference(key, inputs), rtol=1e-4, atol=1e-5)


def test_exports_are_cached_by_key_and_leave_no_temporary_files(tmp_path):
    exporter = BlockExporter(tmp_path)
    key = KEYS[0]
    first = exporter.export(key, "onnx")
    stamp = first.stat().st_mtime_ns
    assert exporter.export(key, "onnx") == first and first.stat().st_mtime_ns == stamp  # not exported again
    assert first == tmp_path / "onnx17" / f"{key.id}.onnx"
    assert [p.name for p in first.parent.iterdir()] == [first.name]
    # a block's weights come from its own seed, so a fresh cache exports the same file
    again = BlockExporter(tmp_path / "other").export(key, "onnx")
    assert onnx.load(str(again)).graph.initializer[0].raw_data == onnx.load(str(first)).graph.initializer[0].raw_data


def test_unknown_format_is_a_user_error(tmp_path):
    with pytest.raises(UserInputError, match="unknown model format"):
        BlockExporter(tmp_path).export(KEYS[0], "tflite")
