"""Write the synthetic sample data in ``sample_data/`` (deterministic: same bytes every run).

The scenes imitate a drone orthomosaic of biological soil crust seen from about a metre
up: four ground-cover classes (bare soil, cyanobacteria crust, lichen, moss) as smooth
random patches, each with its own colour and texture. Everything is drawn from seeded
random generators with numpy only, and written with rasterio (GeoTIFF) and PIL (photo).

Run from anywhere::

    python sample_data/make_sample_data.py

Files written (next to this script):
    scene.tif, scene_labels.tif   georeferenced 3-band scene with a nodata area, class mask
    photo.jpg, photo_labels.png   plain photo without georeferencing, class mask
    train/images/*.tif, train/masks/*.tif   three small scenes for ``jess-geo train``
    classes.json                  the class table
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import rasterio
from PIL import Image
from rasterio.crs import CRS
from rasterio.transform import Affine, from_origin

OUT_DIR = Path(__file__).resolve().parent
CRS_UTM12N = CRS.from_epsg(32612)
GSD = 0.01  # metres per pixel
NODATA_LABEL = 255

# id -> (name, display colour, mean RGB of the synthetic ground, texture settings)
CLASSES: dict[int, dict[str, object]] = {
    0: {"name": "bare soil", "color": "#c9a87c", "rgb": (196, 164, 122),
        "grain": 9.0, "mottle": 6.0, "mottle_sigma": 6.0, "speckle": 0.0},
    1: {"name": "cyanobacteria crust", "color": "#5b4a3f", "rgb": (104, 88, 76),
        "grain": 7.0, "mottle": 16.0, "mottle_sigma": 3.0, "speckle": 0.0},
    2: {"name": "lichen", "color": "#e3d55a", "rgb": (205, 196, 104),
        "grain": 6.0, "mottle": 10.0, "mottle_sigma": 2.0, "speckle": 40.0},
    3: {"name": "moss", "color": "#3f7a2e", "rgb": (72, 112, 52),
        "grain": 10.0, "mottle": 12.0, "mottle_sigma": 1.2, "speckle": -30.0},
}
# Relative abundance: a bias added to each class field before the argmax.
CLASS_BIAS = (0.35, 0.15, -0.15, 0.0)


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """White noise low-pass filtered by a Gaussian of ``sigma`` pixels (periodic), unit std."""
    white = rng.standard_normal(shape)
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.rfftfreq(shape[1])[None, :]
    gain = np.exp(-2.0 * (np.pi * sigma) ** 2 * (fx**2 + fy**2))
    field = np.fft.irfft2(np.fft.rfft2(white) * gain, s=shape)
    return (field - field.mean()) / (field.std() + 1e-12)


def draw_labels(rng: np.random.Generator, shape: tuple[int, int], patch_sigma: float) -> np.ndarray:
    """Class map as smooth patches: the argmax of one smooth random field per class."""
    fields = np.stack([smooth_noise(rng, shape, patch_sigma) + bias for bias in CLASS_BIAS])
    return np.argmax(fields, axis=0).astype(np.uint8)


def render(rng: np.random.Generator, labels: np.ndarray) -> np.ndarray:
    """RGB uint8 image (H, W, 3) of ``labels``: class colour + texture + light and blur."""
    shape = labels.shape
    image = np.zeros((*shape, 3), dtype=np.float64)
    for class_id, spec in CLASSES.items():
        where = labels == class_id
        if not where.any():
            continue
        base = np.asarray(spec["rgb"], dtype=np.float64)
        # Texture in luminance (shared by the bands) plus a little independent colour grain.
        mottle = float(spec["mottle"]) * smooth_noise(rng, shape, float(spec["mottle_sigma"]))
        grain = float(spec["grain"]) * rng.standard_normal((*shape, 3)) * 0.5
        texture = mottle[..., None] + grain
        speckle = float(spec["speckle"])
        if speckle:
            dots = smooth_noise(rng, shape, 1.0) > 1.6  # small bright (lichen) / dark (moss) dots
            texture = texture + speckle * dots[..., None]
        image[where] = (base + texture)[where]
    # Soft light: a very smooth brightness field, then a 3x3 box blur (soft class edges).
    light = 1.0 + 0.08 * smooth_noise(rng, shape, 80.0)
    image *= light[..., None]
    padded = np.pad(image, ((1, 1), (1, 1), (0, 0)), mode="edge")
    blurred = sum(
        padded[dy : dy + shape[0], dx : dx + shape[1]] for dy in range(3) for dx in range(3)
    ) / 9.0
    # Clip to 1..255 so that 0 stays free to mean nodata.
    return np.clip(np.rint(blurred), 1, 255).astype(np.uint8)


def write_geotiff_pair(
    image_path: Path,
    label_path: Path,
    rgb: np.ndarray,
    labels: np.ndarray,
    transform: Affine,
    valid: np.ndarray | None = None,
) -> None:
    """Write a 3-band uint8 scene (nodata=0) and its aligned class mask (nodata=255)."""
    rgb = rgb.copy()
    labels = labels.copy()
    if valid is not None:
        rgb[~valid] = 0
        labels[~valid] = NODATA_LABEL
    height, width = labels.shape
    common = {
        "driver": "GTiff", "height": height, "width": width, "dtype": "uint8",
        "crs": CRS_UTM12N, "transform": transform, "compress": "deflate",
        "predictor": 2, "zlevel": 9, "tiled": True, "blockxsize": 256, "blockysize": 256,
    }
    with rasterio.open(image_path, "w", count=3, nodata=0, photometric="RGB", **common) as dst:
        dst.write(np.moveaxis(rgb, -1, 0))
        for band, name in enumerate(("red", "green", "blue"), start=1):
            dst.set_band_description(band, name)
    with rasterio.open(label_path, "w", count=1, nodata=NODATA_LABEL, **common) as dst:
        dst.write(labels, 1)
        dst.set_band_description(1, "class")


def write_classes_json(path: Path) -> None:
    """The class table in jess-geo's JSON form: {"<id>": {"name": ..., "color": "#rrggbb"}}."""
    lines = [
        f'  "{cid}": {{"name": {json.dumps(spec["name"])}, "color": "{spec["color"]}"}}'
        for cid, spec in CLASSES.items()
    ]
    path.write_text("{\n" + ",\n".join(lines) + "\n}\n", encoding="utf-8")


