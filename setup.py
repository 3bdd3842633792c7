"""Builds the compiled framer; falls back to the pure-Python twin when it can't.

WIZSOCK_NO_EXTENSIONS=1 skips the build entirely (the aiohttp/yarl convention).
"""
import os
import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext


class OptionalBuildExt(build_ext):
    # A machine without a compiler must still get a working (pure-Python) install.
    def run(self):
        try:
            super().run()
        except Exception as exc:  # pragma: no cover - depends on the toolchain
            print(f"wizsock: compiled framer not built ({exc}); using the pure-Python framer",
                  file=sys.stderr)

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as exc:  # pragma: no cover
            print(f"wizsock: {ext.name} not built ({exc}); using the pure-Python framer",
                  file=sys.stderr)


def extensions():
    if os.environ.get("WIZSOCK_NO_EXTENSIONS"):
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:
        return []
    return cythonize(
        ["wizsock/_framer.pyx"],
        compiler_directives={"language_level": 3, "boundscheck": False, "wraparound": False,
                             "cdivision": True, "initializedcheck": False},
        quiet=True,
    )


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
