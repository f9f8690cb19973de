"""Checks on a chain's shape: one entrypoint, known dependencies, no cycles, unique names."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

from chainyard.domain.errors import Invalid

# Far above any chain we know of (truss's examples have a handful of chainlets), and low enough
# that a manifest cannot make one deployment into thousands of chainlets, each with its replicas.
MAX_CHAINLETS = 100


def check_chain_graph(
    dependencies: Mapping[str, Sequence[str]],
    entrypoints: Sequence[str],
    names_in_order: Sequence[str],
) -> list[str]:
    """Validates the graph and returns the chainlet names in dependency order (dependencies first).

    `dependencies` maps each chainlet name to the names it calls; `names_in_order` is the manifest's
    order, used to find duplicates (a mapping cannot hold them).
    """
    if len(names_in_order) > MAX_CHAINLETS:
        raise Invalid(
            f"a chain has at most {MAX_CHAINLETS} chainlets; this one has {len(names_in_order)}",
            code="TOO_MANY_CHAINLETS",
        )
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
    """Depth-first, dependencies first, with an explicit stack: a chain's depth is the client's
    choice, and Python's own stack would end in a RecursionError (a 500) long before ours."""
    order: list[str] = []
    done: set[str] = set()
    for root in names_in_order:
        if root in done:
            continue
        # The current path: each name with the iterator over its dependencies not yet visited.
        path: list[str] = [root]
        on_path: set[str] = {root}
        pending: list[Iterator[str]] = [iter(dependencies.get(root, ()))]
        while path:
            dep = next(pending[-1], None)
            if dep is None:
                name = path.pop()
                pending.pop()
                on_path.discard(name)
                done.add(name)
                order.append(name)
            elif dep in on_path:
                cycle = " -> ".join([*path[path.index(dep) :], dep])
                raise Invalid(f"dependency cycle: {cycle}", code="DEPENDENCY_CYCLE")
            elif dep not in done:
                path.append(dep)
                on_path.add(dep)
                pending.append(iter(dependencies.get(dep, ())))
    return order
