"""GeoPackage 1.2 polygon layers written with sqlite3: core tables, CRS rows, GP blobs, R-tree index.

Predicting to a ``.gpkg`` imports neither pyogrio nor pandas through this module (about half a
second of start-up). One call appends one batch in one transaction; the first call of a layer
creates it, replacing a layer of the same name (its table, R-tree, triggers and rows in the
``gpkg_*`` tables) and keeping every other table of the file, ``layer_styles`` included.

What is written follows the GeoPackage 1.2 standard as GDAL writes it: ``application_id``
'GPKG', ``user_version`` 10200 (left alone in an existing GeoPackage), the three required
``gpkg_spatial_ref_sys`` rows, geometries as the 'GP' header (version 0, little-endian, an
[minx, maxx, miny, maxy] envelope; empty geometries flagged, without envelope) plus WKB, the
``rtree_<table>_<column>`` index with the standard triggers, registered as ``gpkg_rtree_index``
and bulk-loaded by :func:`finish_gpkg_layer` after the last batch.
A layer without CRS gets GDAL's 'Undefined SRS' row (srs_id 99999), as the pyogrio path did.
"""

from __future__ import annotations

import re
import sqlite3
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import shapely

__all__ = ["finish_gpkg_layer", "write_gpkg_batch"]

APPLICATION_ID = 0x47504B47  # 'GPKG'
USER_VERSION = 10200  # GeoPackage 1.2.0
GEOM_COLUMN = "geom"
FIRST_CUSTOM_SRS = 100000
RTREE_EXTENSION = "http://www.geopackage.org/spec120/#extension_rtree"

WGS84_WKT = (
    'GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,298.257223563,AUTHORITY["EPSG","7030"]],'
    'AUTHORITY["EPSG","6326"]],PRIMEM["Greenwich",0,AUTHORITY["EPSG","8901"]],'
    'UNIT["degree",0.0174532925199433,AUTHORITY["EPSG","9122"]],AXIS["Latitude",NORTH],AXIS["Longitude",EAST],'
    'AUTHORITY["EPSG","4326"]]'
)
UNDEFINED_SRS = (
    "Undefined SRS", 99999, "GDAL", 99999,
    'LOCAL_CS["Undefined SRS",LOCAL_DATUM["unknown",32767],UNIT["unknown",0],AXIS["Easting",EAST],AXIS["Northing",NORTH]]',
    "Custom undefined coordinate reference system",
)
REQUIRED_SRS = [
    ("WGS 84 geodetic", 4326, "EPSG", 4326, WGS84_WKT, "longitude/latitude coordinates in decimal degrees on the WGS 84 spheroid"),
    ("Undefined Cartesian SRS", -1, "NONE", -1, "undefined", "undefined Cartesian coordinate reference system"),
    ("Undefined geographic SRS", 0, "NONE", 0, "undefined", "undefined geographic coordinate reference system"),
]

CORE_TABLES = [
    "CREATE TABLE IF NOT EXISTS gpkg_spatial_ref_sys (srs_name TEXT NOT NULL, srs_id INTEGER NOT NULL PRIMARY KEY, "
    "organization TEXT NOT NULL, organization_coordsys_id INTEGER NOT NULL, definition TEXT NOT NULL, description TEXT)",
    "CREATE TABLE IF NOT EXISTS gpkg_contents (table_name TEXT NOT NULL PRIMARY KEY, data_type TEXT NOT NULL, "
    "identifier TEXT UNIQUE, description TEXT DEFAULT '', "
    "last_change DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')), "
    "min_x DOUBLE, min_y DOUBLE, max_x DOUBLE, max_y DOUBLE, srs_id INTEGER, "
    "CONSTRAINT fk_gc_r_srs_id FOREIGN KEY (srs_id) REFERENCES gpkg_spatial_ref_sys(srs_id))",
    "CREATE TABLE IF NOT EXISTS gpkg_geometry_columns (table_name TEXT NOT NULL, column_name TEXT NOT NULL, "
    "geometry_type_name TEXT NOT NULL, srs_id INTEGER NOT NULL, z TINYINT NOT NULL, m TINYINT NOT NULL, "
    "CONSTRAINT pk_geom_cols PRIMARY KEY (table_name, column_name), CONSTRAINT uk_gc_table_name UNIQUE (table_name), "
    "CONSTRAINT fk_gc_tn FOREIGN KEY (table_name) REFERENCES gpkg_contents(table_name), "
    "CONSTRAINT fk_gc_srs FOREIGN KEY (srs_id) REFERENCES gpkg_spatial_ref_sys (srs_id))",
    "CREATE TABLE IF NOT EXISTS gpkg_extensions (table_name TEXT, column_name TEXT, extension_name TEXT NOT NULL, "
    "definition TEXT NOT NULL, scope TEXT NOT NULL, CONSTRAINT ge_tce UNIQUE (table_name, column_name, extension_name))",
]

