"""The README's first command is one marked block, and scripts/front-door runs that block."""
import pathlib
import shlex
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
MARKER = "<!-- first-command"


def readme_block(text):
    """The fenced block after the marker, read independently of front-door's awk."""
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith(MARKER)]
    assert len(starts) == 1, f"{len(starts)} markers"
    i = starts[0] + 1
    while not lines[i].startswith("```"):
        i += 1
    end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
    return "\n".join(lines[i + 1:end])


def front_door_print(root):
    return subprocess.run(["bash", str(root / "scripts" / "front-door"), "--print"], capture_output=True,
                          text=True, timeout=60)


def test_front_door_runs_the_readme_block_as_written():
    block = readme_block((ROOT / "README.md").read_text())
    printed = front_door_print(ROOT)
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout == block + "\n"


def test_the_first_command_installs_into_a_venv_not_the_system():
    # A bare `pip install` on a distribution's Python fails (PEP 668); the command runs the
    # quickstart, which makes .venv, with whatever `python3` is first on the PATH.
    words = shlex.split(readme_block((ROOT / "README.md").read_text()))
    assert words[:1] == ["python3"] and "pip" not in words
    assert (ROOT / words[1]).is_file()


NOT_ONE_COMMAND = [
    ("# wizsock\n\n```\npython3 x.py\n```\n", "0 first-command markers"),
    ("<!-- first-command -->\n```\na\n```\n<!-- first-command -->\n```\nb\n```\n", "2 first-command markers"),
    ("<!-- first-command -->\n```\n```\n", "block is empty"),
]


def checkout_with_readme(tmp_path, readme):
    (tmp_path / "scripts").mkdir()
    for name in ("front-door", "stock-check", "sandbox.sh"):
        shutil.copy(ROOT / "scripts" / name, tmp_path / "scripts" / name)
    (tmp_path / "README.md").write_text(readme)
    return tmp_path


@pytest.mark.parametrize("readme, problem", NOT_ONE_COMMAND)
def test_front_door_refuses_a_readme_without_one_command(tmp_path, readme, problem):
    printed = front_door_print(checkout_with_readme(tmp_path, readme))
    assert printed.returncode != 0
    assert problem in printed.stderr


@pytest.mark.parametrize("readme, problem", NOT_ONE_COMMAND)
def test_stock_check_takes_the_command_from_front_door(tmp_path, readme, problem):
    # stock-check runs what `front-door --print` extracts, so it refuses the same READMEs,
    # and before it makes (or even looks for) its Debian root.
    cache = tmp_path / "cache"
    checked = subprocess.run(["bash", str(checkout_with_readme(tmp_path, readme) / "scripts" / "stock-check")],
                             capture_output=True, text=True, timeout=60,
                             env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "WIZSOCK_STOCK_CACHE": str(cache)})
    assert checked.returncode != 0
    assert problem in checked.stderr
    assert not cache.exists()
