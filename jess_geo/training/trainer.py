"""The Lightning trainer of a run: devices, nodes, strategy, precision, and quiet start-up."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import warnings
from typing import Any, Iterator, Sequence

import lightning as L
import torch
from lightning.fabric.utilities.exceptions import MisconfigurationException

from jess_geo.errors import ConfigError
from jess_geo.training.config import TrainerConfig

_CHATTER = (
    "lightning.pytorch.utilities.rank_zero", "lightning.pytorch.accelerators.cuda", "lightning.fabric.utilities.seed",
    "lightning.pytorch.trainer.connectors.signal_connector", "lightning.pytorch.trainer.connectors.checkpoint_connector",
    "lightning.fabric.utilities.distributed", "lightning.pytorch.strategies.ddp",
)


@contextlib.contextmanager
def quiet_lightning() -> Iterator[None]:
    """Silence Lightning's start-up chatter (GPU/TPU lines, tips, DDP banners); keep warnings and errors."""
    loggers = [logging.getLogger(n) for n in _CHATTER]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, lv in zip(loggers, levels):
            lg.setLevel(lv)


def _precision(t: TrainerConfig) -> str:
    if t.precision != "auto":
        return t.precision
    gpu = t.accelerator in ("gpu", "cuda") or (t.accelerator == "auto" and torch.cuda.is_available())
    return "16-mixed" if gpu else "32-true"


def _devices(value: int | str) -> int | str:
    return int(value) if isinstance(value, str) and value.strip().isdigit() else value


def build_trainer(t: TrainerConfig, callbacks: Sequence[L.Callback], progress_bar: bool) -> L.Trainer:
    """A Lightning Trainer for ``t``; bad device/strategy combinations are one-line ConfigErrors.

    Lightning's distributed sampler is off: the data module shards the windows itself.
    """
    try:
        with quiet_lightning():
            return L.Trainer(
                max_epochs=t.epochs,
                max_time=dt.timedelta(minutes=t.max_minutes) if t.max_minutes else None,
                accelerator=t.accelerator,
                devices=_devices(t.devices),
                num_nodes=t.num_nodes,
                strategy=t.strategy,
                precision=_precision(t),  # type: ignore[arg-type]
                logger=False,
                callbacks=list(callbacks),
                num_sanity_val_steps=0,
                enable_progress_bar=progress_bar,
                enable_model_summary=False,
                deterministic=False,
                use_distributed_sampler=False,
            )
    except (MisconfigurationException, ValueError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(
            f"Lightning cannot run accelerator {t.accelerator}, devices {t.devices}, strategy {t.strategy} here ({first.rstrip('.')}); "
            f"change --accelerator/--devices/--strategy."
        ) from None


def fit(trainer: L.Trainer, task: L.LightningModule, datamodule: L.LightningDataModule, ckpt_path: str | None, epochs: int) -> None:
    """``trainer.fit`` without Lightning's harmless warnings; a finished longer run is a ConfigError."""
    with warnings.catch_warnings(), quiet_lightning():
        warnings.filterwarnings("ignore", ".*does not have many workers.*")
        warnings.filterwarnings("ignore", ".*num_workers.*")
        warnings.filterwarnings("ignore", ".*treespec.*")
        # Epoch metrics are summed over the ranks by the task before they are logged.
        warnings.filterwarnings("ignore", ".*when logging on epoch level in distributed setting.*")
        warnings.filterwarnings("ignore", ".*Grad strides do not match bucket view strides.*")
        # A SIGTERM mid-epoch saves a mid-epoch checkpoint; resuming restarts that epoch's crops.
        warnings.filterwarnings("ignore", ".*resuming from a checkpoint that ended before the epoch ended.*")
        try:
            trainer.fit(task, datamodule=datamodule, ckpt_path=ckpt_path)
        except MisconfigurationException as exc:
            if "restored a checkpoint" in str(exc):
                raise ConfigError(
                    f"The output folder holds a finished run of more epochs than --epochs {epochs}; "
                    f"raise --epochs to continue it or choose a new --output-dir."
                ) from None
            raise


def reduce_sum(module: L.LightningModule, value: Any) -> Any:
    """Sum a tensor over all ranks (a no-op in one process)."""
    trainer = getattr(module, "_trainer", None)
    if trainer is None or trainer.world_size == 1:
        return value
    return trainer.strategy.reduce(value, reduce_op="sum")


def broadcast_buffers(module: L.LightningModule) -> None:
    """Give every rank rank zero's buffers (BatchNorm running statistics, target statistics).

    Each DDP rank updates its own running statistics in training; validating with rank zero's
    makes every rank score the model that rank zero saves.
    """
    trainer = getattr(module, "_trainer", None)
    if trainer is None or trainer.world_size == 1:
        return
    import torch.distributed as dist

    for buffer in module.buffers():
        dist.broadcast(buffer.data, src=0)


def freeze_unused_parameters(model: torch.nn.Module, in_channels: int, size: int = 64) -> list[str]:
    """Stop training parameters the forward pass never uses (EfficientNet's classifier head).

    DDP all-reduces gradients in buckets and waits for every parameter: one that never gets a
    gradient would leave its bucket unreduced and the ranks' weights would drift apart. One
    eval-mode pass (running statistics untouched) finds them; their ``requires_grad`` is cleared.
    Returns their names.
    """
    was_training = model.training
    model.eval()
    with torch.enable_grad():
        out = model(torch.zeros((1, in_channels, size, size), device=next(model.parameters()).device))
        out.float().sum().backward()
    unused = [name for name, p in model.named_parameters() if p.requires_grad and p.grad is None]
    for name, p in model.named_parameters():
        p.grad = None
        if name in unused:
            p.requires_grad_(False)
    model.train(was_training)
    return unused