# GeoPackage 1.2, Annex F.3: the R-tree triggers; {t} table, {c} geometry column, {i} primary key, {r} R-tree.
RTREE_TRIGGERS = {
    "insert": 'AFTER INSERT ON {t} WHEN (new.{c} NOT NULL AND NOT ST_IsEmpty(NEW.{c})) BEGIN '
              'INSERT OR REPLACE INTO {r} VALUES (NEW.{i}, ST_MinX(NEW.{c}), ST_MaxX(NEW.{c}), ST_MinY(NEW.{c}), ST_MaxY(NEW.{c})); END',
    "update1": 'AFTER UPDATE OF {c} ON {t} WHEN OLD.{i} = NEW.{i} AND (NEW.{c} NOTNULL AND NOT ST_IsEmpty(NEW.{c})) BEGIN '
               'INSERT OR REPLACE INTO {r} VALUES (NEW.{i}, ST_MinX(NEW.{c}), ST_MaxX(NEW.{c}), ST_MinY(NEW.{c}), ST_MaxY(NEW.{c})); END',
    "update2": 'AFTER UPDATE OF {c} ON {t} WHEN OLD.{i} = NEW.{i} AND (NEW.{c} ISNULL OR ST_IsEmpty(NEW.{c})) BEGIN '
               'DELETE FROM {r} WHERE id = OLD.{i}; END',
    "update3": 'AFTER UPDATE ON {t} WHEN OLD.{i} != NEW.{i} AND (NEW.{c} NOTNULL AND NOT ST_IsEmpty(NEW.{c})) BEGIN '
               'DELETE FROM {r} WHERE id = OLD.{i}; '
               'INSERT OR REPLACE INTO {r} VALUES (NEW.{i}, ST_MinX(NEW.{c}), ST_MaxX(NEW.{c}), ST_MinY(NEW.{c}), ST_MaxY(NEW.{c})); END',
    "update4": 'AFTER UPDATE ON {t} WHEN OLD.{i} != NEW.{i} AND (NEW.{c} ISNULL OR ST_IsEmpty(NEW.{c})) BEGIN '
               'DELETE FROM {r} WHERE id IN (OLD.{i}, NEW.{i}); END',
    "delete": 'AFTER DELETE ON {t} WHEN old.{c} NOT NULL BEGIN DELETE FROM {r} WHERE id = OLD.{i}; END',
}

HEADER = np.dtype([("magic", "S2"), ("version", "u1"), ("flags", "u1"), ("srs_id", "<i4"), ("envelope", "<f8", (4,))])
FLAGS_ENVELOPE, FLAGS_EMPTY = 0b0000_0011, 0b0001_0001  # little-endian + [minx, maxx, miny, maxy] / + empty, no envelope
EMPTY_HEADER_BYTES = 8
CELL = np.dtype([("id", ">i8"), ("box", ">f4", (4,))])  # an R-tree cell: rowid or child node, minx maxx miny maxy
CACHE_KIB = 65536  # page cache while writing: R-tree inserts touch many nodes (about 10 % faster than 2 MiB)


