"""The wire facts of Baseten's published specs, kept in the repository so that the contract tests
run from any clone.

`tests/contract/wire/*.wire.json` are Baseten's OpenAPI documents (the copies in
`../shared/reference/`) with the prose taken out: paths, methods, parameters, request and response
schemas, fields, types, formats, enums, defaults, bounds and required-ness stay; descriptions,
summaries, titles, examples and code samples go. Each file records the SHA-256 of the document it
came from, so a changed reference is noticed (`test_wire_facts.py`).

Regenerate after the reference changes:

    .venv/bin/python -m tests.contract.wire_facts            # reads ../shared/reference/
    .venv/bin/python -m tests.contract.wire_facts --check    # exit 1 if the stored ones are stale
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

WIRE_DIR = Path(__file__).resolve().parent / "wire"
MANAGEMENT = "baseten-management-chains.openapi.json"
INFERENCE = "baseten-inference-chains.openapi.json"
SOURCES = (MANAGEMENT, INFERENCE)
SOURCE_KEY = "x-chainyard-source"

# Keys that only ever hold prose for people.
PROSE = frozenset(
    {"description", "summary", "title", "example", "examples", "x-codeSamples", "externalDocs"}
)
# Keys whose values map *names* (of properties, paths, media types ...) to nodes: a property that
# happens to be called "description" is a wire fact.
NAME_MAPS = frozenset(
    {
        "properties",
        "patternProperties",
        "paths",
        "schemas",
        "responses",
        "content",
        "variables",
        "headers",
        "securitySchemes",
        "parameters",
        "requestBodies",
        "$defs",
        "definitions",
    }
)


def strip_prose(node: Any, *, names: bool = False) -> Any:
    """`node` without its prose. With `names`, node's keys are names, none of them prose."""
    if isinstance(node, list):
        return [strip_prose(item) for item in node]
    if not isinstance(node, dict):
        return node
    kept: dict[str, Any] = {}
    for key, value in node.items():
        if names:
            kept[key] = strip_prose(value)
        elif key in PROSE:
            continue
        else:
            kept[key] = strip_prose(value, names=key in NAME_MAPS and isinstance(value, dict))
    return kept


def reference_dir() -> Path | None:
    """$CHAINYARD_REFERENCE_DIR, else shared/reference beside or inside the repository."""
    repo = Path(__file__).resolve().parents[2]
    candidates = [repo.parent / "shared" / "reference", repo / "shared" / "reference"]
    if env := os.environ.get("CHAINYARD_REFERENCE_DIR"):
        candidates.insert(0, Path(env))
    return next((c for c in candidates if (c / MANAGEMENT).is_file()), None)


def wire_path(source_name: str) -> Path:
    return WIRE_DIR / source_name.replace(".openapi.json", ".wire.json")


def facts_of(raw: bytes, source_name: str) -> dict[str, Any]:
    facts: dict[str, Any] = strip_prose(json.loads(raw))
    facts[SOURCE_KEY] = {"file": source_name, "sha256": hashlib.sha256(raw).hexdigest()}
    return facts


def render(facts: dict[str, Any]) -> str:
    return json.dumps(facts, indent=1, ensure_ascii=False) + "\n"


def load(source_name: str = MANAGEMENT) -> dict[str, Any]:
    """The stored wire facts of one of Baseten's specs (always present in the repository)."""
    loaded: dict[str, Any] = json.loads(wire_path(source_name).read_text(encoding="utf-8"))
    return loaded


def stale(reference: Path) -> list[str]:
    """Names of the stored files that differ from what `reference` gives."""
    return [
        name
        for name in SOURCES
        if not wire_path(name).is_file()
        or wire_path(name).read_text(encoding="utf-8")
        != render(facts_of((reference / name).read_bytes(), name))
    ]


def main(argv: list[str]) -> int:
    reference = reference_dir()
    if reference is None:
        print("no reference spec found (../shared/reference, or CHAINYARD_REFERENCE_DIR)")
        return 2
    if "--check" in argv:
        outdated = stale(reference)
        for name in outdated:
            print(f"stale: {wire_path(name)} (regenerate: python -m tests.contract.wire_facts)")
        return 1 if outdated else 0
    WIRE_DIR.mkdir(exist_ok=True)
    for name in SOURCES:
        wire_path(name).write_text(render(facts_of((reference / name).read_bytes(), name)))
        print(f"wrote {wire_path(name)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
