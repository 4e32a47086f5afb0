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

    The gap alone is unbounded below: raising every target logit by the same amount lowers the
    target energy without limit and changes no prediction. The squared-energy penalty (the guard
    used in EBM training) bounds it: per domain the loss is ``+-E + reg * E**2``, minimal at
    ``E = -+1 / (2 * reg)``, so energies cannot run past ``1 / (2 * reg)`` (500 at the default
    1e-3, far beyond the -5..-20 of a trained network, so the guard does not bias ordinary
    training). Returns (loss, mean E_t, mean E_s); the means are detached, for logging.
    """
    et = masked_mean(energy_target, valid_target)
    es = masked_mean(energy_source, valid_source)
    penalty = masked_mean(energy_target**2, valid_target) + masked_mean(energy_source**2, valid_source)
    return et - es + reg * penalty, et.detach(), es.detach()