def _q(name: str) -> str:
    """``name`` as a quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def _sql_type(values: np.ndarray) -> str:
    """The GeoPackage column type GDAL reads back as ``values``' dtype (int32 <-> MEDIUMINT)."""
    kind = values.dtype.kind
    if kind == "b":
        return "BOOLEAN"
    if kind in "iu":
        fits_int32 = values.dtype.itemsize < 4 or (values.dtype.itemsize == 4 and kind == "i")
        return "MEDIUMINT" if fits_int32 else "INTEGER"
    if kind == "f":
        return "REAL"
    return "TEXT"


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _epsg(wkt: str) -> int | None:
    """The EPSG code of a CRS given as WKT, or None (rasterio is on the predict path already)."""
    from rasterio.crs import CRS

    try:
        return CRS.from_wkt(wkt).to_epsg(confidence_threshold=100)
    except Exception:  # rasterio.errors.CRSError on WKT PROJ cannot parse: a custom row
        return None


def _srs_id(con: sqlite3.Connection, crs_wkt: str | None) -> int:
    """The srs_id of ``crs_wkt`` in the file, adding its ``gpkg_spatial_ref_sys`` row if needed."""
    if not crs_wkt:
        row = UNDEFINED_SRS
    else:
        name_match = re.match(r'\s*\w+\s*\[\s*"([^"]*)"', crs_wkt)
        name = name_match.group(1) if name_match else "Unknown"
        code = _epsg(crs_wkt)
        if code is not None:
            found = con.execute("SELECT srs_id FROM gpkg_spatial_ref_sys WHERE upper(organization) = 'EPSG' "
                                "AND organization_coordsys_id = ?", (code,)).fetchone()
            if found:
                return int(found[0])
            if not con.execute("SELECT 1 FROM gpkg_spatial_ref_sys WHERE srs_id = ?", (code,)).fetchone():
                con.execute("INSERT INTO gpkg_spatial_ref_sys VALUES (?, ?, 'EPSG', ?, ?, NULL)", (name, code, code, crs_wkt))
                return code
        found = con.execute("SELECT srs_id FROM gpkg_spatial_ref_sys WHERE definition = ?", (crs_wkt,)).fetchone()
        if found:
            return int(found[0])
        (top,) = con.execute("SELECT max(srs_id) FROM gpkg_spatial_ref_sys").fetchone()
        new_id = max(FIRST_CUSTOM_SRS, int(top or 0) + 1)
        row = (name, new_id, "NONE", new_id, crs_wkt, None)
    con.execute("INSERT OR IGNORE INTO gpkg_spatial_ref_sys VALUES (?, ?, ?, ?, ?, ?)", row)
    return int(row[1])


def _table_exists(con: sqlite3.Connection, name: str) -> bool:
    return con.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND lower(name) = lower(?)", (name,)).fetchone() is not None


def _drop_layer(con: sqlite3.Connection, layer: str) -> None:
    """Remove ``layer`` (any case), its R-tree and its rows in the gpkg tables; styles are kept."""
    rows = con.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND lower(name) = lower(?)", (layer,)).fetchall()
    for (table,) in rows:
        for (column,) in con.execute("SELECT column_name FROM gpkg_geometry_columns WHERE lower(table_name) = lower(?)", (table,)).fetchall():
            con.execute(f"DROP TABLE IF EXISTS {_q(f'rtree_{table}_{column}')}")
        con.execute(f"DROP TABLE {_q(table)}")  # its triggers go with it
    for meta in ("gpkg_extensions", "gpkg_geometry_columns", "gpkg_data_columns", "gpkg_metadata_reference",
                 "gpkg_ogr_contents", "gpkg_contents"):
        if _table_exists(con, meta):
            con.execute(f"DELETE FROM {meta} WHERE lower(table_name) = lower(?)", (layer,))


