from typing import Any

FillBasedLED = Any
