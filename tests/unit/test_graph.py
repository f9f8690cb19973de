"""Checks on a chain's shape."""

from __future__ import annotations

import pytest

from chainyard.domain import graph
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


def test_too_many_chainlets_is_a_clear_refusal() -> None:
    names = [f"C{i}" for i in range(graph.MAX_CHAINLETS + 1)]
    deps = {name: [names[i + 1]] if i + 1 < len(names) else [] for i, name in enumerate(names)}
    with pytest.raises(Invalid) as info:
        check_chain_graph(deps, ["C0"], names)
    assert info.value.code == "TOO_MANY_CHAINLETS"
    assert str(graph.MAX_CHAINLETS) in info.value.message
    # At the limit, the deepest chain there can be is fine.
    order = check_chain_graph(
        {n: d for n, d in deps.items() if n != names[-1]} | {names[-2]: []}, ["C0"], names[:-1]
    )
    assert order == list(reversed(names[:-1]))


def test_deep_chains_need_no_recursion(monkeypatch: pytest.MonkeyPatch) -> None:
    # Far deeper than Python's recursion limit, were the limit on chainlets ever raised.
    monkeypatch.setattr(graph, "MAX_CHAINLETS", 50_000)
    names = [f"C{i}" for i in range(20_000)]
    deps = {name: [names[i + 1]] if i + 1 < len(names) else [] for i, name in enumerate(names)}
    assert check_chain_graph(deps, ["C0"], names) == list(reversed(names))
    deps[names[-1]] = [names[1]]
    with pytest.raises(Invalid) as info:
        check_chain_graph(deps, ["C0"], names)
    assert info.value.code == "DEPENDENCY_CYCLE"
    assert info.value.message.endswith(f"{names[-1]} -> C1")
