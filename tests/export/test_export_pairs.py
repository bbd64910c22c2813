"""An exported model and its card are a pair: a kill between them never leaves a card describing
another model; an export removes its own killed predecessor's temporaries and is one process at a time."""
from __future__ import annotations

import hashlib
import json
import signal

import pytest

import cars_deploy.export.api as api
from cars_deploy.errors import UserInputError
from cars_deploy.export import ExportConfig, NetworkRequest, export_model, load_export_source
from cars_deploy.space import GENOTYPES
from tests.lock_holder import start_holder


def _source(seed: int):
    return load_export_source(GENOTYPES.get("DARTS_V2"), request=NetworkRequest(C=4, layers=3, input_size=8), seed=seed)


def test_an_export_killed_between_model_and_card_leaves_no_stale_card(tmp_path, monkeypatch):
    config = ExportConfig(formats=("onnx",), out_dir=tmp_path)
    export_model(_source(1), config)
    card = json.loads((tmp_path / "model.onnx.card.json").read_text())
    assert card["export"]["sha256"] == hashlib.sha256((tmp_path / "model.onnx").read_bytes()).hexdigest()

    def killed(path, card):
        raise KeyboardInterrupt("killed")  # after the new model is in place, before its card

    monkeypatch.setattr(api, "write_model_card", killed)
    with pytest.raises(KeyboardInterrupt):
        export_model(_source(2), config)
    monkeypatch.undo()
    assert (tmp_path / "model.onnx").exists() and not (tmp_path / "model.onnx.card.json").exists()
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())

    stale = tmp_path / ".model.onnx.abcdefgh.tmp"  # a temporary of an export killed while writing
    stale.write_bytes(b"half an onnx file")
    others = tmp_path / ".other.onnx.abcdefgh.tmp"  # another name's: maybe an export running now
    others.write_bytes(b"x")
    export_model(_source(2), config)
    card = json.loads((tmp_path / "model.onnx.card.json").read_text())
    assert card["export"]["sha256"] == hashlib.sha256((tmp_path / "model.onnx").read_bytes()).hexdigest()
    assert not stale.exists() and others.exists()


def test_a_second_export_of_one_name_is_refused_naming_the_first(tmp_path):
    holder = start_holder("path", tmp_path / "model")
    try:
        with pytest.raises(UserInputError, match=f"export {tmp_path / 'model'} is in use by process {holder.pid}"):
            export_model(_source(1), ExportConfig(formats=("onnx",), out_dir=tmp_path))
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert list(tmp_path.iterdir()) == []
