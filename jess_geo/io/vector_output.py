"""Where polygons go: the OGR driver from the file extension, conflict checks, atomic commit.

Supported formats (by extension): ``.gpkg`` GeoPackage, ``.fgb`` FlatGeobuf, ``.geojson`` /
``.json`` GeoJSON, ``.shp`` ESRI Shapefile. Anything else is refused before any work.

A new output is written under a temporary name and renamed into place when complete; it is
created exclusively (a file that appeared meanwhile, e.g. from a concurrent run, is never
replaced without ``overwrite``). An existing GeoPackage is never replaced as a whole: it is
copied (a consistent SQLite snapshot), the one layer is written into the copy, and the copy
is renamed over the original, so every other layer and its styles survive, and a failure
leaves the original untouched. A Shapefile is several files; they are moved together.
"""

from __future__ import annotations

import contextlib

import os
import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from jess_geo.errors import OutputError
from jess_geo.io.atomic import clean_stale, temp_name

__all__ = ["DRIVERS", "vector_conflict", "vector_driver", "staged_vector", "gpkg_layers", "file_parts"]

DRIVERS = {".gpkg": "GPKG", ".fgb": "FlatGeobuf", ".geojson": "GeoJSON", ".json": "GeoJSON", ".shp": "ESRI Shapefile"}
SUPPORTED = ".gpkg (GeoPackage), .fgb (FlatGeobuf), .geojson or .json (GeoJSON), .shp (Shapefile)"
SHAPEFILE_PARTS = (".shp", ".shx", ".dbf", ".prj", ".cpg", ".qix", ".sbn", ".sbx")
SIDECAR = ".qml"  # a QGIS default style beside file formats that cannot hold one
_RESERVED_PREFIXES = ("gpkg_", "rtree_", "sqlite_")


def vector_driver(path: str | Path) -> str:
    """The OGR driver name for ``path``'s extension; OutputError naming the supported ones."""
    suffix = Path(path).suffix.lower()
    if suffix not in DRIVERS:
        shown = suffix or "no extension"
        raise OutputError(f"Vector output {path} has {shown}, which jess-geo cannot write; use {SUPPORTED}.")
    return DRIVERS[suffix]


def file_parts(path: Path) -> list[Path]:
    """Every file that makes up the dataset at ``path`` (a Shapefile's siblings, style sidecars)."""
    if path.suffix.lower() == ".shp":
        return [path.with_suffix(ext) for ext in SHAPEFILE_PARTS] + [path.with_suffix(SIDECAR)]
    parts = [path]
    if DRIVERS.get(path.suffix.lower()) in ("FlatGeobuf", "GeoJSON"):
        parts.append(path.with_suffix(SIDECAR))
    return parts


def gpkg_layers(path: Path) -> list[str] | None:
    """Names of the tables a GeoPackage lists in ``gpkg_contents``; None if ``path`` is not one."""
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            rows = con.execute("SELECT table_name FROM gpkg_contents").fetchall()
        finally:
            con.close()
    except sqlite3.Error:
        return None
    return [str(r[0]) for r in rows]


def _layer_problem(layer: str) -> str | None:
    if not isinstance(layer, str) or not layer.strip():
        return "The layer name is empty; pass --layer NAME, e.g. --layer classes."
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in layer):
        return f"The layer name {layer!r} contains control characters; pass --layer with a plain name."
    if layer.lower().startswith(_RESERVED_PREFIXES) or layer.lower() == "layer_styles":
        return f"The layer name {layer!r} is reserved by GeoPackage; pass --layer with another name."
    return None


