"""One way to fit a system: seeded, deterministic on CPU, bf16 on a GPU, early stopping,
checkpoints, resume from ``last.ckpt``, and a per-epoch history for plots."""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import lightning.pytorch as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    checkpoint_dir: Path
    max_epochs: int = 20
    patience: int = 3
    seed: int = 0
    accelerator: str = "auto"
    monitor: str = "val_loss"
    resume: bool = True
    progress_bar: bool = False
    # One intra-op thread: on a small shared CPU, OpenMP threads that spin-wait on a busy
    # core made a conv step 10x slower than single-threaded (measured on the 2-core box).
    cpu_threads: int = 1
    # Passed to the Trainer as they are, so the same fit runs under DDP ("ddp", devices=N).
    strategy: str = "auto"
    devices: int | str = 1


@dataclass
class FitResult:
    history: list[dict[str, float]] = field(default_factory=list)
    best_checkpoint: str = ""
    epochs: int = 0
    seconds: float = 0.0
    device: str = "cpu"
    precision: str = "32-true"
    samples_per_s: float = 0.0


def _precision(accelerator: str) -> str:
    """bf16 mixed precision on a CUDA device that supports it; full precision elsewhere."""
    use_gpu = accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
    return "bf16-mixed" if use_gpu and torch.cuda.is_bf16_supported() else "32-true"


class EpochHistory(Callback):
    """Records the logged epoch metrics and logs one progress line per epoch."""

    def __init__(self) -> None:
        self.rows: list[dict[str, float]] = []
        self.samples = 0
        self._started = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.samples += _batch_size(batch)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
        row = {"epoch": trainer.current_epoch, **metrics}
        self.rows.append(row)
        rate = self.samples / max(time.perf_counter() - self._started, 1e-9)
        shown = " ".join(f"{k}={v:.4f}" for k, v in metrics.items() if k.endswith("_loss"))
        log.info(
            "%s epoch %d/%d %s (%.0f samples/s)",
            type(pl_module).__name__,
            trainer.current_epoch + 1,
            trainer.max_epochs,
            shown,
            rate,
        )


class RandomState(Callback):
    """Saves the global RNG states (torch, NumPy, Python) in every checkpoint and restores them on
    resume, so dropout draws after a resume are the ones an uninterrupted run would make."""

    def state_dict(self) -> dict:
        # Plain lists and ints, so the checkpoint still loads with torch.load(weights_only=True).
        name, keys, pos, has_gauss, gauss = np.random.get_state()
        return {
            "torch": torch.get_rng_state(),
            "numpy": [name, keys.tolist(), pos, has_gauss, gauss],
            "python": random.getstate(),
        }

    def load_state_dict(self, state_dict: dict) -> None:
        torch.set_rng_state(state_dict["torch"])
        name, keys, pos, has_gauss, gauss = state_dict["numpy"]
        np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
        random.setstate(state_dict["python"])


def _batch_size(batch) -> int:
    first = batch
    while isinstance(first, dict):
        first = next(iter(first.values()))
    return int(first.shape[0])


def seed_everything(config: TrainConfig) -> None:
    """Seed Python, NumPy and torch from ``config.seed``. Callers seed before building their modules too
    (``models.fit.trainers``), so initial weights do not depend on what the process drew before and a re-run on
    the same data trains the same model; ``fit`` seeds again for the data order."""
    L.seed_everything(config.seed, workers=True, verbose=False)


def fit(
    system: L.LightningModule,
    datamodule: L.LightningDataModule,
    config: TrainConfig,
    callbacks: list[Callback] | None = None,
) -> FitResult:
    """Train ``system`` in place and load its best checkpoint's weights back into it.

    With ``config.resume`` a ``last.ckpt`` left in ``checkpoint_dir`` by an interrupted run is
    continued (weights, optimiser, epoch, early-stopping state). ``callbacks`` are added to the
    standard ones (tests use one to interrupt training)."""
    seed_everything(config)
    precision = _precision(config.accelerator)
    on_gpu = precision != "32-true"
    if not on_gpu:
        torch.set_num_threads(config.cpu_threads)
    config.checkpoint_dir.mkdir(parents=True, exist_ok=True)
    history = EpochHistory()
    checkpoint = ModelCheckpoint(dirpath=config.checkpoint_dir, monitor=config.monitor, save_last=True, filename="best")
    trainer = L.Trainer(
        max_epochs=config.max_epochs,
        accelerator=config.accelerator,
        devices=config.devices,
        strategy=config.strategy,
        precision=precision,
        deterministic=not on_gpu,
        callbacks=[
            EarlyStopping(monitor=config.monitor, patience=config.patience),
            checkpoint,
            history,
            RandomState(),
            *(callbacks or []),
        ],
        logger=CSVLogger(save_dir=config.checkpoint_dir, name="logs"),
        enable_progress_bar=config.progress_bar,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        log_every_n_steps=1,
    )
    last = config.checkpoint_dir / "last.ckpt"
    resume_from = str(last) if config.resume and last.exists() else None
    if resume_from:
        log.info("resuming %s from %s", type(system).__name__, resume_from)
    started = time.perf_counter()
    trainer.fit(system, datamodule=datamodule, ckpt_path=resume_from)
    seconds = time.perf_counter() - started
    best = checkpoint.best_model_path or str(last)
    state = torch.load(best, map_location="cpu", weights_only=True)["state_dict"]
    system.load_state_dict(state)
    system.to("cpu").eval()
    return FitResult(
        history=history.rows,
        best_checkpoint=best,
        epochs=trainer.current_epoch,
        seconds=seconds,
        device=str(trainer.strategy.root_device),
        precision=precision,
        samples_per_s=history.samples / max(seconds, 1e-9),
    )
