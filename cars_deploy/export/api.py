"""Exporting one network to several formats, each file checked against PyTorch before it is put in place.

For each format: write to a temporary file in the output folder, load it in the format's runtime, and
run it and PyTorch on the same seeded random inputs. Only when every format's largest absolute
difference of the logits is under the tolerance are the files renamed to their final names
(``os.replace``, atomic) and their model cards written beside them: a call writes all its formats or
none. Every check that can fail on user input (format names, optional dependencies, the checkpoint,
the output folder) runs before the first file is written. A model and its card are a pair: the old card
is deleted before the new model takes its place and the new card follows, so a kill in between leaves
a model without a card, never a card describing another model. An export holds the lock of its name
in the folder (``cars_deploy._locks``) and first deletes the temporary files a killed export of that name left.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .._io import default_file_mode, fsync_dir, remove_stale_temps
from .._locks import hold_lock
from ..errors import UserInputError
from ..formats import ONNX
from ..train.model_card import build_model_card, write_model_card
from ..train.outputs import prepare_output_dir
from .base import ExportedFile, Exporter, ExportError, VerificationError, get_exporter, parse_formats
from .loading import ExportSource

__all__ = ["ExportConfig", "ExportResult", "card_path_for", "check_export_config", "export_model"]


@dataclass(frozen=True)
class ExportConfig:
    """How to export and how strictly to check the exported files."""

    formats: tuple[str, ...] = (ONNX.name,)  # format names (see EXPORTERS), written in this order
    out_dir: Path = Path("export")  # folder that receives the files and their model cards
    name: str = "model"  # file stem: model.onnx, model.onnx.card.json, ...
    tolerance: float = 1e-4  # largest accepted |runtime - PyTorch| over all logits
    verify_inputs: int = 3  # random input batches compared per format
    seed: int = 0  # seeds the verification inputs


@dataclass(frozen=True)
class ExportResult:
    """One written format."""

    format: str
    path: Path  # the exported file
    card_path: Path  # its model card
    max_abs_diff: float  # largest |runtime - PyTorch| measured
    notes: list[str] = field(default_factory=list)  # warnings raised while exporting
    seconds: float = 0.0  # export plus verification time


def card_path_for(path: Path) -> Path:
    """The model card beside an exported file: ``model.onnx`` -> ``model.onnx.card.json``."""
    return path.with_name(path.name + ".card.json")


def check_export_config(config: ExportConfig) -> list[Exporter]:
    """The exporters of ``config``, after checking names, settings and optional dependencies (touches no file)."""
    if not config.tolerance > 0:
        raise UserInputError(f"tolerance must be positive, got {config.tolerance}")
    if config.verify_inputs < 1:
        raise UserInputError(f"verify_inputs must be at least 1, got {config.verify_inputs}")
    _check_name(config.name)
    exporters = [get_exporter(name) for name in parse_formats(list(config.formats))]
    for exporter in exporters:
        exporter.check_available()
    return exporters


def export_model(source: ExportSource, config: ExportConfig, *, label: str | None = None) -> list[ExportResult]:
    """Writes ``source``'s network in every format of ``config``, verified, each with a model card."""
    exporters = check_export_config(config)
    out = prepare_output_dir(config.out_dir)
    with hold_lock(out / config.name, what=f"export {out / config.name}"):
        names = [f"{config.name}{e.suffix}" for e in exporters]
        remove_stale_temps(out, names + [card_path_for(out / n).name for n in names])
        return _export(source, config, exporters, out, label)


def _export(
    source: ExportSource, config: ExportConfig, exporters: list[Exporter], out: Path, label: str | None
) -> list[ExportResult]:
    base_card = build_model_card(
        genotype=source.genotype,
        network=source.network,
        model=source.model,
        dataset=source.dataset,
        weights=source.weights,
        name=label,
        test_accuracy=source.test_accuracy,
        training=source.training,
        extra={
            "source": {
                "checkpoint": None if source.checkpoint is None else str(source.checkpoint),
                "checkpoint_sha256": source.checkpoint_sha256,
            }
        },
    )
    metadata = _metadata(base_card)
    staged: list[_Staged] = []
    try:
        for exporter in exporters:  # every format is written and verified before any is put in place
            staged.append(_stage(exporter, source, config, out, metadata))
    except BaseException:
        for item in staged:
            item.tmp.unlink(missing_ok=True)
        raise
    return [_commit(item, out, config, base_card) for item in staged]


@dataclass
class _Staged:
    """A verified file still under its temporary name."""

    exporter: Exporter
    tmp: Path
    written: ExportedFile
    inputs: list[torch.Tensor]
    diff: float
    seconds: float


