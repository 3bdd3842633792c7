import os

import pytest

from programs import lab as _lab

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="module")
def lab():
    problem = _lab.capability_problem()
    if problem:
        if IN_CI:
            pytest.fail(f"the real-program lab cannot run under CI: {problem}")
        pytest.skip(problem)
    with _lab.Lab() as the_lab:
        yield the_lab
