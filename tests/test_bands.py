"""The one band policy (jess_geo.bands.resolve_bands): which bands feed the model, which is the mask."""

from __future__ import annotations

import pytest

from jess_geo.bands import BandPlan, resolve_bands
from jess_geo.errors import InputError


def _message(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg and msg.endswith(".")
    return msg


def test_rgb_image_and_rgb_model_use_bands_1_to_3_without_notice() -> None:
    assert resolve_bands(3, [1, 2, 3]) == BandPlan((1, 2, 3), None, None)


def test_rgba_image_takes_bands_1_to_3_and_band_4_is_the_mask() -> None:
    plan = resolve_bands(4, [1, 2, 3], alpha_band=4, name="plot.png")
    assert plan == BandPlan((1, 2, 3), 4, None)  # alpha is never data and needs no notice


def test_four_data_bands_with_a_three_band_model_says_which_are_used() -> None:
    plan = resolve_bands(4, [1, 2, 3], name="rgbn.tif")
    assert plan.data == (1, 2, 3) and plan.mask_band is None
    assert plan.notice == "rgbn.tif has 4 image bands; the model uses band(s) 1,2,3, --bands chooses others."


def test_user_bands_map_scene_bands_to_model_inputs_in_order() -> None:
    assert resolve_bands(6, [1, 2, 3], user_bands=[3, 2, 1]).data == (3, 2, 1)
    assert resolve_bands(1, [1, 2, 3], user_bands=[1, 1, 1]).data == (1, 1, 1)  # grey into an RGB model
    plan = resolve_bands(4, [1, 2, 3], user_bands=[3, 2, 1], alpha_band=4)
    assert plan == BandPlan((3, 2, 1), 4, None)


def test_model_band_beyond_the_image_names_both_counts_and_the_fixes() -> None:
    with pytest.raises(InputError) as exc:
        resolve_bands(3, [1, 2, 3, 4], name="rgb.tif")
    msg = _message(exc)
    assert msg.startswith("rgb.tif has 3 image band(s) but the model reads band(s) [1, 2, 3, 4]")
    assert "--bands" in msg and "3-band images" in msg


def test_model_band_that_is_the_alpha_band_is_refused() -> None:
    with pytest.raises(InputError) as exc:
        resolve_bands(4, [1, 2, 3, 4], alpha_band=4, name="cut.png")
    msg = _message(exc)
    assert "3 image band(s) plus an alpha band (band 4)" in msg


@pytest.mark.parametrize(
    ("user", "expected"),
    [
        ([1, 2], "names 2 band(s) but the model takes 3"),
        ([1, 2, 7], "band(s) [7] but x.tif has bands 1-4"),
        ([0, 1, 2], "band(s) [0]"),
        ([1, 2, 4], "band 4, the alpha (mask) band of x.tif"),
    ],
)
def test_bad_user_bands_are_one_line_errors(user: list[int], expected: str) -> None:
    with pytest.raises(InputError) as exc:
        resolve_bands(4, [1, 2, 3], user_bands=user, alpha_band=4, name="x.tif")
    assert expected in _message(exc)


@pytest.mark.parametrize("model", [[], [0, 1], ["r", "g"], [True, 2], 3, "123"])
def test_malformed_model_bands_are_refused(model: list) -> None:
    with pytest.raises(InputError) as exc:
        resolve_bands(3, model)
    assert "bands" in _message(exc)


def test_the_option_name_is_the_callers() -> None:
    plan = resolve_bands(5, [1, 2, 3], option="`bands` in the config")
    assert plan.notice is not None and plan.notice.endswith("`bands` in the config chooses others.")
