"""wizsock's public names: what a checker sees is what runs.

``wizsock/__init__.py`` re-exports its names explicitly under ``TYPE_CHECKING`` (for
checkers) and loads the same names lazily at run time (so ``import wizsock`` stays cheap);
these tests keep the two in step and show a checker the real signatures (issue 18)."""
import ast
import inspect
import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

from conftest import require

import wizsock

PKG = pathlib.Path(wizsock.__file__).parent
ROOT = PKG.parent


def _checker_names():
    """Names bound under ``if TYPE_CHECKING:`` in wizsock/__init__.py."""
    tree = ast.parse((PKG / "__init__.py").read_text())
    names = set()
    for node in tree.body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for stmt in node.body:
                if isinstance(stmt, ast.ImportFrom):
                    names.update(a.asname for a in stmt.names if a.asname)
                elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                    names.add(stmt.target.id)
    return names


def test_checker_view_runtime_view_and_all_agree():
    assert _checker_names() == set(wizsock.__all__)
    for name in wizsock.__all__:
        assert getattr(wizsock, name) is not None, name
    assert set(wizsock.__all__) <= set(dir(wizsock))


def test_names_are_the_objects_they_stand_for():
    from wizsock import engine, errors, patch
    from wizsock.emulator.core import Emulator
    assert wizsock.open_module is engine.open_module and wizsock.Module is engine.Module
    assert wizsock.AsyncModule is engine.AsyncModule and wizsock.Emulator is Emulator
    assert wizsock.errors is errors and wizsock.patch is patch and callable(wizsock.patch)
    assert wizsock.unpatch is patch.unpatch and wizsock.patched is patch.patched


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="typo"):
        wizsock.typo  # noqa: B018


def test_import_stays_cheap():
    """The engine (trio), the facade and the emulator load on first use, not on import."""
    code = ("import sys, wizsock; heavy = [m for m in ('trio', 'wizsock.engine.core', "
            "'wizsock.socket', 'wizsock.emulator.core') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_engine_options_are_the_engines_keyword_parameters():
    from wizsock.engine.core import Engine
    from wizsock.engine.options import EngineOptions
    params = inspect.signature(Engine.__init__).parameters.values()
    keyword = {p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY}
    assert set(EngineOptions.__annotations__) == keyword


def test_a_checker_sees_real_signatures_and_refuses_a_typo(tmp_path, monkeypatch):
    try:
        from mypy import api
    except ImportError:
        api = None
    require(api is not None, "mypy (the test extra)")
    monkeypatch.setenv("MYPYPATH", str(ROOT))   # the editable install's hook is invisible to mypy
    src = tmp_path / "uses_wizsock.py"
    src.write_text(textwrap.dedent("""\
        import wizsock

        reveal_type(wizsock.open_module)                              # line 3
        reveal_type(wizsock.Module)                                   # line 4
        wizsock.typo                                                  # line 5
        wizsock.Module("wizemu://", rx_limit="big")                   # line 6
        wizsock.open_module("wizemu://", hunt_bauds=False)            # line 7
        reveal_type(wizsock.patch("wizemu://"))                       # line 8
    """))
    out, err, status = api.run(["--strict", "--no-incremental", "--cache-dir", os.devnull,
                                "--follow-imports", "silent",
                                "--config-file", str(ROOT / "pyproject.toml"), str(src)])
    lines = {int(l.split(":")[1]): l for l in out.splitlines()
             if "uses_wizsock.py" in l and ("error:" in l or "Revealed type" in l)}
    assert status == 1, out + err
    assert ("def (port: str | serial.serialutil.SerialBase, baudrate: int =, *, "
            "timeouts: dict[str, float] | None =, hunt_baud: bool =") in lines[3], out
    assert "-> contextlib._AsyncGeneratorContextManager[wizsock.engine.api.AsyncModule" in lines[3]
    assert "'rx_limit'?: int" in lines[4] and "-> wizsock.engine.sync.Module" in lines[4], out
    assert 'Module has no attribute "typo"' in lines[5], out
    assert "error" in lines[6] and '"rx_limit"' in lines[6], out
    assert "error" in lines[7] and "hunt_bauds" in lines[7], out
    assert 'Revealed type is "wizsock.engine.sync.Module"' in lines[8], out
    assert sorted(lines) == [3, 4, 5, 6, 7, 8], out
