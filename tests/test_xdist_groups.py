# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""The test groups of conftest.py (the repository's root) under pytest-xdist, in an inner session with two workers."""

from pathlib import Path

import pytest


pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def inner(pytester):
    """An inner session with the repository's conftest.py and markers."""
    pytester.makeconftest((REPO / "conftest.py").read_text())
    pytester.makefile(".cfg", setup=(REPO / "setup.cfg").read_text())
    return pytester


@pytest.mark.distributed
def test_launching_tests_share_one_worker_under_xdist(inner):
    """With two pytest-xdist workers (the README's command), every distributed test outside tests_vllm runs on the
    same worker, one launch at a time (the `launches` group must be set before xdist reads it)."""
    inner.makepyfile(
        test_launches="""
        import os
        import pytest

        @pytest.mark.distributed
        @pytest.mark.parametrize("n", range(6))
        def test_launch(n, tmp_path_factory):
            folder = tmp_path_factory.getbasetemp().parent.parent / "workers"
            folder.mkdir(exist_ok=True)
            (folder / f"{n}").write_text(os.environ["PYTEST_XDIST_WORKER"])

        @pytest.mark.unit
        @pytest.mark.parametrize("n", range(6))
        def test_compute(n):
            pass
        """
    )
    result = inner.runpytest_subprocess("-n", "2", "-p", "no:cacheprovider", f"--basetemp={inner.path / 'tmp'}")
    result.assert_outcomes(passed=12)
    workers = {path.read_text() for path in (inner.path / "workers").iterdir()}
    assert len(list((inner.path / "workers").iterdir())) == 6 and len(workers) == 1, workers
