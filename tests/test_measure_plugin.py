"""The QGIS plugin's measure commands (pure part, no QGIS): command lines and one real run."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "qgis_plugin"))

from jess_geo_qgis.measure_commands import measure_command, run_measure, stem_of  # noqa: E402


def test_command_lines() -> None:
    cmd = measure_command("jess-geo", "stats", ["/d/map.tif"], [("--zones", "/d/p.gpkg"), ("--zone-field", None), ("-o", "/d/out")])
    assert cmd == ["jess-geo", "stats", "--zones", "/d/p.gpkg", "-o", "/d/out", "--json", "--overwrite", "--", "/d/map.tif"]
    assert stem_of("/d/plots.csv") == "/d/plots" and stem_of("/d/change.tif") == "/d/change" and stem_of("/d/x") == "/d/x"
    with pytest.raises(ValueError, match="input file"):
        measure_command("jess-geo", "change", ["/d/a.tif", ""], [])


def test_run_measure_returns_outputs_and_one_line_errors(tmp_path: Path, cli_command: list[str]) -> None:
    tif = tmp_path / "map.tif"
    with rasterio.open(tif, "w", driver="GTiff", width=4, height=4, count=1, dtype="uint8", nodata=255, crs="EPSG:32612",
                       transform=Affine(1, 0, 500000, 0, -1, 4100000)) as dst:
        dst.write(np.eye(4, dtype=np.uint8), 1)
        dst.update_tags(CLASS_NAMES=json.dumps({"0": "soil", "1": "moss"}))
    out = run_measure(measure_command(cli_command[0], "stats", [str(tif)], [("-o", str(tmp_path / "s"))]) if len(cli_command) == 1
                      else cli_command + ["stats", "--json", "--overwrite", "-o", str(tmp_path / "s"), "--", str(tif)])
    assert out[".csv"] == str(tmp_path / "s.csv") and Path(out[".json"]).is_file()
    with pytest.raises(RuntimeError, match="does not exist"):
        run_measure(measure_command(cli_command[0], "stats", [str(tmp_path / "missing.tif")], []) if len(cli_command) == 1
                    else cli_command + ["stats", "--json", str(tmp_path / "missing.tif")])
