"""wizsock/_framer.pyi is what a checker knows of the framer (it cannot read the compiled
module): it must stay true for the compiled framer (mypy's stubtest) and for the twin."""
import os
import subprocess
import sys

from framer.conftest import PURE_MODULE, compiled_module

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def test_stub_matches_the_compiled_framer():
    compiled_module()
    env = dict(os.environ, MYPYPATH=ROOT)
    run = subprocess.run([sys.executable, "-m", "mypy.stubtest", "wizsock._framer", "--allowlist",
                          os.path.join(HERE, "stubtest-allowlist.txt")],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr


def test_the_twin_has_the_compiled_names_and_fields():
    compiled = compiled_module()
    assert sorted(PURE_MODULE.__all__) == sorted(compiled.__all__)
    for name in compiled.__all__:
        c, t = getattr(compiled, name), getattr(PURE_MODULE, name)
        if hasattr(c, "_fields"):
            assert t._fields == c._fields, name
    for attr in ("max_ipd", "max_line", "raw", "raw_on_prompt", "reset", "feed"):
        assert hasattr(PURE_MODULE.Framer(), attr), attr
