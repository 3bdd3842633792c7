"""The names of Adafruit's `circuitpython_typing` the vendored WiFi manager imports for
its annotations (CPython evaluates them when the class is defined)."""
