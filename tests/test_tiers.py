# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""The test tiers of conftest.py (the repository's root): the method markers read from test ids, one tier per test,
and the unit tier's guard. The checks run an inner pytest session in this process (pytester) with the root conftest
and the setup.cfg markers."""

import importlib.util
from pathlib import Path

import pytest


pytestmark = pytest.mark.unit
pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[1]
# The root conftest.py, loaded under a name of its own (tests/conftest.py is the module `conftest` here).
_spec = importlib.util.spec_from_file_location("root_conftest", REPO / "conftest.py")
root_conftest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(root_conftest)
methods_of = root_conftest.methods_of


@pytest.mark.parametrize(
    "nodeid, expected",
    [
        ("tests/test_erpo.py::test_history", {"erpo"}),
        ("tests/test_exgrpo.py::test_buffer", {"exgrpo"}),  # "erpo" is not a word of "exgrpo"
        ("tests/test_fsdp2.py::test_every_trainer[erpo_rl_zvp]", {"erpo", "rl_zvp"}),
        ("tests/test_deepspeed.py::test_x[erpo_ds-2]", {"erpo", "grpo_ds"}),
        ("tests/test_recipes.py::test_y[erpo+exgrpo+rl_zvp]", {"erpo", "exgrpo", "rl_zvp"}),
        ("tests/test_dynamic_sampling.py::test_plan", {"grpo_ds"}),
        ("tests/test_greso.py::test_skip", {"greso"}),
        ("tests/test_two_processes.py::test_agree[grpo]", set()),  # plain GRPO is no method
        ("tests/test_data.py::test_progress_and_dsl", set()),
    ],
)
def test_methods_of_reads_the_test_id(nodeid, expected):
    assert methods_of(nodeid) == expected


@pytest.fixture
def inner(pytester):
    """An inner session with the repository's conftest.py and markers."""
    pytester.makeconftest((REPO / "conftest.py").read_text())
    pytester.makefile(".cfg", setup=(REPO / "setup.cfg").read_text())
    return pytester


def test_every_test_needs_exactly_one_tier(inner):
    inner.makepyfile(
        test_a="""
        import pytest

        def test_none():
            pass

        @pytest.mark.unit
        @pytest.mark.trainer
        def test_two():
            pass

        @pytest.mark.trainer
        def test_one():
            pass
        """
    )
    result = inner.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*test_a.py::test_none: no tier*", "*test_a.py::test_two: unit, trainer*"])
    assert "test_one" not in result.stderr.str()


def test_an_unknown_marker_is_refused(inner):
    inner.makepyfile(test_b="import pytest\n\n@pytest.mark.unti\ndef test_typo():\n    pass\n")
    result = inner.runpytest()
    assert result.ret != pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*'unti' not found in `markers` configuration option*"])


def test_the_unit_guard_fails_a_unit_test_that_starts_a_process_or_builds_a_model(inner):
    inner.makepyfile(
        test_c="""
        import subprocess
        import sys

        import pytest
        import transformers

        pytestmark = pytest.mark.unit

        def test_process():
            subprocess.run([sys.executable, "-c", "pass"])

        def test_model():
            transformers.GPT2LMHeadModel(transformers.GPT2Config(n_layer=1, n_embd=8, n_head=2, vocab_size=16))

        def test_pure():
            assert sum([1, 2]) == 3

        @pytest.fixture(scope="module")
        def built():
            return transformers.GPT2LMHeadModel(transformers.GPT2Config(n_layer=1, n_embd=8, n_head=2, vocab_size=16))

        def test_fixture_builds_a_model(built):
            pass
        """
    )
    import subprocess

    import transformers

    before = subprocess.Popen.__init__, transformers.PreTrainedModel.__init__
    result = inner.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=2, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*TierViolation: a unit test started a process*",
            "*TierViolation: a unit test built a model*",
        ]
    )
    # The inner guard is lifted after each unit test: the methods are what they were before (this outer unit test's
    # own guard).
    assert (subprocess.Popen.__init__, transformers.PreTrainedModel.__init__) == before


def test_a_unit_test_cannot_ask_for_a_model_fixture(inner):
    inner.makeconftest(
        (REPO / "conftest.py").read_text()
        + "\n\n@pytest.fixture(scope='session')\ndef tiny_model_path():\n    return 'model'\n"
    )
    inner.makepyfile(test_d="import pytest\n\n@pytest.mark.unit\ndef test_x(tiny_model_path):\n    pass\n")
    result = inner.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*test_d.py::test_x: unit, but asks for tiny_model_path*"])

