"""Retraining a genotype's child network from scratch, as CARS evaluates its searched models (section 4.2).

The loop is the DARTS ``train.py`` one: SGD with momentum, the cross-entropy of the logits plus
``auxiliary_weight`` times that of the auxiliary head, gradient-norm clipping, drop path whose
probability grows linearly with the epoch, and a learning rate stepped once per epoch.

Every epoch ends with an atomic checkpoint holding all the state the next epoch reads (weights,
optimizer, schedule, the global torch and data-order random states), so that a killed run restarted
on the same folder continues exactly where it stopped and ends with the same weights as a run that was
never interrupted. The data order comes from a ``torch.Generator`` owned by the trainer; augmentation
and drop path draw from the global torch generator, which the trainer seeds and checkpoints.
"""
from __future__ import annotations

import logging
import time
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import Any, Callable, Literal

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Subset

from .._io import remove_stale_temps
from .._locks import hold_lock
from .._progress import progress
from ..data import DatasetInfo, dataset_info, load_dataset
from ..errors import CheckpointError, UserInputError
from ..space import Genotype, NetworkConfig, build_network
from ..torch_device import images_to, module_to, resolve_torch_device
from .checkpoint import Checkpoint, load_checkpoint, require_same_run, save_checkpoint, strip_auxiliary
from .config import TrainConfig
from .data_fit import training_network, usable_config
from .model_card import build_model_card, write_model_card
from .outputs import prepare_output_dir
from .records import EpochRecord, TrainingDivergedError, TrainResult, describe_epoch

__all__ = [
    "CHECKPOINT_NAME",
    "CARD_NAME",
    "MODEL_NAME",
    "Trainer",
]

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "checkpoint.pt"
MODEL_NAME = "model.pt"
CARD_NAME = "model_card.json"

ResumeFrom = Literal["auto", "never"] | Path