def _create_layer(con: sqlite3.Connection, layer: str, geometry_type: str, fields: Sequence[str],
                  columns: Sequence[np.ndarray], srs_id: int) -> None:
    """The feature table, its R-tree and its rows in gpkg_contents, gpkg_geometry_columns, gpkg_extensions."""
    defs = ", ".join(f"{_q(f)} {_sql_type(c)}" for f, c in zip(fields, columns))
    con.execute(f"CREATE TABLE {_q(layer)} (fid INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, "
                f"{_q(GEOM_COLUMN)} {geometry_type.upper()}{', ' + defs if defs else ''})")
    con.execute("INSERT INTO gpkg_contents (table_name, data_type, identifier, description, last_change, srs_id) "
                "VALUES (?, 'features', ?, '', ?, ?)", (layer, layer, _now(), srs_id))
    con.execute("INSERT INTO gpkg_geometry_columns VALUES (?, ?, ?, ?, 0, 0)", (layer, GEOM_COLUMN, geometry_type.upper(), srs_id))
    con.execute(f"CREATE VIRTUAL TABLE {_q(f'rtree_{layer}_{GEOM_COLUMN}')} USING rtree(id, minx, maxx, miny, maxy)")
    con.execute("INSERT INTO gpkg_extensions VALUES (?, ?, 'gpkg_rtree_index', ?, 'write-only')", (layer, GEOM_COLUMN, RTREE_EXTENSION))


def _triggers(con: sqlite3.Connection, layer: str, create: bool) -> None:
    """Create the standard R-tree triggers (``create``), or drop the insert one for a bulk insert."""
    rtree = f"rtree_{layer}_{GEOM_COLUMN}"
    if not create:
        con.execute(f"DROP TRIGGER IF EXISTS {_q(rtree + '_insert')}")
        return
    names = {"t": _q(layer), "c": _q(GEOM_COLUMN), "i": _q("fid"), "r": _q(rtree)}
    for suffix, body in RTREE_TRIGGERS.items():
        con.execute(f"CREATE TRIGGER IF NOT EXISTS {_q(f'{rtree}_{suffix}')} {body.format(**names)}")


def _blobs(geoms: np.ndarray, srs_id: int) -> tuple[list[bytes | None], np.ndarray]:
    """GeoPackage geometry blobs of ``geoms`` and their [minx, miny, maxx, maxy] bounds (NaN if empty)."""
    wkb = shapely.to_wkb(geoms, byte_order=1, output_dimension=2)
    bounds = shapely.bounds(geoms).reshape(-1, 4)
    empty = np.isnan(bounds).any(axis=1)
    head = np.zeros(len(geoms), dtype=HEADER)
    head["magic"], head["srs_id"] = b"GP", srs_id
    head["flags"] = np.where(empty, FLAGS_EMPTY, FLAGS_ENVELOPE)
    head["envelope"] = bounds[:, [0, 2, 1, 3]]
    raw, size = head.tobytes(), HEADER.itemsize
    blobs = [None if w is None else raw[k * size:k * size + (EMPTY_HEADER_BYTES if e else size)] + w
             for k, (w, e) in enumerate(zip(wkb.tolist(), empty.tolist()))]
    return blobs, bounds


def _values(column: np.ndarray) -> list[Any]:
    """A column as Python values, NaN and None as SQL NULL."""
    if column.dtype.kind == "f":
        return np.where(np.isnan(column), None, column.astype(object)).tolist()
    if column.dtype.kind == "b":
        return column.astype(int).tolist()
    return column.tolist()


def _insert(con: sqlite3.Connection, layer: str, geoms: np.ndarray, fields: Sequence[str],
            columns: Sequence[np.ndarray], srs_id: int) -> None:
    """Append the features with consecutive fids and grow the layer's extent (the R-tree comes at the end)."""
    if len(geoms) == 0:
        return
    (last,) = con.execute(f"SELECT coalesce(max(fid), 0) FROM {_q(layer)}").fetchone()
    fids = list(range(int(last) + 1, int(last) + 1 + len(geoms)))
    blobs, bounds = _blobs(geoms, srs_id)
    names = ", ".join(_q(f) for f in ["fid", GEOM_COLUMN, *fields])
    marks = ", ".join("?" * (2 + len(fields)))
    con.executemany(f"INSERT INTO {_q(layer)} ({names}) VALUES ({marks})", zip(fids, blobs, *(_values(c) for c in columns)))
    keep = ~np.isnan(bounds).any(axis=1)
    if not keep.any():
        return
    box = bounds[keep]
    con.execute("UPDATE gpkg_contents SET min_x = min(coalesce(min_x, ?1), ?1), min_y = min(coalesce(min_y, ?2), ?2), "
                "max_x = max(coalesce(max_x, ?3), ?3), max_y = max(coalesce(max_y, ?4), ?4) WHERE table_name = ?5",
                (float(box[:, 0].min()), float(box[:, 1].min()), float(box[:, 2].max()), float(box[:, 3].max()), layer))


