"""The Processing algorithm jessgeo:segmentraster, from qgis_process and from Python."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest
from qgis.core import QgsProject, QgsRasterLayer

from plugin_testing import PLUGIN_NAME, PLUGIN_PARENT


def _qgis_process_env(home, exe) -> dict:
    # pytest-qgis points QGIS_CUSTOM_CONFIG_PATH at <repo>/.qgis-settings: keep qgis_process apart.
    dropped = ("PYTHONPATH", "PYTHONHOME", "QGIS_CUSTOM_CONFIG_PATH", "QGIS_OPTIONS_PATH")
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env.update(QGIS_PLUGINPATH=str(PLUGIN_PARENT), HOME=str(home), QT_QPA_PLATFORM="offscreen",
               JESS_GEO_EXE=exe)
    return env


def _check_outputs(scene, classes_path, vector_path, expected_classes):
    from osgeo import gdal, ogr

    source = gdal.Open(str(scene))
    result = gdal.Open(str(classes_path))
    assert (result.RasterXSize, result.RasterYSize) == (source.RasterXSize, source.RasterYSize)
    assert result.GetGeoTransform() == pytest.approx(source.GetGeoTransform())
    assert result.GetSpatialRef().IsSame(source.GetSpatialRef())
    band = result.GetRasterBand(1)
    assert band.DataType == gdal.GDT_Byte
    values = set(int(v) for v in __import__("numpy").unique(band.ReadAsArray()))
    ids = {c["id"] for c in expected_classes}
    nodata = band.GetNoDataValue()
    assert values - {int(nodata) if nodata is not None else -1} <= ids

    vector = ogr.Open(str(vector_path))
    layer = vector.GetLayer(0)
    assert layer.GetFeatureCount() > 0
    fields = {layer.GetLayerDefn().GetFieldDefn(i).GetName() for i in range(layer.GetLayerDefn().GetFieldCount())}
    assert {"class_id", "class_name"} <= fields
    for feature in layer:
        assert feature.GetField("class_id") in ids
        assert feature.GetGeometryRef().GetArea() > 0


needs_qgis_process = pytest.mark.skipif(
    shutil.which("qgis_process.bin") is None, reason="qgis_process.bin is not installed"
)


def _qgis_process(args, env, timeout=900):
    return subprocess.run(["qgis_process.bin", *args], env=env, capture_output=True, text=True, timeout=timeout)


def _enable_plugin(env):
    enable = _qgis_process(["plugins", "enable", PLUGIN_NAME], env, timeout=900)
    output = enable.stdout + enable.stderr
    assert enable.returncode == 0 or "already enabled" in output, output


@needs_qgis_process
def test_qgis_process_lists_the_algorithm(tmp_path):
    env = _qgis_process_env(tmp_path, "")
    _enable_plugin(env)
    listing = _qgis_process(["list"], env, timeout=900)
    assert "jessgeo:segmentraster" in listing.stdout
    described = _qgis_process(["help", "jessgeo:segmentraster"], env, timeout=900)
    assert described.returncode == 0, described.stdout + described.stderr
    assert "Segment raster" in described.stdout
    for name in ("INPUT", "MODEL", "OUTPUT", "VECTOR_OUTPUT", "TILE_SIZE", "OVERLAP", "DEVICE", "MIN_AREA", "SIMPLIFY"):
        assert name in described.stdout


@needs_qgis_process
def test_qgis_process_without_jess_geo_says_how_to_install(tmp_path):
    from plugin_testing import write_scene

    env = _qgis_process_env(tmp_path, str(tmp_path / "missing" / "jess-geo"))
    _enable_plugin(env)
    scene = write_scene(tmp_path / "scene.tif")
    run = _qgis_process(["run", "jessgeo:segmentraster", "--", f"INPUT={scene}",
                         f"OUTPUT={tmp_path / 'out.tif'}"], env)
    assert run.returncode != 0
    output = run.stdout + run.stderr
    assert "pip install jess-geo" in output and "Traceback" not in output
    assert not (tmp_path / "out.tif").exists()


@needs_qgis_process
def test_qgis_process_runs_the_algorithm(model_path, jess_geo_predict, demo_model_info, scene, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = _qgis_process_env(home, jess_geo_predict)
    _enable_plugin(env)

    out = tmp_path / "out"
    out.mkdir()
    run = _qgis_process(
        ["--json", "run", "jessgeo:segmentraster", "--",
         f"INPUT={scene}", f"OUTPUT={out / 'classes.tif'}", f"VECTOR_OUTPUT={out / 'polygons.gpkg'}",
         "DEVICE=cpu", "TILE_SIZE=64", "OVERLAP=16"] + ([f"MODEL={model_path}"] if model_path else []),
        env,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    report = json.loads(run.stdout[run.stdout.index("{"):])
    results = report["results"]
    assert results["OUTPUT"] == str(out / "classes.tif")
    assert results["VECTOR_OUTPUT"] == str(out / "polygons.gpkg")
    _check_outputs(scene, out / "classes.tif", out / "polygons.gpkg", demo_model_info["classes"])


def test_processing_run_in_qgis(model_path, qgis_processing, loaded_plugin, plugin_settings, jess_geo_predict,
                                demo_model_info, scene, tmp_path):
    import processing

    plugin_settings(executable=jess_geo_predict, model=model_path)
    layer = QgsRasterLayer(str(scene), "scene", "gdal")
    QgsProject.instance().addMapLayer(layer)
    out = tmp_path / "out"
    out.mkdir()
    results = processing.run("jessgeo:segmentraster", {
        "INPUT": layer, "MODEL": model_path, "OUTPUT": str(out / "c.tif"), "VECTOR_OUTPUT": str(out / "p.gpkg"),
        "DEVICE": "cpu", "MIN_AREA": 0, "SIMPLIFY": 0,
    })
    assert results["OUTPUT"] == str(out / "c.tif")
    _check_outputs(scene, out / "c.tif", out / "p.gpkg", demo_model_info["classes"])


def test_algorithm_declares_only_file_outputs_in_the_engines_formats(qgis_processing, loaded_plugin):
    from qgis.core import QgsApplication, QgsProcessingDestinationParameter

    algorithm = QgsApplication.processingRegistry().algorithmById("jessgeo:segmentraster")
    provider = algorithm.provider()
    assert not provider.supportsNonFileBasedOutput()
    assert provider.supportedOutputRasterLayerExtensions() == ["tif"]
    assert provider.supportedOutputVectorLayerExtensions() == ["gpkg", "fgb", "geojson", "shp"]
    destinations = [p for p in algorithm.parameterDefinitions() if isinstance(p, QgsProcessingDestinationParameter)]
    assert {p.name() for p in destinations} == {"OUTPUT", "VECTOR_OUTPUT", "PROBABILITIES", "ENERGY"}
    assert not any(p.supportsNonFileBasedOutput() for p in destinations)
    assert {"COVER_CSV", "COVER_JSON"} <= {o.name() for o in algorithm.outputDefinitions()}
    model = algorithm.parameterDefinition("MODEL")
    assert "*.onnx" in model.fileFilter() and "*.pt" in model.fileFilter()


@pytest.mark.parametrize("parameter", ["VECTOR_OUTPUT", "OUTPUT"])
def test_a_memory_output_is_refused_and_no_file_called_memory_appears(
    parameter, qgis_processing, loaded_plugin, scene, tmp_path, monkeypatch
):
    import processing
    from qgis.core import QgsProcessingException

    monkeypatch.chdir(tmp_path)
    layer = QgsRasterLayer(str(scene), "scene", "gdal")
    values = {"INPUT": layer, "OUTPUT": str(tmp_path / "c.tif"), "VECTOR_OUTPUT": str(tmp_path / "p.gpkg"),
              parameter: "memory:"}
    with pytest.raises(QgsProcessingException) as error:
        processing.run("jessgeo:segmentraster", values)
    assert "writes files" in str(error.value) and "memory:" in str(error.value)
    assert not os.path.exists("memory:") and not (scene.parent / "memory:").exists()
    assert not (tmp_path / "c.tif").exists() and not (tmp_path / "p.gpkg").exists()


def test_temporary_outputs_become_files_and_the_cover_table_is_an_output(
    model_path, qgis_processing, loaded_plugin, plugin_settings, jess_geo_predict, demo_model_info, scene
):
    import processing

    plugin_settings(executable=jess_geo_predict, model=model_path)
    layer = QgsRasterLayer(str(scene), "scene", "gdal")
    results = processing.run("jessgeo:segmentraster", {
        "INPUT": layer, "MODEL": model_path, "OUTPUT": "TEMPORARY_OUTPUT", "VECTOR_OUTPUT": "TEMPORARY_OUTPUT",
        "DEVICE": "cpu",
    })
    assert results["OUTPUT"].endswith(".tif") and os.path.isfile(results["OUTPUT"])
    assert results["VECTOR_OUTPUT"].endswith(".gpkg") and os.path.isfile(results["VECTOR_OUTPUT"])
    _check_outputs(scene, results["OUTPUT"], results["VECTOR_OUTPUT"], demo_model_info["classes"])
    with open(results["COVER_CSV"], encoding="utf-8") as table:
        header = table.readline()
    assert "class" in header.lower()
    assert json.load(open(results["COVER_JSON"], encoding="utf-8"))


@pytest.mark.parametrize("extension", ["fgb", "geojson", "shp"])
def test_polygons_in_each_vector_format(
    extension, model_path, qgis_processing, loaded_plugin, plugin_settings, jess_geo_predict, demo_model_info,
    scene, tmp_path
):
    import processing
    from osgeo import ogr

    plugin_settings(executable=jess_geo_predict, model=model_path)
    layer = QgsRasterLayer(str(scene), "scene", "gdal")
    target = tmp_path / f"polygons.{extension}"
    results = processing.run("jessgeo:segmentraster", {
        "INPUT": layer, "MODEL": model_path, "OUTPUT": str(tmp_path / "c.tif"), "VECTOR_OUTPUT": str(target),
        "DEVICE": "cpu",
    })
    assert results["VECTOR_OUTPUT"] == str(target)
    driver = ogr.Open(str(target)).GetDriver().GetName()
    assert driver == {"fgb": "FlatGeobuf", "geojson": "GeoJSON", "shp": "ESRI Shapefile"}[extension]
    _check_outputs(scene, tmp_path / "c.tif", target, demo_model_info["classes"])
