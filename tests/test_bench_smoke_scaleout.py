"""The scale-out benchmarks' smoke runs (tests/test_bench_smoke.py has the rest and the rules): a file
of their own, so that the suite's workers, a test file each at a time, run the two halves side by side."""

from __future__ import annotations

import pytest

from tests.test_bench_smoke import SCALE_OUT, run_smoke, smoke_params

pytestmark = pytest.mark.bench_smoke  # make bench-smoke, not the suite


@pytest.mark.parametrize("name", smoke_params(SCALE_OUT))
def test_smoke(name: str, request: pytest.FixtureRequest) -> None:
    """``python -m bench <name> --smoke`` exits 0 and prints its result rows, none failed."""
    run_smoke(name, request)
