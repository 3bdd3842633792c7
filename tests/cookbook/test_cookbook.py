"""The cookbook's Python recipes are valid Python (they name hardware and public
hosts, so they are compiled here, not run; the API reference build checks the rest)."""
import pathlib
import re

import pytest

COOKBOOK = pathlib.Path(__file__).resolve().parents[2] / "docs" / "cookbook.md"
BLOCKS = re.findall(r"```python\n(.*?)```", COOKBOOK.read_text(), re.S)


def test_the_cookbook_has_its_recipes():
    text = COOKBOOK.read_text()
    for section in ("## requests", "## paho-mqtt", "## asyncio", "## trio",
                    "pytest plugin", "`wizsock socks`", "## Real hardware"):
        assert section in text
    assert len(BLOCKS) >= 7


@pytest.mark.parametrize("n", range(len(BLOCKS)))
def test_recipe_compiles(n):
    compile(BLOCKS[n], f"{COOKBOOK}:python block {n + 1}", "exec")


def test_recipes_name_real_wizsock_api():
    import importlib

    import wizsock
    from wizsock.engine import api

    text = COOKBOOK.read_text()
    for dotted in sorted(set(re.findall(r"\bwizsock(?:\.\w+)+", text))):
        obj = wizsock
        for part in dotted.split(".")[1:]:
            try:
                obj = getattr(obj, part)
            except AttributeError:
                obj = importlib.import_module(f"{obj.__name__}.{part}")
        assert obj is not None, dotted
    # the group methods the recipes call (m.system.set_uart, m.wifi.join, ...)
    groups = {"system": api.System, "wifi": api.Wifi, "net": api.Net, "mqtt": api.Mqtt}
    for group, method in set(re.findall(r"\bm\.(system|wifi|net|mqtt)\.(\w+)\(", text)):
        assert hasattr(groups[group], method), f"m.{group}.{method}"
