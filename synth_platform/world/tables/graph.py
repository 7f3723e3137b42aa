"""Dependency order (columns within a row, tables by foreign key) with cycles reported by name."""

from __future__ import annotations

from collections.abc import Iterable, Mapping


class CycleError(ValueError):
    def __init__(self, cycle: list[str]):
        self.cycle = cycle
        super().__init__(" -> ".join(cycle))


def dependency_order(deps: Mapping[str, Iterable[str]]) -> list[str]:
    """Every node after the nodes it depends on; declaration order is kept where the dependencies allow.
    Dependencies outside `deps` are ignored. A cycle raises CycleError naming it (a -> b -> a)."""
    order: list[str] = []
    state: dict[str, str] = {}  # "visiting" | "done"

    def visit(node: str, path: list[str]) -> None:
        if state.get(node) == "done":
            return
        if state.get(node) == "visiting":
            raise CycleError([*path[path.index(node) :], node])
        state[node] = "visiting"
        for dep in deps[node]:
            if dep in deps:
                visit(dep, [*path, node])
        state[node] = "done"
        order.append(node)

    for node in deps:
        visit(node, [])
    return order


def closure(deps: Mapping[str, Iterable[str]], wanted: Iterable[str]) -> set[str]:
    """The wanted nodes and everything they depend on."""
    seen: set[str] = set()
    stack = list(wanted)
    while stack:
        node = stack.pop()
        if node not in seen:
            seen.add(node)
            stack.extend(d for d in deps[node] if d in deps)
    return seen