def main() -> None:
    write_classes_json(OUT_DIR / "classes.json")

    # Main scene: 640 x 512 px at 1 cm, near Moab, Utah (UTM 12N). Nodata: a cut top-left
    # corner and a strip along the right edge, as at the edge of an orthomosaic.
    rng = np.random.default_rng(20240601)
    height, width = 512, 640
    labels = draw_labels(rng, (height, width), patch_sigma=28.0)
    rgb = render(rng, labels)
    rows, cols = np.mgrid[0:height, 0:width]
    valid = (cols / width + rows / height > 0.30) & (cols < width - 24)
    write_geotiff_pair(
        OUT_DIR / "scene.tif", OUT_DIR / "scene_labels.tif", rgb, labels,
        from_origin(623_410.0, 4_268_530.0, GSD, GSD), valid,
    )

    # Plain photo: a different draw, no georeferencing.
    rng = np.random.default_rng(20240602)
    labels = draw_labels(rng, (360, 480), patch_sigma=24.0)
    rgb = render(rng, labels)
    Image.fromarray(rgb, mode="RGB").save(OUT_DIR / "photo.jpg", quality=90, optimize=True)
    Image.fromarray(labels, mode="L").save(OUT_DIR / "photo_labels.png", optimize=True)

    # Training layout: images and masks paired by file stem.
    (OUT_DIR / "train" / "images").mkdir(parents=True, exist_ok=True)
    (OUT_DIR / "train" / "masks").mkdir(parents=True, exist_ok=True)
    plots = [  # stem, height, width, west, north
        ("plot_a", 320, 320, 623_420.0, 4_268_520.0),
        ("plot_b", 288, 384, 623_431.5, 4_268_517.0),
        ("plot_c", 352, 256, 623_405.0, 4_268_512.0),
    ]
    for index, (stem, height, width, west, north) in enumerate(plots):
        rng = np.random.default_rng(20240610 + index)
        labels = draw_labels(rng, (height, width), patch_sigma=22.0)
        rgb = render(rng, labels)
        valid = None
        if stem == "plot_a":  # one training scene with a nodata corner (bottom right)
            rows, cols = np.mgrid[0:height, 0:width]
            valid = (height - rows) + (width - cols) > 60
        write_geotiff_pair(
            OUT_DIR / "train" / "images" / f"{stem}.tif",
            OUT_DIR / "train" / "masks" / f"{stem}.tif",
            rgb, labels, from_origin(west, north, GSD, GSD), valid,
        )


if __name__ == "__main__":
    main()
