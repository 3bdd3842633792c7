"""What a wizsock sdist and wheel must carry, and their metadata (run by scripts/release-check).

    python scripts/release-contents.py VERSION SDIST WHEEL

Exits non-zero naming each thing missing or wrong; the last line sums up what was checked.
Needs trove-classifiers (the list PyPI accepts).
"""
import email.parser
import fnmatch
import sys
import tarfile
import zipfile

from trove_classifiers import classifiers as KNOWN_CLASSIFIERS

# In both archives, under wizsock/: what the package needs at run time and for type checkers.
PACKAGE_FILES = ["__init__.py", "_version.py", "cli.py", "framer.py", "_framer_py.py", "_framer.pyi",
                 "py.typed", "pytest_plugin.py", "demo.py", "emulator/__init__.py",
                 "emulator/default_world.json", "protocol/__init__.py", "engine/__init__.py"]
SDIST_FILES = ["PKG-INFO", "pyproject.toml", "setup.py", "LICENSE", "README.md", "CHANGELOG.md",
               "wizsock/_framer.pyx"]
ENTRY_POINTS = {"console_scripts": "wizsock = wizsock.cli:main",
                "pytest11": "wizsock = wizsock.pytest_plugin"}


def check(version, sdist, wheel):
    problems = []

    with tarfile.open(sdist) as tar:
        top = f"wizsock-{version}/"
        names = {n[len(top):] for n in tar.getnames() if n.startswith(top)}
        pkg_info = tar.extractfile(top + "PKG-INFO").read().decode() if "PKG-INFO" in names else ""
    for name in SDIST_FILES + ["wizsock/" + f for f in PACKAGE_FILES]:
        if name not in names:
            problems.append(f"sdist: {name} missing")
    for name in names:
        if name.endswith((".so", ".pyc")) or name.startswith((".venv/", "build/", "tests/vendor/")):
            problems.append(f"sdist: {name} should not be there")

    with zipfile.ZipFile(wheel) as whl:
        wnames = set(whl.namelist())
        info = f"wizsock-{version}.dist-info/"
        metadata = whl.read(info + "METADATA").decode() if info + "METADATA" in wnames else ""
        entry_points = whl.read(info + "entry_points.txt").decode() if info + "entry_points.txt" in wnames else ""
    for name in ["wizsock/" + f for f in PACKAGE_FILES] + [info + "licenses/LICENSE"]:
        if name not in wnames:
            problems.append(f"wheel: {name} missing")
    if not fnmatch.filter(wnames, "wizsock/_framer.cpython-*.so"):
        problems.append("wheel: the compiled framer (wizsock/_framer.cpython-*.so) missing")
    for name in wnames:
        if name.endswith((".c", ".pyc")) or name.startswith(("tests/", "bench/", "fuzz/")):
            problems.append(f"wheel: {name} should not be there")
    sections = {}
    section = None
    for line in entry_points.splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line.strip("[]")
        elif line:
            sections.setdefault(section, set()).add(" ".join(line.split()))
    for group, entry in ENTRY_POINTS.items():
        if entry not in sections.get(group, set()):
            problems.append(f"wheel: entry point [{group}] {entry} missing")

    for origin, text in (("sdist PKG-INFO", pkg_info), ("wheel METADATA", metadata)):
        meta = email.parser.Parser().parsestr(text)
        want = {"Name": "wizsock", "Version": version, "License-Expression": "MIT",
                "License-File": "LICENSE", "Requires-Python": ">=3.10",
                "Description-Content-Type": "text/markdown"}
        for field, value in want.items():
            if meta.get(field) != value:
                problems.append(f"{origin}: {field} is {meta.get(field)!r}, want {value!r}")
        for field in ("Summary", "Author", "Keywords", "Project-URL"):
            if not meta.get(field):
                problems.append(f"{origin}: no {field}")
        classifiers = meta.get_all("Classifier") or []
        if not classifiers:
            problems.append(f"{origin}: no classifiers")
        for classifier in classifiers:
            if classifier not in KNOWN_CLASSIFIERS:
                problems.append(f"{origin}: unknown classifier {classifier!r}")
        if "# wizsock" not in (meta.get_payload() or ""):
            problems.append(f"{origin}: the long description is not README.md")
    return problems, len(names), len(wnames)


def main(argv):
    version, sdist, wheel = argv
    problems, n_sdist, n_wheel = check(version, sdist, wheel)
    for problem in problems:
        print(problem)
    if problems:
        return 1
    print(f"sdist {n_sdist} files, wheel {n_wheel} files: package files, compiled framer, stub, "
          "py.typed, world file, entry points, license and metadata present")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
