"""Outputs written under a temporary name and renamed when complete; checks before writing."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

from jess_geo.errors import OutputError


def temp_name(path: Path) -> Path:
    """A hidden sibling of ``path`` with the same suffix, unique to this process."""
    return path.with_name(f".{path.stem}.part-{os.getpid()}{path.suffix}")


def check_output(path: str | Path, overwrite: bool = False, inputs: Iterable[str | Path] = ()) -> Path:
    """Refuse an output that equals an input, exists (without ``overwrite``) or cannot be written."""
    path = Path(path)
    resolved = path.resolve()
    for inp in inputs:
        if Path(inp).resolve() == resolved:
            raise OutputError(f"Output {path} is the same file as an input; choose another output name.")
    if path.exists() and not overwrite:
        raise OutputError(f"Output {path} exists already; pass --overwrite to replace it or choose another name.")
    parent = resolved.parent
    if not parent.is_dir():
        raise OutputError(f"Output folder {parent} does not exist; create it first.")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"Output folder {parent} is not writable; choose a folder you can write to.")
    return path


def ensure_dir(path: str | Path) -> Path:
    """Create an output folder (and parents) or raise a one-line OutputError."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"Output folder {path} cannot be created ({exc.strerror}); choose a folder you can write to.") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise OutputError(f"Output folder {path} is not writable; choose a folder you can write to.")
    return path


def check_dir_creatable(path: str | Path) -> None:
    """Raise a one-line OutputError now if ``path`` could not be created or written later
    (checks the folder or its nearest existing parent; creates nothing)."""
    path = Path(path).absolute()
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise OutputError(f"Output folder {path} cannot be created ({probe} is not a folder); choose another --output-dir.")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise OutputError(f"Output folder {path} is not writable ({probe} is read-only for you); choose a folder you can write to.")


@contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; rename it to ``path`` on success, delete it on any error."""
    path = Path(path)
    tmp = temp_name(path)
    try:
        yield tmp
    except BaseException:
        remove_quietly(tmp)
        raise
    if not tmp.exists():
        return
    os.replace(tmp, path)


def remove_quietly(path: Path) -> None:
    """Delete a file (and GDAL side-car files) if present."""
    for p in (path, Path(str(path) + ".aux.xml"), Path(str(path) + "-journal"), Path(str(path) + "-wal")):
        try:
            p.unlink()
        except FileNotFoundError:
            pass
        except OSError:
            pass
