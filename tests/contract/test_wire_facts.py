"""The stored wire facts are what Baseten's specs say, and are only facts (no prose)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.contract import wire_facts


def _keys(node: Any, *, names: bool = False) -> set[str]:
    """Keyword keys of a document (not the names that properties, paths ... carry)."""
    found: set[str] = set()
    if isinstance(node, list):
        for item in node:
            found |= _keys(item)
    elif isinstance(node, dict):
        for key, value in node.items():
            if not names:
                found.add(key)
            found |= _keys(value, names=not names and key in wire_facts.NAME_MAPS)
    return found


@pytest.mark.parametrize("source", wire_facts.SOURCES)
def test_stored_facts_are_complete_and_hold_no_prose(source: str) -> None:
    facts = wire_facts.load(source)
    assert not _keys(facts) & wire_facts.PROSE
    assert len(facts[wire_facts.SOURCE_KEY]["sha256"]) == 64
    assert facts["paths"], "no paths: the facts lost their content"
    if source == wire_facts.MANAGEMENT:
        assert (
            "/v1/chains/{chain_id}/environments/{env_name}/chainlet_settings/instance_types/update"
            in facts["paths"]
        )
        assert "ChainV1" in facts["components"]["schemas"]
    else:
        assert "/environments/{env_name}/run_remote" in facts["paths"]


def test_prose_goes_but_a_property_called_description_stays() -> None:
    doc = {
        "description": "prose",
        "properties": {
            "description": {"type": "string", "description": "prose", "maxLength": 3},
            "title": {"type": "string", "title": "T"},
        },
        "required": ["description"],
    }
    assert wire_facts.strip_prose(doc) == {
        "properties": {
            "description": {"type": "string", "maxLength": 3},
            "title": {"type": "string"},
        },
        "required": ["description"],
    }


def test_the_facts_are_fresh_or_the_check_says_stale(tmp_path: Path) -> None:
    """Against ../shared/reference when this clone has it; otherwise against a reference made
    from the stored facts themselves, changed by one field, which the check must call stale."""
    reference = wire_facts.reference_dir()
    if reference is not None:
        assert wire_facts.stale(reference) == [], "run: python -m tests.contract.wire_facts"
    copy = tmp_path / "reference"
    copy.mkdir()
    for name in wire_facts.SOURCES:
        if reference is not None:
            shutil.copy(reference / name, copy / name)
        else:
            facts = wire_facts.load(name)
            facts.pop(wire_facts.SOURCE_KEY)
            (copy / name).write_text(json.dumps(facts))
    changed = json.loads((copy / wire_facts.MANAGEMENT).read_text())
    changed["components"]["schemas"]["ChainV1"]["required"].append("new_field")
    (copy / wire_facts.MANAGEMENT).write_text(json.dumps(changed))
    assert wire_facts.MANAGEMENT in wire_facts.stale(copy)
