"""No import circle at run time in wizsock/ (issue 18).

Every import in a module counts -- at module level and inside functions, since a function's
import runs when it is called -- except those under ``if TYPE_CHECKING:``, which never run.
A circle makes a module's names depend on which side was imported first; the fix is a
module of its own for what both sides share, not a deferred import."""
from __future__ import annotations

import ast
import pathlib
from typing import Dict, Iterator, List, Optional, Set

import wizsock

PKG = pathlib.Path(wizsock.__file__).parent


def _module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """The tree's nodes, skipping the bodies of ``if TYPE_CHECKING:`` blocks."""
    stack: List[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and ast.unparse(child.test) in (
                    "TYPE_CHECKING", "typing.TYPE_CHECKING"):
                stack.extend(child.orelse)
            else:
                stack.append(child)


def imports(source: str, module: str, is_package: bool, known: Set[str]) -> Set[str]:
    """The wizsock modules that ``module`` imports at run time."""
    out: Set[str] = set()
    package = module if is_package else module.rpartition(".")[0]

    def add(name: str) -> bool:
        # the module itself: its parent packages are initialised before any of their
        # modules runs, so an edge to one of them is no circle of its own
        if name in known:
            out.add(name)
            return True
        return False

    for node in _runtime_nodes(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            # `from pkg import submodule` imports the submodule; `from pkg import name`, pkg
            if not all([add(f"{target}.{alias.name}") for alias in node.names]):
                add(target)
    out.discard(module)
    return out


def graph() -> Dict[str, Set[str]]:
    paths = sorted(PKG.rglob("*.py"))
    known = {_module_name(p) for p in paths}
    return {_module_name(p): imports(p.read_text(), _module_name(p), p.name == "__init__.py",
                                     known) for p in paths}


def cycles(edges: Dict[str, Set[str]]) -> List[List[str]]:
    """One circle for each strongly connected component of more than one module (Tarjan)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on: Set[str] = set()
    found: List[List[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(_path(edges, set(comp)))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def _path(edges: Dict[str, Set[str]], comp: Set[str]) -> List[str]:
    """A concrete circle through the component's first module, for the message."""
    start = min(comp)
    prev: Dict[str, Optional[str]] = {start: None}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(edges[v] & comp):
            if w == start:
                out = [v]
                while prev[out[-1]] is not None:
                    out.append(prev[out[-1]])  # type: ignore[arg-type]
                return list(reversed(out)) + [start]
            if w not in prev:
                prev[w] = v
                queue.append(w)
    return sorted(comp)


def test_the_walk_sees_a_circle_and_skips_type_checking():
    known = {"p", "p.a", "p.b", "p.c"}
    a = imports("from . import b\n", "p.a", False, known)
    b = imports("def f():\n    from .a import x\n", "p.b", False, known)
    c = imports("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import x\n"
                "else:\n    import p.b\n", "p.c", False, known)
    assert (a, b, c) == ({"p.b"}, {"p.a"}, {"p.b"})
    assert cycles({"p": set(), "p.a": a, "p.b": b, "p.c": c}) == [["p.a", "p.b", "p.a"]]


def test_no_runtime_import_circle():
    found = cycles(graph())
    assert not found, "runtime import circles:\n" + "\n".join(" -> ".join(c) for c in found)
