"""The one band policy: which bands of an image feed the model, and which band is its mask.

Pure (no I/O, no torch); train, evaluate, adapt and predict all call :func:`resolve_bands`.
Band indexes are 1-based, as in GDAL and rasterio. An alpha band (band 4 of an RGBA image) is
the validity mask, never data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from jess_geo.errors import InputError


@dataclass(frozen=True)
class BandPlan:
    """The bands to read as data (in model input order), the mask band, and a notice or None."""

    data: tuple[int, ...]
    mask_band: int | None
    notice: str | None


def _is_index(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _listed(bands: Sequence[int]) -> str:
    return ",".join(str(b) for b in bands)


def _check_user_bands(
    user_bands: Sequence[int], model_bands: Sequence[int], count: int, alpha_band: int | None, name: str, option: str
) -> tuple[int, ...]:
    use = tuple(user_bands)
    if len(use) != len(model_bands):
        raise InputError(
            f"{option} {_listed(use)} names {len(use)} band(s) but the model takes {len(model_bands)}; "
            f"give one band of {name} per model input, e.g. {option} {_listed(range(1, len(model_bands) + 1))}."
        )
    bad = [b for b in use if not _is_index(b) or b > count]
    if bad:
        raise InputError(f"{option} names band(s) {bad} but {name} has bands 1-{count}; choose bands from 1 to {count}.")
    if alpha_band is not None and alpha_band in use:
        raise InputError(
            f"{option} names band {alpha_band}, the alpha (mask) band of {name}; choose image bands, the alpha band is the mask."
        )
    return use


def resolve_bands(
    count: int,
    model_bands: Sequence[int],
    *,
    user_bands: Sequence[int] | None = None,
    alpha_band: int | None = None,
    name: str = "image",
    option: str = "--bands",
) -> BandPlan:
    """Decide which bands of an image with ``count`` bands feed a model that takes ``model_bands``.

    Args:
        count: number of bands of the image (alpha band included).
        model_bands: the 1-based bands the model (or training config) reads, in input order.
        user_bands: the user's choice (predict ``--bands 3,2,1``): one entry per model band,
            each in 1..count and not the alpha band.
        alpha_band: the image's alpha band, if any: it becomes ``mask_band``, never data.
        name: how messages name the image (usually its file name).
        option: how messages name the way to choose other bands (``--bands`` or a config key).

    Returns:
        ``BandPlan(data, mask_band, notice)``; ``notice`` says which bands are used when the
        image has more non-alpha bands than the model takes.

    Raises:
        InputError: a band the model needs is missing or is the alpha band, or ``user_bands``
            is malformed.
    """
    model = tuple(model_bands) if isinstance(model_bands, (list, tuple)) else ()
    if not model or not all(_is_index(b) for b in model):
        raise InputError(
            f"The model's bands {model_bands!r} are not a list of 1-based band numbers such as [1, 2, 3]; "
            f"fix `bands` in the model or config."
        )
    image_bands = [b for b in range(1, count + 1) if b != alpha_band]
    if user_bands is not None and not isinstance(user_bands, (list, tuple)):
        raise InputError(f"{option} must list band numbers such as 3,2,1, not {user_bands!r}; fix it.")
    if user_bands is not None:
        return BandPlan(_check_user_bands(user_bands, model, count, alpha_band, name, option), alpha_band, None)
    wrong = [b for b in model if b > count or b == alpha_band]
    if wrong:
        alpha = f" plus an alpha band (band {alpha_band})" if alpha_band is not None else ""
        raise InputError(
            f"{name} has {len(image_bands)} image band(s){alpha} but the model reads band(s) {list(model)}; "
            f"use an image with {len(model)} image bands, choose bands with {option}, or use a model trained on "
            f"{len(image_bands)}-band images."
        )
    notice = None
    if len(image_bands) > len(set(model)):
        notice = (
            f"{name} has {len(image_bands)} image bands; the model uses band(s) {_listed(model)}, "
            f"{option} chooses others."
        )
    return BandPlan(model, alpha_band, notice)
