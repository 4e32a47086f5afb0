"""Prediction GeoTIFFs as GIS software reads them: grey probability bands, class names, RAT, CSV safety."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import ColorInterp

from jess_geo.cover import CoverCounter, write_cover_csv
from jess_geo.io import geotiff
from jess_geo.io.raster_sidecars import class_qml, sidecars

CLASSES = [
    {"id": 0, "name": "bare soil", "color": "#c9a87c"},
    {"id": 1, "name": "cyanobacteria crust", "color": "#5b4a3f"},
    {"id": 2, "name": "lichen & <moss>", "color": "#e3d55a"},
    {"id": 4, "name": "moss", "color": "#3f7a2e"},
]
GRID = {"width": 120, "height": 80, "crs_wkt": CRS.from_epsg(32612).to_wkt(),
        "transform": Affine(0.02, 0, 500000, 0, -0.02, 4100000)}
SYSTEM_PYTHON = Path("/usr/bin/python3")


def class_raster(path: Path) -> Path:
    data = np.repeat(np.array([0, 1, 2, 4], dtype=np.uint8), 30)[None, :].repeat(80, axis=0)
    data[:10, :10] = 255
    w = geotiff.class_writer(path, classes=CLASSES, source="scene.tif", model="m.pt", **GRID)
    w.write_rows(data)
    w.close()
    return path


def probability_raster(path: Path) -> Path:
    w = geotiff.probability_writer(path, classes=CLASSES, **GRID)
    w.write_rows(np.stack([np.full((80, 120), v, dtype=np.uint8) for v in (10, 20, 30, 200)]))
    w.close()
    return path


@pytest.mark.trust
def test_probability_bands_are_grey_and_named(tmp_path: Path) -> None:
    path = probability_raster(tmp_path / "p.tif")
    with rasterio.open(path) as src:
        assert ColorInterp.alpha not in src.colorinterp  # band 4 (moss) is data, never transparency
        assert src.colorinterp[0] == ColorInterp.gray
        assert set(src.colorinterp[1:]) <= {ColorInterp.undefined, ColorInterp.gray}
        assert src.descriptions == ("p(bare soil)", "p(cyanobacteria crust)", "p(lichen & <moss>)", "p(moss)")
        assert src.read(4).max() == 200
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.tif"]


@pytest.mark.trust
def test_class_raster_carries_category_names_and_attribute_table(tmp_path: Path) -> None:
    path = class_raster(tmp_path / "site_classes.tif")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site_classes.qml", "site_classes.tif", "site_classes.tif.aux.xml"]
    band = ET.parse(sidecars(path)[0]).getroot().find("PAMRasterBand")
    assert [c.text or "" for c in band.find("CategoryNames")] == ["bare soil", "cyanobacteria crust", "lichen & <moss>", "", "moss"]
    rat = band.find("GDALRasterAttributeTable")
    assert rat.get("tableType") == "thematic"
    assert [f.find("Name").text for f in rat.findall("FieldDefn")] == ["Value", "Class", "Red", "Green", "Blue"]
    rows = [[f.text for f in row.findall("F")] for row in rat.findall("Row")]
    assert rows[1] == ["1", "cyanobacteria crust", "91", "74", "63"]
    assert [r[0] for r in rows] == ["0", "1", "2", "4"]
    with rasterio.open(path) as src:  # the TIFF itself still opens and keeps its colour table
        assert src.colormap(1)[4][:3] == (0x3F, 0x7A, 0x2E) and src.nodata == 255


@pytest.mark.trust
@pytest.mark.skipif(shutil.which("gdalinfo") is None, reason="the gdalinfo tool of a system GDAL is not installed")
def test_gdal_itself_reads_the_category_names_and_the_table(tmp_path: Path) -> None:
    path = class_raster(tmp_path / "c.tif")
    info = json.loads(subprocess.run(["gdalinfo", "-json", str(path)], capture_output=True, text=True, check=True).stdout)
    band = info["bands"][0]
    assert band["categories"] == ["bare soil", "cyanobacteria crust", "lichen & <moss>", "", "moss"]
    assert [r["f"][:2] for r in info["rat"]["row"]] == [[0, "bare soil"], [1, "cyanobacteria crust"], [2, "lichen & <moss>"], [4, "moss"]]
    assert [f["usage"] for f in info["rat"]["fieldDefn"]] == [5, 2, 6, 7, 8]  # MinMax, Name, Red, Green, Blue


@pytest.mark.trust
def test_qgis_style_lists_the_classes_only(tmp_path: Path) -> None:
    root = ET.fromstring(class_qml(CLASSES).split("\n", 1)[1])
    renderer = root.find("pipe/rasterrenderer")
    assert renderer.get("type") == "paletted" and renderer.get("band") == "1"
    entries = [(e.get("value"), e.get("label"), e.get("color")) for e in renderer.iter("paletteEntry")]
    assert entries == [("0", "bare soil", "#c9a87c"), ("1", "cyanobacteria crust", "#5b4a3f"),
                       ("2", "lichen & <moss>", "#e3d55a"), ("4", "moss", "#3f7a2e")]


@pytest.mark.trust
def test_cog_copy_keeps_the_sidecars(tmp_path: Path) -> None:
    plain = class_raster(tmp_path / "plain.tif")
    geotiff.to_cog(plain, tmp_path / "cog.tif")
    for a, b in zip(sidecars(plain), sidecars(tmp_path / "cog.tif")):
        assert b.read_text(encoding="utf-8") == a.read_text(encoding="utf-8")


QGIS_LEGEND = """
import sys
from qgis.core import QgsApplication, QgsRasterLayer
app = QgsApplication([], False)
app.initQgis()
out = []
for path in sys.argv[1:]:
    layer = QgsRasterLayer(path, "x")
    r = layer.renderer()
    out.append([r.type(), [t for t, _ in r.legendSymbologyItems()], getattr(r, "alphaBand", lambda: -1)()])