def _float32(values: np.ndarray, down: bool) -> np.ndarray:
    """``values`` as float32 rounded outwards (down for minima, up for maxima), as SQLite's R-tree stores them."""
    f = values.astype(np.float32)
    wrong = f > values if down else f < values
    f[wrong] = np.nextafter(f[wrong], np.float32(-np.inf if down else np.inf))
    return f


def _str_order(boxes: np.ndarray, cap: int) -> np.ndarray:
    """Sort-Tile-Recursive order: vertical slices by centre x, each sorted by centre y, cut into nodes of ``cap``."""
    n = len(boxes)
    per_slice = int(np.ceil(np.sqrt(np.ceil(n / cap)))) * cap
    by_x = np.argsort(boxes[:, 0] + boxes[:, 1], kind="stable")
    cy = (boxes[:, 2] + boxes[:, 3])[by_x]
    return by_x[np.lexsort((cy, np.arange(n) // per_slice))]


def _node_blob(size: int, depth: int, cells: np.ndarray) -> bytes:
    """One R-tree node: 16-bit depth (root only, else 0), 16-bit cell count, big-endian cells, zero padding."""
    body = np.array([depth, len(cells)], dtype=">u2").tobytes() + cells.tobytes()
    return body + bytes(size - len(body))


def _pack_rtree(con: sqlite3.Connection, rtree: str, ids: np.ndarray, boxes: np.ndarray) -> None:
    """Bulk-load an empty SQLite R-tree (``boxes``: minx, maxx, miny, maxy) by writing its shadow tables.

    One pass per level instead of one R-tree insert per feature (about 30 us each, the bulk of
    the time of a large layer). The result passes SQLite's ``rtreecheck()``.
    """
    node, rowid, parent = (_q(f"{rtree}_{t}") for t in ("node", "rowid", "parent"))
    (size,) = con.execute(f"SELECT length(data) FROM {node} WHERE nodeno = 1").fetchone()
    cap = (size - 4) // CELL.itemsize
    boxes = np.stack([_float32(boxes[:, 0], True), _float32(boxes[:, 1], False),
                      _float32(boxes[:, 2], True), _float32(boxes[:, 3], False)], axis=1)
    next_no, depth = 2, 0
    while len(ids) > cap:
        order = _str_order(boxes, cap)
        ids, boxes = ids[order], boxes[order]
        starts = np.arange(0, len(ids), cap)
        nodenos = np.arange(next_no, next_no + len(starts), dtype=np.int64)
        next_no += len(starts)
        cells = np.zeros(len(ids), dtype=CELL)
        cells["id"], cells["box"] = ids, boxes
        con.executemany(f"INSERT INTO {node} VALUES (?, ?)",
                        ((int(no), _node_blob(size, 0, cells[a:a + cap])) for no, a in zip(nodenos, starts)))
        owner = np.repeat(nodenos, np.diff(np.append(starts, len(ids))))
        con.executemany(f"INSERT INTO {rowid if depth == 0 else parent} VALUES (?, ?)", zip(ids.tolist(), owner.tolist()))
        ids = nodenos
        boxes = np.stack([np.minimum.reduceat(boxes[:, 0], starts), np.maximum.reduceat(boxes[:, 1], starts),
                          np.minimum.reduceat(boxes[:, 2], starts), np.maximum.reduceat(boxes[:, 3], starts)], axis=1)
        depth += 1
    cells = np.zeros(len(ids), dtype=CELL)
    cells["id"], cells["box"] = ids, boxes
    con.execute(f"UPDATE {node} SET data = ? WHERE nodeno = 1", (_node_blob(size, depth, cells),))
    con.executemany(f"INSERT INTO {rowid if depth == 0 else parent} VALUES (?, 1)", ((int(i),) for i in ids))


@contextmanager
def _transaction(path: str | Path) -> Iterator[sqlite3.Connection]:
    """A connection to ``path`` inside one write transaction: committed on success, rolled back on any error."""
    con = sqlite3.connect(str(path), isolation_level=None)
    try:
        con.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
        con.execute("BEGIN IMMEDIATE")
        try:
            yield con
            con.execute("COMMIT")
        except BaseException:
            if con.in_transaction:
                con.execute("ROLLBACK")
            raise
    finally:
        con.close()


def finish_gpkg_layer(path: str | Path, layer: str) -> None:
    """Build ``layer``'s spatial index once every batch is in (bulk-loaded from the blobs' envelopes).

    Raises:
        sqlite3.Error, OSError: the file cannot be written.
    """
    rtree = f"rtree_{layer}_{GEOM_COLUMN}"
    with _transaction(path) as con:
        rows = con.execute(f"SELECT fid, substr({_q(GEOM_COLUMN)}, 9, 32) FROM {_q(layer)} "
                           f"WHERE substr({_q(GEOM_COLUMN)}, 4, 1) = ?", (bytes([FLAGS_ENVELOPE]),)).fetchall()
        for table in ("node", "rowid", "parent"):
            con.execute(f"DELETE FROM {_q(f'{rtree}_{table}')}" + (" WHERE nodeno != 1" if table == "node" else ""))
        con.execute(f"UPDATE {_q(rtree + '_node')} SET data = zeroblob(length(data)) WHERE nodeno = 1")
        if rows:
            ids = np.array([r[0] for r in rows], dtype=np.int64)
            boxes = np.frombuffer(b"".join(r[1] for r in rows), dtype="<f8").reshape(-1, 4)
            _pack_rtree(con, rtree, ids, boxes)


def _prepare_file(con: sqlite3.Connection) -> None:
    """GeoPackage identity (a new file only) and the core tables and rows, where they are missing."""
    (app_id,) = con.execute("PRAGMA application_id").fetchone()
    if app_id == 0:
        con.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        con.execute(f"PRAGMA user_version = {USER_VERSION}")
    for sql in CORE_TABLES:
        con.execute(sql)
    con.executemany("INSERT OR IGNORE INTO gpkg_spatial_ref_sys VALUES (?, ?, ?, ?, ?, ?)", REQUIRED_SRS)


def write_gpkg_batch(path: str | Path, layer: str, geoms: np.ndarray, fields: Sequence[str], columns: Sequence[np.ndarray],
                     *, crs_wkt: str | None, append: bool, geometry_type: str = "POLYGON") -> None:
    """Write one batch of features to ``layer`` of the GeoPackage ``path``, in one transaction.

    Args:
        path: the GeoPackage; created if missing, otherwise updated in place.
        layer: the feature table; without ``append`` an existing one of that name is replaced.
        geoms: shapely geometries in the layer's CRS.
        fields, columns: attribute names and one array per name (ints -> MEDIUMINT/INTEGER,
            floats -> REAL with NaN as NULL, anything else -> TEXT).
        crs_wkt: the layer's CRS as WKT, None for pixel coordinates.
        append: add to the layer the previous call created.
        geometry_type: the declared geometry type of the layer.

    The layer's R-tree stays empty until :func:`finish_gpkg_layer` runs after the last batch.

    Raises:
        sqlite3.Error, OSError: the file cannot be written (nothing of this batch is kept).
    """
    geoms = np.asarray(geoms, dtype=object)
    with _transaction(path) as con:
        if append:
            (srs_id,) = con.execute("SELECT srs_id FROM gpkg_geometry_columns WHERE table_name = ?", (layer,)).fetchone()
        else:
            _prepare_file(con)
            _drop_layer(con, layer)
            srs_id = _srs_id(con, crs_wkt)
            _create_layer(con, layer, geometry_type, fields, columns, srs_id)
        _triggers(con, layer, create=False)
        _insert(con, layer, geoms, fields, columns, srs_id)
        _triggers(con, layer, create=True)
        con.execute("UPDATE gpkg_contents SET last_change = ? WHERE table_name = ?", (_now(), layer))
