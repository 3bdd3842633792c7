"""No engine module reaches into another object's private members.

Every ``X._name`` (and ``getattr``/``setattr``/``hasattr`` of a ``"_name"``) in
wizsock/engine is on ``self``/``cls`` or an imported module; the engine's modules
talk through the public methods listed in docs/design.md 3e "Between engine
modules".  The facade files must not touch a private member of an engine class
either (their own ``_wiz_*`` socket state is theirs).
"""
from __future__ import annotations

import ast
import pathlib
from typing import Iterator, List, Set, Tuple

import pytest

import wizsock

PKG = pathlib.Path(wizsock.__file__).parent
ENGINE = sorted((PKG / "engine").glob("*.py"))
FACADE = [PKG / n for n in ("socket.py", "ssl.py", "trio.py", "run.py", "patch.py",
                            "socks.py", "pytest_plugin.py", "__init__.py")] + sorted(
    (PKG / "facade").glob("*.py")) + sorted((PKG / "tools").glob("*.py"))

#: (file name, "X._name") reaches that are justified; keep this a handful at most
ALLOWED: Set[Tuple[str, str]] = set()


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _module_names(tree: ast.AST) -> Set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.update(a.asname or a.name for a in node.names)
    return names


def _root(node: ast.expr) -> ast.expr:
    while isinstance(node, ast.Attribute):
        node = node.value
    return node


def reaches(source: str) -> Iterator[Tuple[int, str, str]]:
    """(line, text, private name) of every access to a private member of something other
    than ``self``, ``cls``, ``super()`` or an imported module (or a chain from one)."""
    tree = ast.parse(source)
    modules = _module_names(tree)

    def foreign(obj: ast.expr) -> bool:
        if isinstance(obj, ast.Name) and obj.id in ("self", "cls"):
            return False
        if isinstance(obj, ast.Call) and isinstance(obj.func, ast.Name) and obj.func.id == "super":
            return False
        root = _root(obj)
        return not (isinstance(root, ast.Name) and root.id in modules and
                    all(not _private(a.attr) for a in _chain(obj)))

    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr) and foreign(node.value):
            yield node.lineno, ast.unparse(node), node.attr
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id in ("getattr", "setattr", "hasattr", "delattr")
              and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant)
              and isinstance(node.args[1].value, str) and _private(node.args[1].value)
              and foreign(node.args[0])):
            yield node.lineno, ast.unparse(node), node.args[1].value


def _chain(node: ast.expr) -> List[ast.Attribute]:
    out = []
    while isinstance(node, ast.Attribute):
        out.append(node)
        node = node.value
    return out


def _engine_private_names() -> Set[str]:
    """Private methods and attributes the engine's classes define."""
    names = set()
    for path in ENGINE:
        for cls in ast.walk(ast.parse(path.read_text())):
            if not isinstance(cls, ast.ClassDef):
                continue
            for node in ast.walk(cls):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _private(node.name):
                    names.add(node.name)
                elif (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                      and node.value.id == "self" and _private(node.attr)
                      and isinstance(node.ctx, ast.Store)):
                    names.add(node.attr)
    return names


def test_the_check_sees_a_reach():
    found = list(reaches("import trio\n"
                         "def f(engine, self):\n"
                         "    engine._links[0] = self._x\n"
                         "    trio.lowlevel.checkpoint()\n"
                         "    setattr(link, '_opening', False)\n"
                         "    super()._real_close()\n"
                         "    self._e._cmd_lock\n"))
    assert sorted((line, name) for line, _, name in found) == [(3, "_links"), (5, "_opening"),
                                                        (7, "_cmd_lock")]


@pytest.mark.parametrize("path", ENGINE, ids=lambda p: p.name)
def test_engine_module_uses_only_public_members(path):
    bad = [f"{path.name}:{line}: {text}" for line, text, _ in reaches(path.read_text())
           if (path.name, text) not in ALLOWED]
    assert not bad, ("private members reached from outside their object (add or use a "
                     "public method; docs/design.md 3e):\n" + "\n".join(bad))


def test_facade_touches_no_engine_private_member():
    engine_private = _engine_private_names()
    assert {"_links", "_framer", "_exec"} <= engine_private    # the scan sees the classes
    bad = []
    for path in FACADE:
        if not path.exists():
            continue
        for line, text, name in reaches(path.read_text()):
            if name in engine_private and (path.name, text) not in ALLOWED:
                bad.append(f"{path.relative_to(PKG)}:{line}: {text}")
    assert not bad, "engine private members reached from the facade:\n" + "\n".join(bad)


#: facade reaches that are justified: a socket method copying the state of another
#: socket of its own class (``old``/``new`` in dup, accept and ssl wrapping), and trio's
#: socket class, which wizsock.trio subclasses (pinned: tests/facade/test_trio_pin.py)
FACADE_SAME_CLASS = {"socket.py": ("old.", "new.")}
FACADE_ALLOWED = {("trio.py", "_trio._socket._SocketType")}


@pytest.mark.parametrize("path", FACADE, ids=lambda p: p.name)
def test_facade_module_uses_only_public_members(path):
    """Facade modules talk to each other (socket, ssl, trio, facade/) through public names."""
    own = FACADE_SAME_CLASS.get(path.name, ())
    bad = [f"{path.name}:{line}: {text}" for line, text, _ in reaches(path.read_text())
           if not text.startswith(own or ("\0",)) and (path.name, text) not in FACADE_ALLOWED]
    assert not bad, "private members reached from outside their object:\n" + "\n".join(bad)
