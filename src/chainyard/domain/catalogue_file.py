"""Loading an operator's instance-type file (JSON or TOML) that extends or replaces the
default catalogue; see docs/instance-types.md for the format."""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from chainyard.domain.instance_types import (
    DEFAULT_INSTANCE_TYPE_ALIASES,
    DEFAULT_INSTANCE_TYPES,
    Catalogue,
    CatalogueError,
    InstanceType,
    _field_problem,
    default_catalogue,
    describe_instance_type,
)

__all__ = ["load_catalogue"]


_TOP_LEVEL_KEYS: Final = frozenset({"mode", "instance_types"})
_ENTRY_KEYS: Final = frozenset(
    {
        "id",
        "name",
        "memory_limit_mib",
        "millicpu_limit",
        "gpu_count",
        "gpu_type",
        "gpu_memory_limit_mib",
        "price_per_minute",
    }
)
_MODES: Final = ("extend", "replace")


def load_catalogue(path: str | os.PathLike[str] | None) -> Catalogue:
    """Build the catalogue: Baseten's defaults, changed by an operator file if given.

    The file (``.json`` or ``.toml``) holds ``mode`` (``"extend"``, the default, or
    ``"replace"``) and ``instance_types``, a list of entries with the fields of
    `InstanceType`. In ``extend`` mode an entry with a default's id replaces it and
    new ids are added; ``replace`` keeps only the file's entries. Any problem raises
    `CatalogueError` naming the file, the entry index and the field.
    """
    if path is None:
        return default_catalogue()
    file = Path(path)
    document = _read_document(file)
    mode, entries = _parse_document(file, document)
    if mode == "replace":
        return Catalogue(entries)
    merged = {it.id: it for it in DEFAULT_INSTANCE_TYPES}
    for entry in entries:
        merged[entry.id] = entry
    return Catalogue(merged.values(), DEFAULT_INSTANCE_TYPE_ALIASES)


def _read_document(file: Path) -> object:
    suffix = file.suffix.lower()
    if suffix not in {".json", ".toml"}:
        raise CatalogueError(
            f"{file}: unsupported catalogue file type {file.suffix or '(none)'!r}; "
            f"use a .json or .toml file"
        )
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise CatalogueError(f"{file}: cannot read catalogue file: {exc.strerror or exc}") from exc
    try:
        if suffix == ".json":
            return json.loads(raw)
        return tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise CatalogueError(f"{file}: not valid UTF-8: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise CatalogueError(
            f"{file}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from exc
    except tomllib.TOMLDecodeError as exc:
        raise CatalogueError(f"{file}: invalid TOML: {exc}") from exc


def _parse_document(file: Path, document: object) -> tuple[str, list[InstanceType]]:
    if not isinstance(document, dict):
        raise CatalogueError(f"{file}: the top level must be an object/table")
    unknown = sorted(set(document) - _TOP_LEVEL_KEYS)
    if unknown:
        raise CatalogueError(
            f"{file}: unknown top-level key(s) {', '.join(map(repr, unknown))}; "
            f"expected 'mode' and 'instance_types'"
        )
    mode = document.get("mode", "extend")
    if mode not in _MODES:
        raise CatalogueError(f"{file}: mode: must be 'extend' or 'replace', got {mode!r}")
    raw_entries = document.get("instance_types", [])
    if not isinstance(raw_entries, list):
        raise CatalogueError(f"{file}: instance_types: must be a list/array of tables")
    if mode == "replace" and not raw_entries:
        raise CatalogueError(
            f"{file}: instance_types: 'replace' mode needs at least one instance type"
        )
    entries: list[InstanceType] = []
    first_index: dict[str, int] = {}
    for index, raw in enumerate(raw_entries):
        entry = _parse_entry(file, index, raw)
        if entry.id in first_index:
            raise CatalogueError(
                f"{file}: instance_types[{index}].id: duplicate id {entry.id!r} "
                f"(also at instance_types[{first_index[entry.id]}])"
            )
        first_index[entry.id] = index
        entries.append(entry)
    return str(mode), entries


def _parse_entry(file: Path, index: int, raw: object) -> InstanceType:
    where = f"{file}: instance_types[{index}]"
    if not isinstance(raw, dict):
        raise CatalogueError(f"{where}: must be an object/table, got {type(raw).__name__}")
    for key in raw:
        if key not in _ENTRY_KEYS:
            raise CatalogueError(
                f"{where}.{key}: unknown field; allowed: {', '.join(sorted(_ENTRY_KEYS))}"
            )

    def fail(field: str, message: str) -> CatalogueError:
        return CatalogueError(f"{where}.{field}: {message}")

    def required(field: str) -> Any:
        if field not in raw:
            raise fail(field, "required field is missing")
        return raw[field]

    instance_id = required("id")
    if not isinstance(instance_id, str):
        raise fail("id", f"must be a string, got {_json_type(instance_id)}")
    memory = _integer(required("memory_limit_mib"), "memory_limit_mib", fail)
    millicpu = _integer(required("millicpu_limit"), "millicpu_limit", fail)
    gpu_count = _integer(raw.get("gpu_count", 0), "gpu_count", fail)
    gpu_type = raw.get("gpu_type")
    if gpu_type is not None and not isinstance(gpu_type, str):
        raise fail("gpu_type", f"must be a string or null, got {_json_type(gpu_type)}")
    gpu_memory_raw = raw.get("gpu_memory_limit_mib")
    gpu_memory = (
        None if gpu_memory_raw is None else _integer(gpu_memory_raw, "gpu_memory_limit_mib", fail)
    )
    price = raw.get("price_per_minute", 0.0)
    if isinstance(price, bool) or not isinstance(price, int | float):
        raise fail("price_per_minute", f"must be a number, got {_json_type(price)}")
    try:
        price = float(price)
    except OverflowError:
        raise fail("price_per_minute", f"is out of range: {price}") from None
    name = raw.get("name")
    if name is not None and not isinstance(name, str):
        raise fail("name", f"must be a string, got {_json_type(name)}")
    if name is None:
        name = describe_instance_type(millicpu, memory, gpu_count, gpu_type)

    problem = _field_problem(
        id=instance_id,
        name=name,
        memory_limit_mib=memory,
        millicpu_limit=millicpu,
        gpu_count=gpu_count,
        gpu_type=gpu_type,
        gpu_memory_limit_mib=gpu_memory,
        price_per_minute=price,
    )
    if problem is not None:
        raise fail(*problem)
    return InstanceType(
        id=instance_id,
        name=name,
        memory_limit_mib=memory,
        millicpu_limit=millicpu,
        gpu_count=gpu_count,
        gpu_type=gpu_type,
        gpu_memory_limit_mib=gpu_memory,
        price_per_minute=price,
    )


def _integer(value: object, field: str, fail: Callable[[str, str], CatalogueError]) -> int:
    # bool is an int subclass in Python; `true` is never a sensible figure here.
    if isinstance(value, bool) or not isinstance(value, int):
        raise fail(field, f"must be an integer, got {_json_type(value)}")
    return value


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int | float | str):
        return f"{type(value).__name__} {value!r}"
    return {"dict": "object", "list": "array"}.get(type(value).__name__, type(value).__name__)
