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


@pytest.mark.parametrize("readme, problem", [
    ("# wizsock\n\n```\npython3 x.py\n```\n", "0 first-command markers"),
    ("<!-- first-command -->\n```\na\n```\n<!-- first-command -->\n```\nb\n```\n", "2 first-command markers"),
    ("<!-- first-command -->\n```\n```\n", "block is empty"),
])
def test_front_door_refuses_a_readme_without_one_command(tmp_path, readme, problem):
    (tmp_path / "scripts").mkdir()
    for name in ("front-door", "sandbox.sh"):
        shutil.copy(ROOT / "scripts" / name, tmp_path / "scripts" / name)
    (tmp_path / "README.md").write_text(readme)
    printed = front_door_print(tmp_path)
    assert printed.returncode != 0
    assert problem in printed.stderr