def vector_conflict(path: str | Path, layer: str = "classes", overwrite: bool = False) -> str | None:
    """Why polygons cannot go to ``path`` / ``layer`` (one line), or None when they can.

    An existing GeoPackage without ``layer`` takes the new layer beside its others without
    ``overwrite``; with ``layer`` already there, ``overwrite`` replaces that layer only.
    """
    path = Path(path)
    if path.is_dir():
        return f"Vector output {path} is a folder; give a file name such as {path / 'classes.gpkg'}."
    try:
        driver = vector_driver(path)
    except OutputError as exc:
        return str(exc)
    problem = _layer_problem(layer)
    if problem:
        return problem
    parent = path.absolute().parent
    if not parent.is_dir():
        return f"Output folder {parent} does not exist; create it first."
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"Output folder {parent} is not writable; choose a folder you can write to."
    if driver == "GPKG" and path.is_file():
        return _gpkg_conflict(path, layer, overwrite)
    exists = path.exists() or (driver == "ESRI Shapefile" and any(path.with_suffix(e).exists() for e in (".dbf", ".shx")))
    if exists and not overwrite:
        return f"Output {path} exists already; pass --overwrite to replace it or choose another name."
    return None


def _gpkg_conflict(path: Path, layer: str, overwrite: bool) -> str | None:
    layers = gpkg_layers(path)
    if layers is None:
        if overwrite:
            return None
        return f"Output {path} exists already (and is not a GeoPackage); pass --overwrite to replace it or choose another name."
    wal = Path(f"{path}-wal")
    if wal.is_file() and wal.stat().st_size > 0:
        return f"GeoPackage {path} is open in another program ({wal.name} exists); close it there and run again."
    if layer.lower() in (name.lower() for name in layers) and not overwrite:
        return (f"GeoPackage {path} already holds a layer {layer!r}; pass --overwrite to replace that layer "
                "(other layers are kept) or --layer NAME to add another.")
    return None


def _copy_gpkg(src: Path, dst: Path) -> None:
    """A consistent copy of a GeoPackage (SQLite online backup: includes committed WAL pages)."""
    source = sqlite3.connect(f"file:{src}?mode=ro", uri=True)
    try:
        target = sqlite3.connect(str(dst))
        try:
            source.backup(target)
        finally:
            target.close()
    finally:
        source.close()


def _remove(paths: list[Path]) -> None:
    for p in paths + [Path(f"{paths[0]}{side}") for side in ("-journal", "-wal", "-shm")]:
        with contextlib.suppress(OSError):
            p.unlink()


@contextmanager
def staged_vector(path: str | Path, layer: str = "classes", overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write the dataset to; move it to ``path`` when the block succeeds.

    Raises OutputError (before yielding) when :func:`vector_conflict` finds a reason not to write.
    """
    path = Path(path)
    reason = vector_conflict(path, layer, overwrite)
    if reason:
        raise OutputError(reason)
    for part in file_parts(path):  # leftovers of a killed run (its process is gone): every part
        clean_stale(part)
    tmp = temp_name(path)
    parts = file_parts(tmp)
    _remove(parts)
    update = vector_driver(path) == "GPKG" and path.is_file() and gpkg_layers(path) is not None
    try:
        if update:
            _copy_gpkg(path, tmp)
        yield tmp
        _commit(tmp, path, exclusive=not (overwrite or update))
    except sqlite3.Error as exc:
        _remove(parts)
        raise OutputError(f"GeoPackage {path} could not be copied ({exc}); check the file and the disk.") from None
    except BaseException:
        _remove(parts)
        raise


def _commit(tmp: Path, path: Path, exclusive: bool) -> None:
    """Move every part of ``tmp`` to the matching part of ``path``; stale parts of ``path`` go."""
    for side in ("-journal", "-wal", "-shm"):
        Path(f"{tmp}{side}").unlink(missing_ok=True)
    pairs = list(zip(file_parts(tmp), file_parts(path)))
    if exclusive:
        try:
            os.link(tmp, path)  # fails if the file appeared meanwhile (another run)
        except FileExistsError:
            raise OutputError(f"Output {path} was created by another program while this run worked; "
                              "pass --overwrite to replace it or choose another name.") from None
        except OSError:
            os.replace(tmp, path)  # file systems without hard links
        tmp.unlink(missing_ok=True)
        pairs = pairs[1:]
    for src, dst in pairs:
        if src.exists():
            os.replace(src, dst)
        elif dst.exists():
            dst.unlink()
