"""Checks on a chain's shape: one entrypoint, known dependencies, no cycles, unique names."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from chainyard.domain.errors import Invalid


def check_chain_graph(
    dependencies: Mapping[str, Sequence[str]],
    entrypoints: Sequence[str],
    names_in_order: Sequence[str],
) -> list[str]:
    """Validates the graph and returns the chainlet names in dependency order (dependencies first).

    `dependencies` maps each chainlet name to the names it calls; `names_in_order` is the manifest's
    order, used to find duplicates (a mapping cannot hold them).
    """
    seen: set[str] = set()
    for name in names_in_order:
        if name in seen:
            raise Invalid(
                f"chainlet name '{name}' appears more than once", code="DUPLICATE_CHAINLET"
            )
        seen.add(name)
    if not names_in_order:
        raise Invalid("a chain needs at least one chainlet", code="INVALID_MANIFEST")
    if len(entrypoints) == 0:
        raise Invalid("the chain has no entrypoint", code="NO_ENTRYPOINT")
    if len(entrypoints) > 1:
        listed = ", ".join(sorted(entrypoints))
        raise Invalid(
            f"the chain has more than one entrypoint: {listed}", code="MULTIPLE_ENTRYPOINTS"
        )
    if entrypoints[0] not in seen:
        raise Invalid(
            f"entrypoint '{entrypoints[0]}' is not one of the chainlets", code="UNKNOWN_ENTRYPOINT"
        )
    for name, deps in dependencies.items():
        for dep in deps:
            if dep not in seen:
                raise Invalid(
                    f"chainlet '{name}' depends on unknown chainlet '{dep}'",
                    code="UNKNOWN_DEPENDENCY",
                )
            if dep == entrypoints[0]:
                raise Invalid(
                    f"chainlet '{name}' depends on the entrypoint '{dep}'",
                    code="INVALID_DEPENDENCY",
                )
    return _topological_order(dependencies, names_in_order)


def _topological_order(
    dependencies: Mapping[str, Sequence[str]], names_in_order: Sequence[str]
) -> list[str]:
    order: list[str] = []
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            cycle = " -> ".join([*path[path.index(name) :], name])
            raise Invalid(f"dependency cycle: {cycle}", code="DEPENDENCY_CYCLE")
        state[name] = 1
        for dep in dependencies.get(name, ()):
            visit(dep, [*path, name])
        state[name] = 2
        order.append(name)

    for name in names_in_order:
        visit(name, [])
    return order
