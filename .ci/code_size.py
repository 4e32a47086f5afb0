"""Print module line counts and the longest functions of the engine and the plugin (issue 9's yardstick).

Usage: python .ci/code_size.py [--limit-module 400] [--limit-function 80] [--top 15]
Exit code 0 always; lines over a limit are marked with '!'.
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TREES = ("jess_geo", "qgis_plugin/jess_geo_qgis")


def functions(path: Path) -> list[tuple[int, str]]:
    """(length in lines, qualified name) of every function and method in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: list[tuple[int, str]] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = f"{prefix}{child.name}"
                out.append((child.end_lineno - child.lineno + 1, name))  # type: ignore[operator]
                visit(child, name + ".")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")

    visit(tree, "")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit-module", type=int, default=400)
    ap.add_argument("--limit-function", type=int, default=80)
    ap.add_argument("--top", type=int, default=15)
    a = ap.parse_args()
    files = sorted(p for t in TREES for p in (ROOT / t).rglob("*.py"))
    sizes = sorted(((len(p.read_text(encoding="utf-8").splitlines()), p) for p in files), reverse=True)
    print(f"modules: {len(files)}, lines: {sum(n for n, _ in sizes)}")
    for n, p in sizes[: a.top]:
        print(f"{'!' if n > a.limit_module else ' '} {n:5d}  {p.relative_to(ROOT)}")
    funcs = sorted(((n, f"{p.relative_to(ROOT)}:{name}") for p in files for n, name in functions(p)), reverse=True)
    over = [f for f in funcs if f[0] > a.limit_function]
    print(f"functions: {len(funcs)}, over {a.limit_function} lines: {len(over)}")
    for n, name in funcs[: a.top]:
        print(f"{'!' if n > a.limit_function else ' '} {n:5d}  {name}")


if __name__ == "__main__":
    main()
