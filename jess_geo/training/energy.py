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


# Forms of the energy term (JessConfig.energy): per-pixel free energies averaged (the paper's), or
# the free energy of each image's mean logits (one energy per image).
ENERGY_KINDS = ("pixel", "image")


def image_energy(logits: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Free energy of each image's logits averaged over its valid pixels: ``(N, C, H, W)`` -> ``(N,)``.

    Not the sum of the pixels' energies (for independent pixel logits that is the joint energy
    of the image, and its batch mean is the per-pixel mean times the pixel count: the same term
    rescaled): one logsumexp over the classes of the image as a whole, as an image classifier
    with global average pooling would define it.
    """
    x = logits.float()
    if valid is None:
        pooled = x.mean(dim=(2, 3))
    else:
        v = valid.to(x.dtype).unsqueeze(1)
        pooled = (x * v).sum(dim=(2, 3)) / v.sum(dim=(2, 3)).clamp(min=1.0)
    return -torch.logsumexp(pooled, dim=1)


def energy_term(
    logits_target: torch.Tensor,
    logits_source: torch.Tensor,
    valid_target: torch.Tensor | None = None,
    valid_source: torch.Tensor | None = None,
    reg: float = 1e-3,
    kind: str = "pixel",
    margin: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The JESS energy term of two batches of logits, in the form ``kind`` (:data:`ENERGY_KINDS`).

    ``margin`` None: the open-ended gap ``E_t - E_s`` (plus the squared-energy guard, see
    :func:`jess_energy_loss`). A number ``m``: the hinge ``max(0, E_t - E_s + m)`` (plus the same
    guard), which stops pulling once the target's mean energy is ``m`` below the source's.
    Returns (loss, mean E_t, mean E_s); the means are detached.
    """
    if kind not in ENERGY_KINDS:
        raise ValueError(f"energy must be one of {ENERGY_KINDS}")
    if kind == "pixel":
        e_t, e_s = free_energy(logits_target), free_energy(logits_source)
        loss, et, es = jess_energy_loss(e_t, e_s, valid_target, valid_source, reg=reg)
        if margin is None:
            return loss, et, es
        penalty = masked_mean(e_t**2, valid_target) + masked_mean(e_s**2, valid_source)
        gap = masked_mean(e_t, valid_target) - masked_mean(e_s, valid_source)
    else:
        i_t, i_s = image_energy(logits_target, valid_target), image_energy(logits_source, valid_source)
        et, es = i_t.mean(), i_s.mean()
        penalty = (i_t**2).mean() + (i_s**2).mean()
        gap = et - es
        if margin is None:
            return gap + reg * penalty, et.detach(), es.detach()
    return torch.relu(gap + margin) + reg * penalty, et.detach(), es.detach()
