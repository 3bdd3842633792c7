import os

import pytest

# Under CI a missing component (mosquitto, the compiled framer, ...) is a failure, never a skip.
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(condition, what):
    """Skip locally, fail under CI, when a test's real component is missing."""
    if not condition:
        if IN_CI:
            pytest.fail(f"required component missing under CI: {what}")
        pytest.skip(f"missing: {what}")