class Trainer:
    """Trains the child network of ``genotype`` from scratch on a dataset with a ``TrainConfig``.

    The network size comes from ``network`` (its ``num_classes`` and ``input_size`` must match the
    dataset). Settings the data cannot use are turned off with a logged note instead of failing: the
    auxiliary head on inputs too small for it (``NetworkConfig.validate`` explains), and augmentation
    and Cutout on the embedded 8x8 digits. The settings actually used are ``self.config``.

    On CUDA, ``deterministic`` (the default) makes cuDNN pick deterministic algorithms, so that a
    resumed run ends exactly where an uninterrupted one does; ``False`` lets it benchmark faster ones.
    The seed also fixes the initial weights: the trainer seeds the global torch generator.
    """

    def __init__(
        self,
        genotype: Genotype,
        network: NetworkConfig,
        config: TrainConfig,
        *,
        dataset: str = "digits",
        data_dir: Path | None = None,
        device: str | None = None,
        workers: int = 0,
        name: str | None = None,
        deterministic: bool = True,
    ):
        config.validate()
        if workers < 0:
            raise UserInputError(f"workers must not be negative, got {workers}")
        self.genotype = genotype
        self.name = name
        self.info: DatasetInfo = dataset_info(dataset, data_dir, input_size=network.input_size)
        if (network.num_classes, network.input_size) != (self.info.num_classes, self.info.input_size):
            raise UserInputError(
                f"the network is built for {network.num_classes} classes at {network.input_size}px but {dataset} "
                f"has {self.info.num_classes} classes at {self.info.input_size}px"
            )
        self.notes: list[str] = []  # settings turned off for this data; logged when training starts
        self.config = usable_config(config, self.info, self.notes)
        self.network = training_network(network, self.config, self.notes)
        if self.network.auxiliary is False and self.config.auxiliary_weight > 0:
            self.config = replace(self.config, auxiliary_weight=0.0)
        self.device = resolve_torch_device(device)
        if self.device.type == "cuda":
            # cuDNN's fastest algorithms are not deterministic: with them a resumed run (or any rerun)
            # drifts away from the uninterrupted one. Reproducible by default, fast on request.
            torch.backends.cudnn.deterministic = deterministic
            torch.backends.cudnn.benchmark = not deterministic
        self.workers = workers
        self.data_dir = data_dir

        with torch.random.fork_rng(devices=[]):  # the seed fixes the initial weights; fit() seeds the rest
            torch.manual_seed(self.config.seed)
            self.model = module_to(build_network(genotype, self.network), self.device)
        self.criterion = nn.CrossEntropyLoss(label_smoothing=self.config.label_smoothing)
        self.optimizer = torch.optim.SGD(
            self.model.parameters(),
            lr=self.config.lr,
            momentum=self.config.momentum,
            weight_decay=self.config.weight_decay,
        )
        schedule = self.config  # captured by value: LambdaLR saves no function in its state_dict
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda epoch: schedule.lr_factor(epoch))
        self.order_generator = torch.Generator().manual_seed(self.config.seed)
        self._train_loader: DataLoader | None = None
        self._test_loader: DataLoader | None = None

    # ----- data ---------------------------------------------------------------------------------------
    @property
    def train_loader(self) -> DataLoader:
        if self._train_loader is None:
            data = load_dataset(
                self.info.name,
                split="train",
                data_dir=self.data_dir,
                augment=self.config.augment,
                cutout=self.config.cutout,
                input_size=self.info.input_size,
            )
            self._train_loader = self._loader(data, shuffle=True, generator=self.order_generator)
        return self._train_loader

    @property
    def test_loader(self) -> DataLoader:
        if self._test_loader is None:
            data = load_dataset(self.info.name, split="test", data_dir=self.data_dir, input_size=self.info.input_size)
            limit = self.config.max_test_images
            if limit is not None and limit < len(data):
                # A fixed random subset (the same in every run): test folders are sorted by class.
                order = np.random.default_rng(0).permutation(len(data))[:limit]
                data = Subset(data, sorted(order.tolist()))
            # Its own generator, so that evaluating never draws from the generators training depends on.
            self._test_loader = self._loader(data, shuffle=False, generator=torch.Generator().manual_seed(0))
        return self._test_loader

    def _loader(self, data: Any, *, shuffle: bool, generator: torch.Generator) -> DataLoader:
        return DataLoader(
            data,
            batch_size=self.config.batch_size,
            shuffle=shuffle,
            generator=generator,
            num_workers=self.workers,
            pin_memory=self.device.type == "cuda",
        )

    # ----- one pass -------------------------------------------------------------------------------------
    def evaluate(self) -> float:
        """Top-1 accuracy of the current weights on the test split (eval mode, no drop path)."""
        self.model.eval()
        correct = total = 0
        with torch.no_grad():
            for images, labels in progress(self.test_loader, desc="test", unit="batch"):
                images, labels = images_to(images, self.device), labels.to(self.device)
                correct += int((self.model(images).argmax(1) == labels).sum())
                total += int(labels.numel())
        return correct / max(total, 1)

    def _train_epoch(self, epoch: int) -> tuple[float, float]:
        """One epoch of SGD; returns (mean loss, top-1 on the training batches)."""
        config = self.config
        self.model.train()
        self.model.drop_path_prob = config.drop_path_at(epoch)
        batches = len(self.train_loader)
        if config.max_train_batches is not None:
            batches = min(batches, config.max_train_batches)
        loss_sum = correct = seen = 0.0
        bar = progress(self.train_loader, total=batches, desc=f"epoch {epoch + 1}/{config.epochs}", unit="batch")
        for step, (images, labels) in enumerate(bar):
            if step >= batches:
                break
            images = images_to(images, self.device, non_blocking=True)
            labels = labels.to(self.device, non_blocking=True)
            self.optimizer.zero_grad(set_to_none=True)
            logits, logits_aux = self.model.forward_train(images)
            loss = self.criterion(logits, labels)
            if logits_aux is not None:
                loss = loss + config.auxiliary_weight * self.criterion(logits_aux, labels)
            if not torch.isfinite(loss):
                raise TrainingDivergedError(
                    f"the training loss became {loss.item()} at epoch {epoch + 1}, batch {step + 1}; lower --lr"
                )
            loss.backward()
            if config.grad_clip > 0:
                nn.utils.clip_grad_norm_(self.model.parameters(), config.grad_clip)
            self.optimizer.step()
            n = labels.numel()
            loss_sum += loss.item() * n
            correct += float((logits.argmax(1) == labels).sum())
            seen += n
            bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}")
        bar.close()
        return loss_sum / max(seen, 1), correct / max(seen, 1)

    # ----- the run --------------------------------------------------------------------------------------
    def fit(
        self,
        out_dir: str | Path,
        *,
        resume: ResumeFrom = "auto",
        eval_every: int = 1,
        on_epoch_end: Callable[[EpochRecord], None] | None = None,
    ) -> TrainResult:
        """Trains for ``config.epochs`` epochs and writes ``checkpoint.pt``, ``model.pt`` and
        ``model_card.json`` into ``out_dir``.

        ``resume``: ``"auto"`` continues from ``out_dir/checkpoint.pt`` when it exists, ``"never"``
        starts afresh (overwriting it), a path continues from that checkpoint. A checkpoint of another
        genotype, network size, dataset or training settings is a ``CheckpointError``. The test split
        is evaluated every ``eval_every`` epochs and always after the last one. ``on_epoch_end`` is
        called after each epoch's checkpoint is on disk.
        """
        if eval_every < 1:
            raise UserInputError(f"eval_every must be at least 1, got {eval_every}")
        source = _resume_source(resume, Path(out_dir) / CHECKPOINT_NAME)
        # One process per output folder (refused before anything is made). Inside the lock, everything that
        # can be refused is checked before the folder is made: the checkpoint resumed (read and matched to
        # this run), then the dataset; then the temporary files of a killed run's atomic writes go.
        with hold_lock(out_dir, what=f"training output {out_dir}"):
            resumed = self._restore(load_checkpoint(source, map_location=self.device), source=str(source)) if source else None
            _ = self.train_loader, self.test_loader  # a missing or damaged dataset fails here, before any folder is made
            out = prepare_output_dir(out_dir)
            remove_stale_temps(out)
            return self._fit(out, source, resumed, eval_every, on_epoch_end)

    def _fit(
        self,
        out: Path,
        source: Path | None,
        resumed: tuple[int, list[EpochRecord]] | None,
        eval_every: int,
        on_epoch_end: Callable[[EpochRecord], None] | None,
    ) -> TrainResult:
        checkpoint_path = out / CHECKPOINT_NAME
        history: list[EpochRecord] = []
        start = 0
        if resumed is not None:
            start, history = resumed
        else:
            torch.manual_seed(self.config.seed)
            self.order_generator.manual_seed(self.config.seed)
        for note in self.notes:
            log.info("note: %s", note)
        if source is not None:
            log.info("resuming from %s after epoch %d of %d", source, start, self.config.epochs)

        for epoch in range(start, self.config.epochs):
            began = time.perf_counter()
            lr = self.optimizer.param_groups[0]["lr"]
            loss, train_accuracy = self._train_epoch(epoch)
            self.scheduler.step()
            last = epoch + 1 == self.config.epochs
            test_accuracy = self.evaluate() if last or (epoch + 1) % eval_every == 0 else None
            record = EpochRecord(
                epoch=epoch + 1,
                lr=lr,
                drop_path=self.config.drop_path_at(epoch),
                train_loss=loss,
                train_accuracy=train_accuracy,
                test_accuracy=test_accuracy,
                seconds=time.perf_counter() - began,
            )
            history.append(record)
            save_checkpoint(checkpoint_path, self._checkpoint(epoch + 1, history))
            log.info(describe_epoch(record, self.config.epochs))
            if on_epoch_end is not None:
                on_epoch_end(record)

        final = history[-1].test_accuracy if history and history[-1].test_accuracy is not None else self.evaluate()
        model_path, card_path, card = self._write_final(out, history, final)
        return TrainResult(
            test_accuracy=final,
            history=history,
            epochs_run=self.config.epochs - start,
            resumed_from_epoch=start,
            checkpoint_path=checkpoint_path,
            model_path=model_path,
            card_path=card_path,
            card=card,
        )

    # ----- checkpoints ----------------------------------------------------------------------------------
    def _checkpoint(self, epoch: int, history: list[EpochRecord]) -> Checkpoint:
        rng: dict[str, Any] = {"torch": torch.get_rng_state(), "order": self.order_generator.get_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state_all()
        return Checkpoint(
            kind="train",
            genotype=str(self.genotype),
            network=asdict(self.network),
            dataset=asdict(self.info),
            model_state=self.model.state_dict(),
            train_config=self.config.to_dict(),
            epoch=epoch,
            optimizer_state=self.optimizer.state_dict(),
            scheduler_state=self.scheduler.state_dict(),
            rng_state=rng,
            history=[asdict(r) for r in history],
            test_accuracy=history[-1].test_accuracy if history else None,
        )

    def _restore(self, checkpoint: Checkpoint, *, source: str) -> tuple[int, list[EpochRecord]]:
        if checkpoint.kind != "train":
            raise CheckpointError(f"{source} holds final weights, not a resumable training checkpoint")
        hint = "; use another output folder (--out) or start afresh (--fresh)"
        try:
            require_same_run(checkpoint, genotype=self.genotype, network=self.network, source=source)
        except CheckpointError as exc:
            raise CheckpointError(f"{exc}{hint}") from None
        if checkpoint.dataset.get("name") != self.info.name:
            raise CheckpointError(f"{source} was trained on {checkpoint.dataset.get('name')}, not {self.info.name}{hint}")
        stored = checkpoint.train_config or {}
        changed = [f"{k} {stored.get(k)!r} -> {v!r}" for k, v in self.config.to_dict().items() if stored.get(k) != v]
        if changed:
            raise CheckpointError(f"{source} was made with other training settings ({'; '.join(changed)}){hint}")
        if not 0 <= checkpoint.epoch <= self.config.epochs:
            raise CheckpointError(f"{source} claims {checkpoint.epoch} finished epochs of {self.config.epochs}")
        try:
            self.model.load_state_dict(checkpoint.model_state)
            self.optimizer.load_state_dict(checkpoint.optimizer_state or {})
            self.scheduler.load_state_dict(checkpoint.scheduler_state or {})
            rng = checkpoint.rng_state
            torch.set_rng_state(rng["torch"].cpu())
            self.order_generator.set_state(rng["order"].cpu())
            if self.device.type == "cuda" and "cuda" in rng:
                torch.cuda.set_rng_state_all([state.cpu() for state in rng["cuda"]])
        except (RuntimeError, KeyError, ValueError, TypeError, AttributeError) as exc:
            raise CheckpointError(f"{source} does not fit this run: {' '.join(str(exc).split())[:200]}") from None
        known = {f.name for f in fields(EpochRecord)}
        history = [EpochRecord(**{k: v for k, v in r.items() if k in known}) for r in checkpoint.history]
        return checkpoint.epoch, history

    def _write_final(self, out: Path, history: list[EpochRecord], accuracy: float) -> tuple[Path, Path, dict[str, Any]]:
        """Writes ``model.pt`` (weights without the auxiliary head) and ``model_card.json``."""
        final = strip_auxiliary(self._checkpoint(self.config.epochs, history))
        final.test_accuracy = accuracy
        model_path, card_path = out / MODEL_NAME, out / CARD_NAME
        card_path.unlink(missing_ok=True)  # a pair: never a card beside a model it does not describe
        save_checkpoint(model_path, final)
        deployed = build_network(self.genotype, final.network_config())
        deployed.load_state_dict(final.model_state)
        card = build_model_card(
            genotype=self.genotype,
            network=final.network_config(),
            model=deployed.cpu(),
            dataset=self.info,
            weights="trained",
            name=self.name,
            test_accuracy=accuracy,
            test_images=len(self.test_loader.dataset),  # type: ignore[arg-type]
            training=self.config.to_dict(),
            extra={"history": [asdict(r) for r in history], "weights_file": MODEL_NAME},
        )
        write_model_card(card_path, card)
        return model_path, card_path, card


def _resume_source(resume: ResumeFrom, checkpoint_path: Path) -> Path | None:
    if resume == "never":
        return None
    if resume == "auto":
        return checkpoint_path if checkpoint_path.is_file() else None
    path = Path(resume)
    if not path.is_file():
        raise CheckpointError(f"checkpoint to resume from not found: {path}")
    return path