def _stage(
    exporter: Exporter, source: ExportSource, config: ExportConfig, out: Path, metadata: dict[str, str]
) -> _Staged:
    """Exports to a temporary file in ``out`` and checks it in its runtime; removes it on any failure."""
    began = time.perf_counter()
    fd, tmp_name = tempfile.mkstemp(prefix=f".{config.name}{exporter.suffix}.", suffix=".tmp", dir=out)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        example = _random_input(source, batch=1, seed=config.seed)
        try:
            written = exporter.export(source.model, example, tmp, metadata=metadata)
            runner = exporter.load(tmp)
        except Exception as exc:  # noqa: BLE001 - any exporter/runtime failure becomes one line, exit 1
            raise ExportError(f"{exporter.name} export failed: {type(exc).__name__}: {_line(exc)}") from exc
        sizes = exporter.batch_sizes
        inputs = [
            _random_input(source, batch=sizes[i % len(sizes)], seed=config.seed + 1 + i) for i in range(config.verify_inputs)
        ]
        diff = _max_abs_diff(source, runner, inputs, exporter.name)
        if not diff < config.tolerance:
            raise VerificationError(
                f"{exporter.name} outputs differ from PyTorch by {diff:.3g} (tolerance {config.tolerance:g}); "
                "no file was written"
            )
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return _Staged(exporter, tmp, written, inputs, diff, time.perf_counter() - began)


def _commit(item: _Staged, out: Path, config: ExportConfig, base_card: dict[str, Any]) -> ExportResult:
    """Renames a verified file to its final name (atomic) and writes its model card beside it."""
    exporter = item.exporter
    final = out / f"{config.name}{exporter.suffix}"
    os.chmod(item.tmp, default_file_mode())  # mkstemp makes it private; a shipped model is an ordinary file
    card_path = card_path_for(final)
    card_path.unlink(missing_ok=True)  # never a card beside a model it does not describe, even after a kill
    fsync_dir(out)
    os.replace(item.tmp, final)
    fsync_dir(out)
    card = dict(base_card)
    card["export"] = {
        "format": exporter.name,
        "file": final.name,
        "bytes": final.stat().st_size,
        "sha256": hashlib.sha256(final.read_bytes()).hexdigest(),
        "runtime": exporter.runtime(),
        "verification": {
            "inputs": len(item.inputs),
            "batch_sizes": [int(x.shape[0]) for x in item.inputs],
            "distribution": "standard normal (already-normalised inputs), seeded",
            "max_abs_diff": item.diff,
            "tolerance": config.tolerance,
            "passed": True,
        },
        "notes": item.written.notes,
        **item.written.details,
    }
    write_model_card(card_path, card)
    return ExportResult(exporter.name, final, card_path, item.diff, item.written.notes, item.seconds)


def _random_input(source: ExportSource, *, batch: int, seed: int) -> torch.Tensor:
    """A seeded standard-normal batch: the scale of inputs after the card's normalisation."""
    shape = (batch, source.network.in_channels, source.network.input_size, source.network.input_size)
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def _max_abs_diff(source: ExportSource, runner: Any, inputs: list[torch.Tensor], name: str) -> float:
    worst = 0.0
    for x in inputs:
        with torch.no_grad():
            expected = source.model(x)
        try:
            got = runner(x.clone())
        except Exception as exc:  # noqa: BLE001 - a runtime that cannot run the file
            raise ExportError(f"{name} runtime failed to run the exported file: {type(exc).__name__}: {_line(exc)}") from exc
        if tuple(got.shape) != tuple(expected.shape):
            raise VerificationError(f"{name} output shape {tuple(got.shape)} differs from PyTorch's {tuple(expected.shape)}")
        worst = max(worst, float((got.float() - expected).abs().max()))
    return worst


def _metadata(card: dict[str, Any]) -> dict[str, str]:
    """String facts embedded in formats that carry metadata (ONNX metadata_props, .ptl extra file)."""
    return {
        "genotype": card["genotype"],
        "network": json.dumps(card["network"]),
        "input": json.dumps(card["input"]),
        "class_names": json.dumps(card["class_names"]),
        "weights": card["weights"],
        "producer": f"cars-deploy {card['cars_deploy_version']}",
    }


def _check_name(name: str) -> None:
    if not name or name in (".", "..") or "/" in name or "\\" in name or name.startswith("."):
        raise UserInputError(f"--name must be a plain file stem (no folders, not hidden), got {name!r}")


def _line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200]
