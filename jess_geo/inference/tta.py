"""Test-time augmentation: a batch seen through flips / the eight dihedral transforms, scores averaged.

A transform acts on the last two axes of a ``(B, C, H, W)`` batch. :func:`apply` moves the
network input, the network runs, :func:`invert` moves its output back onto the input's pixels,
and :func:`augmented_scores` averages the runtime's scores over the transforms. Every runtime
returns logits (the ONNX runtimes cut the exported graph's final Softmax off), so what is
averaged is the logits: the mean logit is the (normalised) geometric mean of the transforms'
probabilities, and the energy output stays ``-logsumexp`` of the scores the class map comes
from. A graph that returns probabilities itself has its probabilities averaged.

Transforms act on the whole network input, padding included: its height and width are
multiples of the network's size multiple, so a flip maps the network's pooling grid onto itself
and the padding simply moves to the other side; the inverse puts every output pixel back before
the pipeline crops the padding off. Rotations by 90 degrees and transposes turn a non-square
``(H, W)`` batch into a ``(W, H)`` one, which any runtime takes (both sides are multiples of the
size multiple); their inverses turn the output back to ``(H, W)``. So d4 needs neither square
tiles nor extra padding; a non-square batch costs one more network shape (one more compile for
OpenVINO). The transforms are run one after another on the same batch, so memory stays that of
one network call plus one accumulator.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from jess_geo.errors import InputError

# (number of 90-degree turns, flip of the last axis first): the eight elements of the dihedral group D4.
Transform = tuple[int, bool]

MODES: dict[str, tuple[Transform, ...]] = {
    "none": ((0, False),),
    # identity, left-right, up-down (= left-right then half a turn), half a turn
    "flips": ((0, False), (0, True), (2, True), (2, False)),
    "d4": tuple((k, f) for f in (False, True) for k in range(4)),
}


def check_mode(mode: str) -> str:
    """``mode`` lower-cased when it is one of :data:`MODES`; otherwise a one-line InputError."""
    name = str(mode).lower()
    if name not in MODES:
        raise InputError(f"Unknown test-time augmentation {mode!r}; choose one of {', '.join(MODES)}.")
    return name


def apply(x: np.ndarray, t: Transform) -> np.ndarray:
    """``x`` (..., H, W) seen through ``t``: flipped left-right when ``t[1]``, then turned ``t[0]`` quarter turns."""
    k, flip = t
    if flip:
        x = x[..., ::-1]
    return np.rot90(x, k, axes=(-2, -1))


def invert(y: np.ndarray, t: Transform) -> np.ndarray:
    """The inverse of :func:`apply`: ``invert(apply(x, t), t)`` equals ``x``."""
    k, flip = t
    y = np.rot90(y, -k, axes=(-2, -1))
    return y[..., ::-1] if flip else y


def augmented_scores(run: Callable[[np.ndarray], np.ndarray], x: np.ndarray, mode: str) -> np.ndarray:
    """``(B, K, H, W)`` float32: the mean over ``mode``'s transforms of ``invert(run(apply(x)))``.

    ``run`` maps ``(B, C, h, w)`` float32 to ``(B, K, h, w)`` scores (a runtime's ``logits``);
    ``mode`` ``"none"`` calls it once on ``x`` itself.
    """
    transforms = MODES[check_mode(mode)]
    if len(transforms) == 1:
        return run(x)
    total: np.ndarray | None = None
    for t in transforms:
        y = invert(run(np.ascontiguousarray(apply(x, t))), t)
        if total is None:
            total = np.array(y, dtype=np.float32)  # a copy: the runtime may reuse its output buffer
        else:
            total += y
    assert total is not None
    total *= np.float32(1.0 / len(transforms))
    return total


class AugmentedRuntime:
    """A runtime whose ``logits`` are averaged over test-time augmentations of the batch.

    It exposes what the pipeline reads (``name``, ``device``, ``threads``) from the runtime it
    wraps, and no ``weighted_logits`` fast path: the average is taken before the crop, resize
    and blending weights, which the pipeline then applies once.
    """

    def __init__(self, inner: object, mode: str) -> None:
        self.inner = inner
        self.mode = check_mode(mode)
        self.name = getattr(inner, "name", "torch")
        self.device = getattr(inner, "device", "cpu")
        self.threads = getattr(inner, "threads", None)

    def logits(self, x: np.ndarray) -> np.ndarray:
        """``(B, C, H, W)`` -> ``(B, K, H, W)`` scores averaged over the transforms of ``mode``."""
        return augmented_scores(self.inner.logits, x, self.mode)  # type: ignore[attr-defined]


def with_tta(rt: object, mode: str) -> object:
    """``rt`` itself for ``"none"``, otherwise ``rt`` wrapped in an :class:`AugmentedRuntime`."""
    return rt if check_mode(mode) == "none" else AugmentedRuntime(rt, mode)
