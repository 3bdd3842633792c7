import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
for sub in ("shims", "wizfi360_circuitpython"):
    path = os.path.join(HERE, sub)
    if path not in sys.path:
        sys.path.insert(0, path)
