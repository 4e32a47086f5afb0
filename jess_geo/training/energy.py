"""JESS energy terms as pure functions (Herdy et al. 2024; Grathwohl et al. 2019)."""

from __future__ import annotations

import torch


def free_energy(logits: torch.Tensor) -> torch.Tensor:
    """Per-pixel free energy ``-logsumexp_c f(x)_c`` of logits ``(N, C, H, W)`` -> ``(N, H, W)``."""
    return -torch.logsumexp(logits.float(), dim=1)


def masked_mean(values: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    """Mean over the pixels where ``valid`` is true (all pixels when ``valid`` is None)."""
    if valid is None:
        return values.mean()
    v = valid.to(values.dtype)
    return (values * v).sum() / v.sum().clamp(min=1.0)


def jess_energy_loss(
    energy_target: torch.Tensor,
    energy_source: torch.Tensor,
    valid_target: torch.Tensor | None = None,
    valid_source: torch.Tensor | None = None,
    reg: float = 1e-3,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Energy gap ``E(x_t) - E(x_s')`` plus ``reg`` times the mean squared energies.

    The gap alone is unbounded below (logits can grow without limit); the squared-energy penalty
    keeps energies near zero, the guard used in EBM training. Returns (loss, mean E_t, mean E_s).
    """
    et = masked_mean(energy_target, valid_target)
    es = masked_mean(energy_source, valid_source)
    penalty = masked_mean(energy_target**2, valid_target) + masked_mean(energy_source**2, valid_source)
    return et - es + reg * penalty, et.detach(), es.detach()
