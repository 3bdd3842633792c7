"""The session is sans-I/O: its tests run without trio or the emulator, and it is typed."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]

# import the session and every test module of this directory in a fresh interpreter
_PROBE = r"""
import importlib.util, pathlib, sys
sys.path.insert(0, sys.argv[1])
import wizsock.engine.session
for path in sorted(pathlib.Path(sys.argv[2]).glob("*.py")):
    spec = importlib.util.spec_from_file_location("probe_" + path.stem, path)
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
heavy = sorted(m for m in sys.modules
               if m == "trio" or m.startswith(("trio.", "wizsock.emulator")))
print(" ".join(heavy))
"""


def test_session_and_its_tests_import_neither_trio_nor_the_emulator():
    out = subprocess.run([sys.executable, "-c", _PROBE, str(ROOT / "tests"), str(HERE)],
                         capture_output=True, text=True, timeout=60, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT / "tests")})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"loaded: {out.stdout.strip()}"


def test_session_and_its_driver_are_strictly_typed():
    # (--follow-imports=silent: these files are held to --strict, not what they import)
    out = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent",
                          "wizsock/engine/session.py", "wizsock/engine/core.py",
                          "tests/engine/session/kit.py"],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
