"""The version has one source, wizsock/_version.py, and `wizsock --version` prints it."""
import importlib.metadata
import pathlib
import re
import subprocess
import sys
import tomllib

import wizsock
import wizsock._version
import wizsock.framer

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_pyproject_reads_the_version_from_version_py():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"]
    assert "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "wizsock._version.__version__"}


def test_no_other_version_is_written_down():
    assignments = [str(p.relative_to(ROOT)) for p in (ROOT / "wizsock").rglob("*.py")
                   if re.search(r"^__version__\s*=", p.read_text(), re.M)]
    assert assignments == ["wizsock/_version.py"]
    assert wizsock.__version__ == wizsock._version.__version__
    assert re.fullmatch(r"\d+\.\d+\.\d+((a|b|rc)\d+)?(\.post\d+)?(\.dev\d+)?", wizsock.__version__)


def test_installed_metadata_agrees():
    # A stale install (the version changed since `pip install`) shows up here.
    assert importlib.metadata.version("wizsock") == wizsock.__version__


def test_cli_prints_the_version_and_the_framer():
    out = subprocess.run([sys.executable, "-m", "wizsock", "--version"], capture_output=True,
                         text=True, timeout=60, check=True).stdout
    framer = "compiled" if wizsock.framer.COMPILED else "pure-Python"
    python = ".".join(map(str, sys.version_info[:3]))
    assert out == f"wizsock {wizsock.__version__} ({framer} framer, Python {python})\n"


def test_changelog_has_a_section_for_this_version():
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert re.search(rf"^## {re.escape(wizsock.__version__)}\b", changelog, re.M)
