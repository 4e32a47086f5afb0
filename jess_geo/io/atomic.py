"""Outputs written under a temporary name and renamed when complete; checks before writing.

Temporary names carry the writer's process id (``.<stem>.part-<pid><suffix>``), so the next run
can tell the leftovers of a dead run (``kill -9``) from a live one's and remove them
(:func:`clean_stale`). :func:`claim` takes a lock beside each final name (created exclusively),
so a second run on the same outputs refuses instead of replacing them; :func:`commit` renames
without replacing (a hard link, then the temporary name removed) unless told to overwrite, and
rolls back the outputs it created when one rename fails.
"""

from __future__ import annotations

import contextlib

import os
import re
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator, Sequence

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
    _move_sidecars(tmp, path)


def remove_quietly(path: Path) -> None:
    """Delete a file (and GDAL side-car files) if present."""
    for p in [Path(str(path) + side) for side in _SIDE_CARS] + _style_sidecar(Path(path)):
        with contextlib.suppress(OSError):
            p.unlink()


_SIDE_CARS = ("", ".aux.xml", "-journal", "-wal", "-shm")


def _style_sidecar(path: Path) -> list[Path]:
    """The QGIS style ``<stem>.qml`` a class GeoTIFF carries (io.raster_sidecars)."""
    return [path.with_suffix(".qml")] if path.suffix.lower() in (".tif", ".tiff") else []


def _move_sidecars(tmp: Path, final: Path) -> None:
    """Move GDAL's ``.aux.xml`` and QGIS's ``.qml`` of a placed raster along with it."""
    for side_tmp, side_final in [(Path(f"{tmp}.aux.xml"), Path(f"{final}.aux.xml"))] + list(
            zip(_style_sidecar(tmp), _style_sidecar(final))):
        if side_tmp.exists():
            os.replace(side_tmp, side_final)


def pid_alive(pid: int) -> bool:
    """True when process ``pid`` exists (also when it belongs to another user)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def lock_name(path: Path) -> Path:
    """The lock file that marks ``path`` as being written."""
    return path.with_name(f".{path.name}.jess-lock")


def clean_stale(path: str | Path) -> list[Path]:
    """Remove temporary files and locks of ``path`` left by runs whose process is gone."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    pattern = re.compile(rf"^\.{re.escape(path.stem)}\.part-(\d+)(-\w+)?{re.escape(path.suffix)}")
    removed: list[Path] = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for entry in entries:
        m = pattern.match(entry.name)
        if m and not pid_alive(int(m.group(1))):
            remove_quietly(entry)
            removed.append(entry)
    lock = lock_name(path)
    owner = _lock_owner(lock)
    if owner is not None and not pid_alive(owner[0]):
        remove_quietly(lock)
        removed.append(lock)
    return removed


def lock_holder(path: str | Path) -> int | None:
    """The process id of a live run that holds the lock of ``path``, or None."""
    owner = _lock_owner(lock_name(Path(path)))
    return owner[0] if owner is not None and pid_alive(owner[0]) else None


def _lock_owner(lock: Path) -> tuple[int, str] | None:
    try:
        pid, _, token = lock.read_text(encoding="ascii").partition(" ")
        return int(pid), token.strip()
    except (OSError, ValueError):
        return None


@contextmanager
def claim(paths: Sequence[str | Path]) -> Iterator[None]:
    """Hold a lock beside every path (created exclusively) until the block ends.

    A lock held by a live process (or another run in this one) is a one-line OutputError;
    one left by a dead process is taken over.
    """
    token = uuid.uuid4().hex
    held: list[Path] = []
    try:
        for p in paths:
            lock = lock_name(Path(p))
            clean_stale(p)
            try:
                fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                owner = _lock_owner(lock)
                who = f"process {owner[0]}" if owner else "another process"
                raise OutputError(f"Output {p} is being written by another jess-geo run ({who}); wait for it to finish or choose another name.") from None
            except OSError as exc:
                raise OutputError(f"Output {p} cannot be created ({exc.strerror}); choose a folder you can write to.") from None
            with os.fdopen(fd, "w", encoding="ascii") as f:
                f.write(f"{os.getpid()} {token}\n")
            held.append(lock)
        yield
    finally:
        for lock in held:
            remove_quietly(lock)


def _place(tmp: Path, final: Path, overwrite: bool) -> None:
    if overwrite:
        os.replace(tmp, final)
        _move_sidecars(tmp, final)
        return
    try:
        os.link(tmp, final)
    except FileExistsError:
        raise OutputError(f"Output {final} appeared while this run was writing it; nothing was replaced (choose another name or pass --overwrite).") from None
    except OSError:  # no hard links on this file system: the check is not atomic there
        if final.exists():
            raise OutputError(f"Output {final} appeared while this run was writing it; nothing was replaced.") from None
        os.replace(tmp, final)
        _move_sidecars(tmp, final)
        return
    os.unlink(tmp)
    _move_sidecars(tmp, final)


def commit(pairs: Sequence[tuple[Path, Path]], overwrite: bool = False) -> None:
    """Rename each ``(tmp, final)``; without ``overwrite`` an existing final is never replaced.

    If one rename fails, the finals this call created (that did not exist before) are removed
    again and the error is raised: outputs are either all placed or none is new.
    """
    placed: list[Path] = []
    try:
        for tmp, final in pairs:
            if not tmp.exists():
                continue
            existed = final.exists()
            _place(tmp, final, overwrite)
            if not existed:
                placed.append(final)
    except BaseException:
        for final in placed:
            remove_quietly(final)
        raise
