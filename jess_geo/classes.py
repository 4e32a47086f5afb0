"""Class tables: id, name and colour of each class, read from JSON or YAML."""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from jess_geo.errors import InputError

IGNORE = 255
"""Label / class-raster value of pixels that carry no class (unlabelled or nodata): the one constant."""

_COLOUR = re.compile(r"#[0-9a-fA-F]{6}")
_DEFAULT_COLOURS = [
    "#8c6d4f", "#c8000a", "#bbcf4a", "#ffd400", "#006c84", "#2e7d32", "#1a1a1a", "#aed6dc",
    "#e377c2", "#7f7f7f", "#17becf", "#9467bd", "#ff7f0e", "#1f77b4", "#d62728", "#bcbd22",
]


def parse_color(value: Any) -> str:
    """A colour written ``"#rrggbb"`` (either case), as lower-case ``"#rrggbb"``; the one parser.

    Raises:
        InputError: anything else (a colour name such as "red", ``#rgb``, a list of numbers).
    """
    if not isinstance(value, str) or not _COLOUR.fullmatch(value.strip()):
        raise InputError(f"colour {value!r} is not written as \"#rrggbb\" (e.g. \"#8c6d4f\").")
    return value.strip().lower()


def color_rgb(value: Any) -> tuple[int, int, int]:
    """A ``"#rrggbb"`` colour as an (r, g, b) tuple of 0-255 integers."""
    c = parse_color(value)
    return (int(c[1:3], 16), int(c[3:5], 16), int(c[5:7], 16))


def check_class_name(name: Any) -> str:
    """A class name: a non-empty string without control characters (tabs, newlines, NUL...)."""
    if not isinstance(name, str) or not name.strip():
        raise InputError(f"class name {name!r} is empty or not text; give every class a name.")
    if any(unicodedata.category(ch) == "Cc" for ch in name):
        raise InputError(f"class name {name!r} contains control characters; use plain text.")
    return name


@dataclass(frozen=True)
class ClassInfo:
    """One class: the value it has in label masks, its name and its display colour."""

    id: int
    name: str
    color: str

    @property
    def rgb(self) -> tuple[int, int, int]:
        """The colour as an (r, g, b) tuple of 0-255 integers."""
        return color_rgb(self.color)


class ClassTable:
    """An ordered table of classes; model output channel ``i`` is ``classes[i]``."""

    def __init__(self, classes: Iterable[ClassInfo]) -> None:
        checked = []
        for c in classes:
            if isinstance(c.id, bool) or not isinstance(c.id, int) or not 0 <= c.id < IGNORE:
                raise InputError(f"Class id {c.id!r} is not an integer in 0-254 (255 marks unlabelled pixels); renumber the classes.")
            try:
                checked.append(ClassInfo(c.id, check_class_name(c.name), parse_color(c.color)))
            except InputError as exc:
                raise InputError(f"Class {c.id}: {exc}") from None
        self.classes = sorted(checked, key=lambda c: c.id)
        ids = [c.id for c in self.classes]
        if not self.classes:
            raise InputError("The class table is empty; list at least two classes as {\"0\": {\"name\": ..., \"color\": ...}}.")
        if len(set(ids)) != len(ids):
            raise InputError(f"The class table lists an id twice ({ids}); give every class its own id.")

    def __len__(self) -> int:
        return len(self.classes)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.classes)

    def __getitem__(self, index: int) -> ClassInfo:
        return self.classes[index]

    @property
    def ids(self) -> list[int]:
        """Label values in channel order."""
        return [c.id for c in self.classes]

    @property
    def names(self) -> list[str]:
        """Class names in channel order."""
        return [c.name for c in self.classes]

    def to_list(self) -> list[dict[str, Any]]:
        """JSON-able list of {id, name, color}, in channel order."""
        return [{"id": c.id, "name": c.name, "color": c.color} for c in self.classes]

    @classmethod
    def from_list(cls, items: list[dict[str, Any]]) -> "ClassTable":
        """Inverse of :meth:`to_list`."""
        if not isinstance(items, list) or not all(isinstance(i, dict) and {"id", "name", "color"} <= set(i) for i in items):
            raise InputError("classes must be a list of {\"id\", \"name\", \"color\"} entries.")
        return cls(ClassInfo(i["id"], i["name"], i["color"]) for i in items)

    @classmethod
    def from_mapping(cls, data: Any, source: str = "class table") -> "ClassTable":
        """Build from ``{"0": {"name":..., "color":...}}``, ``{"0": "name"}`` or a list of dicts."""
        entries: list[ClassInfo] = []
        if isinstance(data, dict) and "classes" in data:
            data = data["classes"]
        if isinstance(data, list):
            items = [(str(d.get("id", i)), d) for i, d in enumerate(data) if isinstance(d, dict)]
            keys = [k for k, _ in items]
            twice = sorted({k for k in keys if keys.count(k) > 1})
            if twice:
                raise InputError(f"{source} lists class id(s) {', '.join(twice)} twice; give every class its own id.")
            data = dict(items)
        if not isinstance(data, dict) or not data:
            raise InputError(f"{source} is not a class table; write it as {{\"0\": {{\"name\": \"soil\", \"color\": \"#8c6d4f\"}}, ...}}.")
        for key, value in data.items():
            try:
                cid = int(key)
            except (TypeError, ValueError):
                raise InputError(f"{source}: class id {key!r} is not an integer; use integer ids such as \"0\", \"1\".") from None
            if isinstance(value, str):
                name, colour = value, _DEFAULT_COLOURS[cid % len(_DEFAULT_COLOURS)]
            elif isinstance(value, dict) and "name" in value:
                name = value["name"]
                colour = value.get("color", value.get("colour", _DEFAULT_COLOURS[cid % len(_DEFAULT_COLOURS)]))
            else:
                raise InputError(f"{source}: class {key} has no name; give each class {{\"name\": ..., \"color\": \"#rrggbb\"}}.")
            try:
                entries.append(ClassInfo(cid, check_class_name(name), parse_color(colour)))
            except InputError as exc:
                raise InputError(f"{source}: class {key}: {exc}") from None
        try:
            return cls(entries)
        except InputError as exc:
            raise InputError(f"{source}: {exc}") from None


class _DuplicateKey(ValueError):
    pass


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    twice = sorted({k for k in keys if keys.count(k) > 1})
    if twice:
        raise _DuplicateKey(", ".join(twice))
    return dict(pairs)


def _load_yaml_unique(text: str) -> Any:
    """``yaml.safe_load`` that refuses a mapping with a key twice (PyYAML keeps the last one)."""
    import yaml

    class UniqueKeyLoader(yaml.SafeLoader):
        def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
            keys = [self.construct_object(k, deep=deep) for k, _ in node.value]
            twice = sorted({str(k) for k in keys if keys.count(k) > 1})
            if twice:
                raise _DuplicateKey(", ".join(twice))
            return super().construct_mapping(node, deep=deep)

    return yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass


def load_class_table(path: str | Path) -> ClassTable:
    """Read a class table from a JSON or YAML file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"Class table {path} does not exist; pass --classes with a JSON or YAML file like classes.json.")
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix.lower() in (".yaml", ".yml"):
            data = _load_yaml_unique(text)
        else:
            data = json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except _DuplicateKey as exc:
        raise InputError(f"Class table {path} lists class id(s) {exc} twice; give every class its own id.") from None
    except Exception as exc:  # noqa: BLE001 - any parse failure is the user's file
        raise InputError(f"Class table {path} cannot be parsed ({type(exc).__name__}); check that it is valid JSON or YAML.") from None
    return ClassTable.from_mapping(data, source=f"Class table {path}")
