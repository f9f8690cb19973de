"""Checks on a chain's shape."""

from __future__ import annotations

import pytest

from chainyard.domain.errors import Invalid
from chainyard.domain.graph import check_chain_graph


def test_returns_dependencies_first() -> None:
    order = check_chain_graph(
        {"Entry": ["A", "B"], "A": ["B"], "B": []}, ["Entry"], ["Entry", "A", "B"]
    )
    assert order == ["B", "A", "Entry"]


def test_single_chainlet() -> None:
    assert check_chain_graph({"Only": []}, ["Only"], ["Only"]) == ["Only"]


def test_no_chainlets() -> None:
    with pytest.raises(Invalid, match="at least one chainlet"):
        check_chain_graph({}, ["E"], [])


def test_no_entrypoint() -> None:
    with pytest.raises(Invalid, match="no entrypoint") as info:
        check_chain_graph({"A": []}, [], ["A"])
    assert info.value.code == "NO_ENTRYPOINT"


def test_two_entrypoints_are_named() -> None:
    with pytest.raises(Invalid) as info:
        check_chain_graph({"A": [], "B": []}, ["B", "A"], ["A", "B"])
    assert info.value.code == "MULTIPLE_ENTRYPOINTS"
    assert "A, B" in info.value.message


def test_entrypoint_must_be_a_chainlet() -> None:
    with pytest.raises(Invalid, match="'Ghost'") as info:
        check_chain_graph({"A": []}, ["Ghost"], ["A"])
    assert info.value.code == "UNKNOWN_ENTRYPOINT"


def test_unknown_dependency_is_named() -> None:
    with pytest.raises(Invalid) as info:
        check_chain_graph({"E": ["Missing"]}, ["E"], ["E"])
    assert info.value.code == "UNKNOWN_DEPENDENCY"
    assert "'E'" in info.value.message and "'Missing'" in info.value.message


def test_duplicate_names() -> None:
    with pytest.raises(Invalid, match="'A' appears more than once") as info:
        check_chain_graph({"E": ["A"], "A": []}, ["E"], ["E", "A", "A"])
    assert info.value.code == "DUPLICATE_CHAINLET"


def test_depending_on_the_entrypoint_is_refused() -> None:
    with pytest.raises(Invalid) as info:
        check_chain_graph({"E": ["A"], "A": ["E"]}, ["E"], ["E", "A"])
    assert info.value.code == "INVALID_DEPENDENCY"


def test_cycle_message_names_the_cycle() -> None:
    with pytest.raises(Invalid) as info:
        check_chain_graph(
            {"E": ["A"], "A": ["B"], "B": ["C"], "C": ["A"]}, ["E"], ["E", "A", "B", "C"]
        )
    assert info.value.code == "DEPENDENCY_CYCLE"
    assert "A -> B -> C -> A" in info.value.message
    assert "E" not in info.value.message.split(":", 1)[1]


def test_self_dependency_is_a_cycle() -> None:
    with pytest.raises(Invalid) as info:
        check_chain_graph({"E": ["A"], "A": ["A"]}, ["E"], ["E", "A"])
    assert info.value.code == "DEPENDENCY_CYCLE"
    assert "A -> A" in info.value.message


def test_diamond_is_not_a_cycle() -> None:
    order = check_chain_graph(
        {"E": ["A", "B"], "A": ["C"], "B": ["C"], "C": []}, ["E"], ["E", "A", "B", "C"]
    )
    assert order.index("C") < order.index("A") < order.index("E")
    assert order.index("C") < order.index("B")
