"""Change polygons (GeoPackage) and the transition chart (PNG) of ``jess-geo change``."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np

from jess_geo.errors import OutputError
from jess_geo.io.atomic import atomic_output, remove_quietly, temp_name
from jess_geo.io.vectorize import vectorize_raster

LAYER = "change"


def write_change_polygons(changed_tif: Path, out_gpkg: Path, classes: list[dict[str, Any]], *, source: str = "",
                          min_area: float = 0.0, progress: Any = None) -> dict[str, Any]:
    """Polygons of the changed pixels with fields from_class, to_class, area (+ the vectorizer's fields).

    ``changed_tif`` holds change codes with unchanged pixels as nodata; ``classes`` is
    :func:`jess_geo.measure.change.change_classes`.
    """
    tmp = temp_name(out_gpkg)
    remove_quietly(tmp)
    try:
        summary = vectorize_raster(changed_tif, tmp, classes, layer=LAYER, source=source, min_area=min_area,
                                   progress=progress)
        area_field = "area_m2" if summary["area_unit"] == "m2" else "area_px"
        _add_pair_fields(tmp, classes, area_field)
        for side in ("-wal", "-shm", "-journal"):
            if os.path.exists(str(tmp) + side):
                os.remove(str(tmp) + side)
        os.replace(tmp, out_gpkg)
    except sqlite3.Error as exc:
        remove_quietly(tmp)
        raise OutputError(f"The change polygons could not be written to {out_gpkg} ({exc}); check the disk.") from None
    except BaseException:
        remove_quietly(tmp)
        raise
    return summary


def _add_pair_fields(path: Path, classes: list[dict[str, Any]], area_field: str) -> None:
    """Add and fill from_class, to_class and area in the polygon layer (attributes only).

    The GeoPackage's R-tree triggers call GDAL's SQL functions, which plain sqlite3 lacks;
    they are set aside during the attribute-only update (geometries, hence the index, do not
    change) and put back unchanged.
    """
    db = sqlite3.connect(path)
    try:
        triggers = db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ?", (LAYER,)).fetchall()
        for name, _ in triggers:
            db.execute(f'DROP TRIGGER "{name}"')
        for col, kind in (("from_class", "TEXT"), ("to_class", "TEXT"), ("area", "REAL")):
            db.execute(f'ALTER TABLE "{LAYER}" ADD COLUMN {col} {kind}')
        db.executemany(f'UPDATE "{LAYER}" SET from_class = ?, to_class = ? WHERE class_id = ?',
                       [(c["from"], c["to"], int(c["id"])) for c in classes])
        db.execute(f'UPDATE "{LAYER}" SET area = {area_field}')
        for _, sql in triggers:
            db.execute(sql)
        db.commit()
    finally:
        db.close()


def write_change_chart(summary: dict[str, Any], path: Path, unit: str, title: str = "") -> None:
    """A PNG with the from-to matrix (share of the valid area) and gain / loss / net per class."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    names = summary["classes"]
    area = np.asarray(summary["area"], dtype=float)
    total = area.sum() or 1.0
    pct = 100.0 * area / total
    scale, label = (1e4, "ha") if unit == "m2" else (1.0, "px²")
    k = len(names)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(6 + 0.9 * k, 2.5 + 0.5 * k), constrained_layout=True)
    im = ax1.imshow(pct, cmap="viridis")
    ax1.set_xticks(range(k), names, rotation=45, ha="right")
    ax1.set_yticks(range(k), names)
    ax1.set_xlabel("after")
    ax1.set_ylabel("before")
    ax1.set_title("transitions (% of valid area)")
    for i in range(k):
        for j in range(k):
            if pct[i, j] >= 0.05:
                ax1.text(j, i, f"{pct[i, j]:.1f}", ha="center", va="center", fontsize=7,
                         color="white" if pct[i, j] < pct.max() / 2 else "black")
    fig.colorbar(im, ax=ax1, shrink=0.8)
    rows = summary["per_class"]
    y = np.arange(k)
    ax2.barh(y - 0.25, [r["gain"] / scale for r in rows], 0.25, label="gain", color="#2e7d32")
    ax2.barh(y, [-r["loss"] / scale for r in rows], 0.25, label="loss", color="#c8000a")
    ax2.barh(y + 0.25, [r["net"] / scale for r in rows], 0.25, label="net", color="#1f77b4")
    ax2.set_yticks(y, names)
    ax2.invert_yaxis()
    ax2.axvline(0, color="black", lw=0.6)
    ax2.set_xlabel(label)
    ax2.set_title("gain, loss and net change")
    ax2.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
