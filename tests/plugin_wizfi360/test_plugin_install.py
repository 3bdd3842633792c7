"""The plugin is found the way a user gets it: from wizsock's installed
``pytest11`` entry point, in a project that has no conftest and never names it."""
import os
import subprocess
import sys
import textwrap

import pytest

USER_TESTS = textwrap.dedent('''
    import socket
    import pytest

    @pytest.mark.wizfi360(seed=3, log=True, world={"dns": {"printer.office.test": "127.0.0.9"}})
    def test_lookup_goes_to_the_module(wizsock_patched, wizfi360_emulator):
        assert socket.gethostbyname("printer.office.test") == "127.0.0.9"
        sent = b"".join(d for way, d in wizfi360_emulator.transcript if way == "<<")
        assert b'AT+CIPDOMAIN="printer.office.test"' in sent

    def test_module_answers(wizfi360):
        assert wizfi360.system.version()

    @pytest.mark.wizfi360(bauds=9600)
    def test_typo_in_marker(wizfi360_url):
        pass

    @pytest.mark.wizfi360(world={"aps": []})
    def test_no_access_point(wizfi360):
        pass
''')


def test_entry_point_registers_the_plugin(request):
    plugin = request.config.pluginmanager.get_plugin("wizsock")
    assert plugin is not None and plugin.__name__ == "wizsock.pytest_plugin"
    dists = {dist.project_name for _, dist in request.config.pluginmanager.list_plugin_distinfo()}
    assert "wizsock" in dists


def test_user_project_gets_fixtures_and_marker(tmp_path):
    (tmp_path / "test_user.py").write_text(USER_TESTS)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_ADDOPTS", "PYTEST_PLUGINS")}
    env.pop("PYTEST_DISABLE_PLUGIN_AUTOLOAD", None)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rA", "--strict-markers",
         "test_user.py"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=90)
    out = proc.stdout + proc.stderr
    assert "PASSED test_user.py::test_lookup_goes_to_the_module" in out, out
    assert "PASSED test_user.py::test_module_answers" in out, out
    # misuse is a clear error of the test that made it, never a silent default
    assert "ERROR test_user.py::test_typo_in_marker" in out, out
    assert "unknown argument(s) bauds" in out, out
    assert "ERROR test_user.py::test_no_access_point" in out, out
    assert "no joinable access point" in out, out
    assert proc.returncode == 1, out
