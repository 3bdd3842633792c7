#!/usr/bin/env python3
"""The README's first command: install wizsock into .venv and run its demo.

    python3 scripts/quickstart.py [demo options, e.g. --baud 921600]

Works with any Python >= 3.10 -- a distribution's /usr/bin/python3 (whose
site-packages PEP 668 keeps for the distribution: nothing is installed there),
pyenv's or conda's -- as root or as an ordinary user.  It makes (or reuses) the
virtual environment .venv beside scripts/, installs the checkout with its `demo`
extra into it, says once if the compiled framer could not be built, and runs
`wizsock demo` on the built-in emulated WizFi360.  scripts/front-door checks in CI
that the README's command, as written there, ends with the demo's answer.
"""
import os
import subprocess
import sys

MIN_PYTHON = (3, 10)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV = os.path.join(ROOT, ".venv")
PYTHON = os.path.join(VENV, "bin", "python")


def say(message):
    print(f"quickstart: {message}", flush=True)


def fail(message):
    print(f"quickstart: {message}", file=sys.stderr, flush=True)
    return 1


def venv_usable():
    # A .venv left by a venv whose ensurepip was missing has a python but no pip.
    if not os.path.exists(PYTHON):
        return False
    probe = subprocess.run([PYTHON, "-c", "import sys, pip; assert sys.version_info >= %r" % (MIN_PYTHON,)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return probe.returncode == 0


def main(demo_args):
    if sys.version_info < MIN_PYTHON:
        return fail(f"wizsock needs Python >= {'.'.join(map(str, MIN_PYTHON))}; "
                    f"{sys.executable} is {sys.version.split()[0]}")
    if venv_usable():
        say(f"using the virtual environment {VENV}")
    else:
        say(f"making a virtual environment in {VENV} (the system's Python stays untouched)")
        if subprocess.run([sys.executable, "-m", "venv", VENV]).returncode != 0 or not venv_usable():
            return fail("could not make the virtual environment: on Debian/Ubuntu install the venv "
                        f"module (apt-get install python3-venv, or python{sys.version_info[0]}."
                        f"{sys.version_info[1]}-venv) and run this again")
    say("installing wizsock and the demo's packages into it (about a minute the first time) ...")
    install = [PYTHON, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", ROOT + "[demo]"]
    if subprocess.run(install).returncode != 0:
        return fail("pip could not install wizsock (its message is above)")
    # -I: the installed wizsock, not the checkout's (the current directory) without its build
    framer = subprocess.run([PYTHON, "-I", "-c", "import wizsock.framer as f; print(f.COMPILED)"],
                            stdout=subprocess.PIPE, text=True)
    if framer.stdout.strip() != "True":
        say("note: the compiled framer was not built (it needs a C compiler and the Python headers: "
            "apt-get install gcc python3-dev, then run this again); wizsock runs on its pure-Python "
            "framer: the same behaviour, slower parsing")
    say("running `wizsock demo`\n")
    code = subprocess.run([os.path.join(VENV, "bin", "wizsock"), "demo", *demo_args]).returncode
    if code == 0:
        print(f"\nwizsock is installed in {VENV}: `. {os.path.relpath(VENV)}/bin/activate`, "
              "then `wizsock --help`.")
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