print(repr(out))
del layer, r
app.exitQgis()
"""


def _has_qgis() -> bool:
    if not SYSTEM_PYTHON.is_file():
        return False
    return subprocess.run([str(SYSTEM_PYTHON), "-c", "import qgis.core"], capture_output=True).returncode == 0


@pytest.mark.trust
@pytest.mark.skipif(not _has_qgis(), reason="QGIS (qgis.core for /usr/bin/python3) is not installed")
def test_real_qgis_legend_shows_class_names_and_no_alpha_band(tmp_path: Path) -> None:
    classes = class_raster(tmp_path / "site_classes.tif")
    probs = probability_raster(tmp_path / "site_probabilities.tif")
    env = {"QT_QPA_PLATFORM": "offscreen", "HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([str(SYSTEM_PYTHON), "-c", QGIS_LEGEND, str(classes), str(probs)], capture_output=True,
                          text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    (c_type, c_legend, _), (p_type, _, p_alpha) = eval(proc.stdout.strip().splitlines()[-1])  # noqa: S307 - our own repr
    assert c_type == "paletted" and c_legend == ["bare soil", "cyanobacteria crust", "lichen & <moss>", "moss"]
    assert p_alpha == -1  # QGIS uses no band of the probability raster as transparency


@pytest.mark.trust
@pytest.mark.parametrize("name", ["=HYPERLINK(\"http://x\",\"moss\")", "+1+2", "-2+3", "@SUM(A1:A9)", "\tlichen", "\r=1"])
def test_cover_csv_neutralises_formula_cells(tmp_path: Path, name: str) -> None:
    classes = [{"id": 0, "name": name, "color": "#c9a87c"}, {"id": 1, "name": "moss - wet", "color": "#3f7a2e"}]
    counter = CoverCounter(classes, GRID["crs_wkt"], GRID["transform"])
    counter.add(np.array([[0, 1, 1, 255]], dtype=np.uint8), 0)
    path = tmp_path / "cover.csv"
    write_cover_csv(counter.table(), path)
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[1][1] == "'" + name  # shown as text, never evaluated
    assert rows[2][1] == "moss - wet"  # a dash inside a name is left alone
    assert rows[1][3:] == ["1", "0.000", "33.3333"]  # numbers untouched (area 1 px x 0.0004 m2)


@pytest.mark.trust
def test_predict_cover_csv_of_a_model_with_a_formula_class_name(tmp_path: Path, repo_root: Path, run_cli) -> None:
    import torch

    from jess_geo.models.modelfile import bundled_demo_model

    payload = torch.load(bundled_demo_model(), map_location="cpu", weights_only=True)
    meta = json.loads(payload["metadata"])
    meta["classes"][3]["name"] = '=HYPERLINK("http://example.com/x","moss")'
    torch.save(dict(payload, metadata=json.dumps(meta)), tmp_path / "m.pt")
    with rasterio.open(repo_root / "sample_data" / "scene.tif") as src:
        profile = dict(src.profile, width=96, height=64)
        data = src.read(window=((0, 64), (0, 96)))
    with rasterio.open(tmp_path / "s.tif", "w", **profile) as dst:
        dst.write(data)
    proc = run_cli("predict", "s.tif", "--model", "m.pt", "-o", "s_classes.tif", "--quiet", cwd=tmp_path)
    assert proc.exit_code == 0, proc.stderr
    with open(tmp_path / "s_cover.csv", newline="", encoding="utf-8") as f:
        names = [row[1] for row in csv.reader(f)][1:]
    assert names == ["bare soil", "cyanobacteria crust", "lichen", "'" + meta["classes"][3]["name"]]
