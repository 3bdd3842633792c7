"""Builds the compiled framer; falls back to the pure-Python twin when it can't.

WIZSOCK_NO_EXTENSIONS=1 skips the build entirely (the aiohttp/yarl convention).

A machine without a C compiler or without the Python headers (a stock Debian or
Ubuntu has neither gcc nor python3-dev) still gets a working install: a probe
compiles one line first, silently, and when it fails the build says so ONCE and
goes on without the extension, instead of a wall of compiler errors.
"""
import os
import sys
import sysconfig
import tempfile

from setuptools import setup
from setuptools.command.build_ext import build_ext

NOTICE = "wizsock: compiled framer not built ({}); using the pure-Python framer (same behaviour, slower parsing)"


def _notice(reason):
    print(NOTICE.format(reason), file=sys.stderr, flush=True)


class _Silenced:
    """Sends what the compiler prints (file descriptors 1 and 2) to /dev/null."""

    def __enter__(self):
        sys.stdout.flush()
        sys.stderr.flush()
        self._saved = [os.dup(1), os.dup(2)]
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        os.close(devnull)

    def __exit__(self, *exc):
        for fd, saved in zip((1, 2), self._saved):
            os.dup2(saved, fd)
            os.close(saved)


class OptionalBuildExt(build_ext):
    # A machine without a compiler must still get a working (pure-Python) install.
    def run(self):
        try:
            super().run()
        except Exception as exc:  # pragma: no cover - depends on the toolchain
            _notice(exc)

    def build_extensions(self):
        reason = self._toolchain_missing()
        if reason:
            _notice(reason)
            # Nothing was built: nothing for an editable install to copy or list either.
            self.extensions = []
            return
        super().build_extensions()

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as exc:  # pragma: no cover
            _notice(f"{ext.name}: {exc}")

    def _toolchain_missing(self):
        """Why no extension can be compiled here, or None when a probe compiles."""
        with tempfile.TemporaryDirectory() as tmp:
            probe = os.path.join(tmp, "probe.c")
            with open(probe, "w") as f:
                f.write("#include <Python.h>\nint wizsock_probe(void) { return Py_IsInitialized(); }\n")
            try:
                with _Silenced():
                    self.compiler.compile([probe], output_dir=tmp, include_dirs=self.include_dirs)
            except Exception:
                include = sysconfig.get_paths()["include"]
                if not os.path.exists(os.path.join(include, "Python.h")):
                    return (f"no Python headers: {include}/Python.h is missing "
                            "(Debian/Ubuntu: apt-get install python3-dev)")
                cc = getattr(self.compiler, "compiler_so", None) or ["cc"]
                return f"no working C compiler: {cc[0]!r} does not compile (Debian/Ubuntu: apt-get install gcc)"
        return None


def extensions():
    if os.environ.get("WIZSOCK_NO_EXTENSIONS"):
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:   # only without build isolation (Cython is a build requirement)
        return []
    return cythonize(
        ["wizsock/_framer.pyx"],
        compiler_directives={"language_level": 3, "boundscheck": False, "wraparound": False,
                             "cdivision": True, "initializedcheck": False},
        quiet=True,
    )


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
