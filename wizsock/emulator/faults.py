"""Fault injection: a seeded spec like "chunk,urc:0.3,busy=0.1,reset:0.01".

Each fault name may carry a probability (`name:p` or `name=p`); without one
the default below applies.  One `random.Random(seed)` drives every decision,
so a run is reproducible from its seed.
"""
from __future__ import annotations

import random
from typing import Dict, Optional

DEFAULTS: Dict[str, float] = {
    "chunk": 1.0,         # output cut at a random byte (per hand-over), the rest after the host read the piece
    "urc": 0.5,           # harmless URCs interleaved at legal boundaries (per boundary)
    "busy": 0.2,          # a command answered with a burst of busy p... instead of running
    "sendfail": 0.2,      # CIPSEND: SEND FAIL
    "delay_sendok": 0.5,  # SEND OK delayed (0.05-0.5 s more)
    "early_close": 0.3,   # remote closes right after the data it sent (CLOSED after +IPD)
    "reset": 0.02,        # module resets (boot noise, ready), per command
    "garbage": 0.1,       # garbage bytes line at a boundary (per unit written)
    "stall": 0.05,        # output stalls for 0.2-1.0 s (per write)
    "limit": 0.3,         # CIPSTART refused as if the link/SSL limit were hit
}


class Faults:
    def __init__(self, spec: Optional[str] = None, seed: Optional[int] = None):
        self.rng = random.Random(seed)
        self.prob: Dict[str, float] = {}
        for part in (spec or "").split(","):
            part = part.strip()
            if not part:
                continue
            for sep in (":", "="):
                if sep in part:
                    name, p = part.split(sep, 1)
                    break
            else:
                name, p = part, None
            name = name.strip().lower()
            if name not in DEFAULTS:
                raise ValueError(f"unknown fault {name!r} (known: {', '.join(DEFAULTS)})")
            prob = DEFAULTS[name] if p is None else float(p)
            if not 0.0 <= prob <= 1.0:
                raise ValueError(f"fault {name}: probability {prob} not in [0, 1]")
            self.prob[name] = prob

    def __bool__(self) -> bool:
        return bool(self.prob)

    def enabled(self, name: str) -> bool:
        return self.prob.get(name, 0.0) > 0.0

    def hit(self, name: str) -> bool:
        p = self.prob.get(name, 0.0)
        return p > 0.0 and self.rng.random() < p

    def __repr__(self) -> str:
        return "Faults(" + ",".join(f"{k}:{v}" for k, v in self.prob.items()) + ")"
