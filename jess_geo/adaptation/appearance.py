"""A camera's sharpness and noise relative to another's, fitted from the power spectra of unlabelled images.

Natural images share a smooth power spectrum; a softer lens, a lower sensor resolution or heavier
compression takes power away at high spatial frequencies, and sensor noise adds a flat floor. So
the target camera's mean power spectrum ``P_t(f)`` is modelled from the source's ``P_s(f)`` as::

    P_t(f) = gain * P_s(f) * exp(-(2 pi f sigma)^2) + noise^2

a Gaussian blur of ``sigma`` pixels, a contrast ``gain`` and white noise of standard deviation
``noise`` (raw units), fitted by least squares on the log spectrum (``sigma`` on a grid, ``gain``
and ``noise^2`` linear for each). Spectra come from Hann-windowed tiles of every band, radially
averaged. numpy only; the images are ``(C, H, W)`` at the model's working resolution.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from jess_geo.errors import InputError

WINDOW = 128  # tile side of the periodograms, working pixels
BINS = 32  # radial frequency bins over (0, 0.5] cycles per pixel
LOW_CUT = 0.03  # cycles per pixel: lower frequencies describe the scene more than the camera
SIGMAS = np.round(np.arange(0.0, 4.0001, 0.05), 2)  # the blur grid, pixels
MAX_TILES = 400  # per image set: an even subsample of the tiles beyond this


@dataclass(frozen=True)
class Degradation:
    """The fitted relative camera: blur ``sigma`` (px), ``noise`` std (raw units), ``gain``, fit ``error``."""

    sigma: float
    noise: float
    gain: float
    error: float

    def as_dict(self) -> dict[str, float]:
        return {"blur_sigma_px": self.sigma, "noise_std": self.noise, "gain": self.gain, "fit_error": self.error}


def _tiles(images: Sequence[np.ndarray], valid: Sequence[np.ndarray], size: int) -> list[tuple[int, int, int]]:
    """(image, row, col) of every non-overlapping ``size`` tile whose pixels are all valid."""
    out = []
    for i, (img, v) in enumerate(zip(images, valid)):
        _, h, w = img.shape
        for r in range(0, h - size + 1, size):
            for c in range(0, w - size + 1, size):
                if np.asarray(v[r:r + size, c:c + size], dtype=bool).all():
                    out.append((i, r, c))
    return out


def radial_bins(size: int = WINDOW, bins: int = BINS) -> tuple[np.ndarray, np.ndarray]:
    """The bin index of each ``rfft2`` coefficient of a ``size`` tile and the bins' centre frequencies."""
    f = np.hypot(np.fft.fftfreq(size)[:, None], np.fft.rfftfreq(size)[None, :])
    edges = np.linspace(0.0, 0.5, bins + 1)
    index = np.clip(np.digitize(f, edges) - 1, 0, bins)  # bins: beyond 0.5 (the corners)
    return index, (edges[:-1] + edges[1:]) / 2


def power_spectrum(images: Sequence[np.ndarray], valid: Sequence[np.ndarray], what: str = "images",
                   size: int = WINDOW, bins: int = BINS) -> tuple[np.ndarray, np.ndarray]:
    """(centre frequencies, mean power per bin) over the valid ``size`` tiles of every band of ``images``.

    The periodogram of a tile is ``|rfft2(w * (x - mean))|^2 / sum(w^2)`` (Hann window ``w``), so white
    noise of variance ``s^2`` has power ``s^2`` in every bin.
    """
    tiles = _tiles(images, valid, size)
    if not tiles:
        raise InputError(f"The {what} have no {size} x {size} window without nodata to measure sharpness on; "
                         "use larger images (at the model's resolution).")
    if len(tiles) > MAX_TILES:
        tiles = [tiles[int(k)] for k in np.linspace(0, len(tiles) - 1, MAX_TILES).round()]
    hann = np.hanning(size)
    window = np.outer(hann, hann)
    norm = float((window ** 2).sum())
    index, centres = radial_bins(size, bins)
    counts = np.bincount(index.ravel(), minlength=bins + 1)[:bins]
    total = np.zeros(bins)
    n = 0
    for i, r, c in tiles:
        block = np.asarray(images[i][:, r:r + size, c:c + size], dtype=np.float64)
        block = (block - block.mean(axis=(1, 2), keepdims=True)) * window
        power = (np.abs(np.fft.rfft2(block)) ** 2).sum(axis=0) / norm
        total += np.bincount(index.ravel(), weights=power.ravel(), minlength=bins + 1)[:bins] / np.maximum(counts, 1)
        n += block.shape[0]
    return centres, total / n


def fit_degradation(freqs: np.ndarray, source: np.ndarray, target: np.ndarray, low_cut: float = LOW_CUT) -> Degradation:
    """The blur, gain and noise that best turn the ``source`` spectrum into the ``target`` one (see module)."""
    keep = (freqs > low_cut) & (source > 0) & (target > 0)
    f, ps, pt = freqs[keep], source[keep], target[keep]
    if len(f) < 4:
        raise InputError("The images have too little texture to measure sharpness on; use photos of the ground.")
    best: Degradation | None = None
    for sigma in SIGMAS:
        blurred = ps * np.exp(-(2 * np.pi * f * sigma) ** 2)
        design = np.stack([blurred, np.ones_like(blurred)], axis=1) / pt[:, None]  # relative residuals
        (gain, floor), *_ = np.linalg.lstsq(design, np.ones_like(pt), rcond=None)
        if floor < 0:  # no noise added: refit the gain alone
            floor, gain = 0.0, float(np.exp(np.mean(np.log(pt / blurred))))
        if gain <= 0:
            continue
        error = float(np.mean(np.log((gain * blurred + floor) / pt) ** 2))
        if best is None or error < best.error:
            best = Degradation(float(sigma), float(np.sqrt(floor)), float(gain), error)
    if best is None:
        raise InputError("The target images' spectrum could not be fitted from the source's; check that both are photos of the ground.")
    return best


def blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """``image`` (``(C, H, W)``) blurred by a Gaussian of ``sigma`` pixels (edges mirrored), as float32."""
    out = np.asarray(image, dtype=np.float32)
    if sigma <= 0:
        return out
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(out, sigma=(0.0, sigma, sigma), mode="reflect", truncate=3.0)
