"""The Lightning task: supervised (baseline) training, optionally with the JESS energy term."""

from __future__ import annotations

import contextlib
import math
import time
from typing import Any, Callable, Iterator, Sequence, Union

import lightning as L
import torch
from torch.utils.data import DataLoader

from jess_geo.data.augment import AugmentConfig, augment_batch
from jess_geo.models.layout import fast_input, to_fast_layout
from jess_geo.training.batchnorm import BATCHNORM_MODES, DomainStatistics, separate_passes, shared_pass, using_statistics
from jess_geo.training.energy import energy_term, free_energy
from jess_geo.training.losses import Criterion, cross_entropy
from jess_geo.training.metrics import confusion_matrix, metrics_from_confusion
from jess_geo.training.trainer import broadcast_buffers, freeze_unused_parameters, reduce_sum

TargetLoader = Union[DataLoader, Callable[[], DataLoader]]


class SegmentationTask(L.LightningModule):
    """A supervised loss on labelled source crops (``criterion``, default cross-entropy); with
    ``target_loader``, plus lambda times the energy gap.

    JESS step: source and target crops share ONE forward pass; the source crops double as the
    energy contrast set, so a step costs one forward/backward over ``batch + target_batch`` crops
    instead of the reference code's three passes. With a target loader and ``energy_weight == 0``
    the shared pass still runs: that is the BatchNorm-only control, which separates what the
    BatchNorm handling does from what the energy term does.

    ``batchnorm`` (default "split"): "mixed" lets BatchNorm take its statistics over source and target crops together
    (its running statistics become a source/target mix); "source" takes them from the source
    crops only and normalises the target crops with them, so the energy term is the only way the
    target acts on the model; "split" normalises each domain with its own statistics, as the
    reference code's three separate passes do, keeps the target's running statistics in
    ``target_stats``, validates the target with them, and saves the model with them (the
    adapted model is for the target camera). See ``jess_geo.training.batchnorm``.

    Source and target crops are augmented with separate random generators, so a JESS run sees
    exactly the same augmented labelled batches as a baseline run with the same seed.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        class_names: Sequence[str],
        lr: float,
        optimizer: str = "adamw",
        weight_decay: float = 0.0,
        scheduler: str = "cosine",
        warmup_steps: int = 0,
        total_steps: int = 1,
        augment: AugmentConfig = AugmentConfig(),
        target_loader: TargetLoader | None = None,
        energy_weight: float = 0.0,
        energy_reg: float = 1e-3,
        seed: int = 0,
        time_budget_s: float | None = None,
        batchnorm: str = "split",
        energy: str = "pixel",
        margin: float | None = None,
        criterion: Criterion | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.class_names = list(class_names)
        self.num_classes = len(self.class_names)
        self.lr, self.optimizer_name, self.weight_decay = lr, optimizer, weight_decay
        self.scheduler_name, self.warmup_steps, self.total_steps = scheduler, warmup_steps, max(1, total_steps)
        self.augment = augment
        self.target_loader = target_loader
        self._target_iter: Iterator[dict[str, Any]] | None = None
        self.energy_weight, self.energy_reg = energy_weight, energy_reg
        if batchnorm not in BATCHNORM_MODES:
            raise ValueError(f"batchnorm must be one of {BATCHNORM_MODES}")
        self.batchnorm = batchnorm
        self.energy, self.margin = energy, margin  # the form of the energy term (training.energy.energy_term)
        self.criterion = criterion  # None: plain cross-entropy (jess_geo.training.losses.make_criterion)
        self.target_stats = DomainStatistics(model) if (batchnorm == "split" and target_loader is not None) else None
        self.aug_gen = torch.Generator().manual_seed(seed + 1)
        self.target_aug_gen = torch.Generator().manual_seed(seed + 2)
        self.contrast_aug_gen = torch.Generator().manual_seed(seed + 3)  # batchnorm "passes": the contrast batch
        self._val_cm: dict[int, torch.Tensor] = {}
        self._val_energy: dict[int, list[float]] = {}
        self.epoch_metrics: dict[str, Any] = {}
        self._train_sums: dict[str, torch.Tensor] = {}
        self._train_steps = 0
        self.time_budget_s = time_budget_s
        self._t0: float | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def setup(self, stage: str) -> None:
        # Channels-last weights and inputs: about 1.5x faster training steps on a CPU. Done in
        # setup, before DDP wraps the model, so its gradient buckets see the final layout.
        to_fast_layout(self.model, self.trainer.strategy.root_device)
        if self.trainer.world_size > 1:
            first = next(m for m in self.model.modules() if isinstance(m, torch.nn.Conv2d))
            freeze_unused_parameters(self.model, first.in_channels)

    def _next_target(self) -> dict[str, Any]:
        assert self.target_loader is not None
        if callable(self.target_loader) and not isinstance(self.target_loader, DataLoader):
            self.target_loader = self.target_loader()  # built once the trainer knows its rank
        if self._target_iter is None:
            self._target_iter = iter(self.target_loader)
        try:
            return next(self._target_iter)
        except StopIteration:
            self._target_iter = iter(self.target_loader)
            return next(self._target_iter)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        # Labels (< 256) and the valid-pixel mask ride through the same geometric augmentation
        # as one integer tensor: the source energy is averaged over valid pixels, labelled or not.
        packed = batch["mask"] + (batch["valid"].long() << 8)
        x, packed = augment_batch(batch["image"], packed, self.augment, self.aug_gen)
        y, valid = packed & 0xFF, (packed >> 8).bool()
        x, y, valid = fast_input(x.to(self.device), self.device), y.to(self.device), valid.to(self.device)
        shared = self.target_loader is not None
        if shared:
            tb = self._next_target()
            xt, vt = augment_batch(tb["image"], tb["valid"].long(), self.augment, self.target_aug_gen, pad_label=0)
            xt, vt = fast_input(xt.to(self.device), self.device), vt.to(self.device).bool()
            contrast = None
            if self.batchnorm == "passes":  # the reference code's three passes; the contrast set: the source crops re-augmented
                xc, vc = augment_batch(batch["image"], batch["valid"].long(), self.augment, self.contrast_aug_gen, pad_label=0)
                xc, vc = fast_input(xc.to(self.device), self.device), vc.to(self.device).bool()
                logits, logits_c, logits_t = separate_passes(self.model, x, xc, xt)
                contrast = (logits_c, vc)
            else:
                with shared_pass(self.model, x.shape[0], self.batchnorm, self.target_stats):
                    logits_all = self.model(torch.cat([x, xt]))
                logits, logits_t = logits_all[: x.shape[0]], logits_all[x.shape[0] :]
        else:
            logits = self.model(x)
        if self.criterion is None:
            ce = sup = cross_entropy(logits, y)
        else:
            sup = self.criterion(logits, y)
            with torch.no_grad():  # plain cross-entropy stays in the curves, comparable across losses
                ce = cross_entropy(logits.detach(), y)
        loss = sup
        n = x.shape[0]
        self.log("train_ce", ce, on_step=False, on_epoch=True, batch_size=n, sync_dist=True)
        if shared:
            lc, vc = contrast or (logits, valid)
            e_loss, et, es = energy_term(logits_t, lc, vt, vc, self.energy_reg, self.energy, self.margin)
            if self.energy_weight > 0:
                loss = sup + self.energy_weight * e_loss
            self.log("train_energy_target", et, on_step=False, on_epoch=True, batch_size=n, sync_dist=True)
            self.log("train_energy_source", es, on_step=False, on_epoch=True, batch_size=n, sync_dist=True)
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=n, sync_dist=True)
        self._accumulate(train_loss=loss, train_ce=ce, **({"train_energy_target": et, "train_energy_source": es} if shared else {}))
        return loss

    def _accumulate(self, **values: torch.Tensor) -> None:
        # This epoch's training means, reported with its validation (Lightning's own epoch
        # aggregates of train metrics only exist after validation has run).
        for k, v in values.items():
            self._train_sums[k] = self._train_sums.get(k, 0.0) + v.detach().float()
        self._train_steps += 1 if "train_loss" in values else 0

    def on_train_epoch_start(self) -> None:
        self._train_sums, self._train_steps = {}, 0

    def on_validation_epoch_start(self) -> None:
        broadcast_buffers(self)  # under DDP every rank validates rank zero's model, the one saved
        # One entry per validation loader on every rank, so the ranks' sums line up.
        loaders = len(self.trainer.num_val_batches) if self._trainer is not None else 1
        self._val_cm = {i: torch.zeros((self.num_classes, self.num_classes), dtype=torch.long) for i in range(loaders)}
        self._val_energy = {i: [0.0, 0.0] for i in range(loaders)}

    def deployed(self) -> contextlib.AbstractContextManager[None]:
        """Within the block the model carries the BatchNorm statistics it is saved with:
        the target's in ``split`` mode, its own otherwise."""
        return using_statistics(self.model, self.target_stats)

    def validation_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> None:
        with using_statistics(self.model, self.target_stats if dataloader_idx == 1 else None):
            logits = self.model(fast_input(batch["image"].to(self.device), self.device)).float()
        y = batch["mask"].to(self.device)
        cm = confusion_matrix(logits.argmax(1), y, self.num_classes).cpu()
        self._val_cm[dataloader_idx] = self._val_cm.get(dataloader_idx, 0) + cm
        e = free_energy(logits)
        valid = batch["valid"].to(self.device)
        acc = self._val_energy.setdefault(dataloader_idx, [0.0, 0.0])
        acc[0] += float((e * valid).sum())
        acc[1] += float(valid.sum())

    def _synchronised(self) -> tuple[dict[int, torch.Tensor], dict[int, tuple[float, float]], dict[str, float]]:
        """This epoch's sums over all ranks: confusion matrices, energies, training means."""
        cms = {i: reduce_sum(self, cm.to(self.device)).cpu() for i, cm in sorted(self._val_cm.items())}
        energy = {}
        for i, (s, n) in sorted(self._val_energy.items()):
            both = reduce_sum(self, torch.tensor([s, n], dtype=torch.float64, device=self.device))
            energy[i] = (float(both[0]), float(both[1]))
        steps = float(reduce_sum(self, torch.tensor(float(self._train_steps), device=self.device)))
        train = {}
        for k in ("train_loss", "train_ce", "train_energy_target", "train_energy_source"):
            if k in self._train_sums:  # the same keys on every rank: all ranks run the same steps
                total = reduce_sum(self, torch.as_tensor(self._train_sums.get(k, 0.0), dtype=torch.float32, device=self.device))
                if steps:
                    train[k] = float(total) / steps
        return cms, energy, train

    def on_validation_epoch_end(self) -> None:
        out: dict[str, Any] = {}
        cms, energies, train = self._synchronised()
        for idx, cm in cms.items():
            prefix = "val" if idx == 0 else "target"
            m = metrics_from_confusion(cm, self.class_names)
            if m["pixels"] > 0:
                out[f"{prefix}_accuracy"] = m["accuracy"]
                out[f"{prefix}_miou"] = m["miou"]
                out[f"{prefix}_f1"] = m["f1_macro"]
                out[f"_{prefix}_full"] = m
        for idx, (s, n) in energies.items():
            if n > 0:
                out[f"{'source' if idx == 0 else 'target'}_energy"] = s / n
        if "source_energy" in out and "target_energy" in out:
            out["energy_gap"] = out["target_energy"] - out["source_energy"]
        out.update(train)
        for k, v in out.items():
            if not k.startswith(("_", "train_")):
                self.log(k, v, prog_bar=k in ("val_accuracy", "val_miou"), rank_zero_only=True)
        self.epoch_metrics = out

    def configure_optimizers(self) -> Any:
        params = self.model.parameters()
        if self.optimizer_name == "adam":
            opt = torch.optim.Adam(params, lr=self.lr, weight_decay=self.weight_decay)
        elif self.optimizer_name == "sgd":
            opt = torch.optim.SGD(params, lr=self.lr, momentum=0.9, weight_decay=self.weight_decay)
        else:
            opt = torch.optim.AdamW(params, lr=self.lr, weight_decay=self.weight_decay)
        if self.scheduler_name == "none":
            return opt
        warm, total = self.warmup_steps, self.total_steps

        def factor(step: int) -> float:
            # Cosine over the planned steps, or over the time budget when that runs out first,
            # so a --max-minutes run still ends with a low learning rate.
            if step < warm:
                return (step + 1) / warm
            progress = min(1.0, (step - warm) / max(1, total - warm))
            if self.time_budget_s:
                if self._t0 is None:
                    self._t0 = time.monotonic()
                progress = max(progress, min(1.0, (time.monotonic() - self._t0) / self.time_budget_s))
            return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * progress))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
