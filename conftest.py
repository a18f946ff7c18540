# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""The test tiers, shared by both suites (`tests/`, `tests_vllm/`); CONTRIBUTING.md has their commands and times.

Every test carries exactly one tier marker, set in its file (`pytestmark`) or on the test:

- `unit`: no trainer, no model, no process: pure functions, configs, parsers, parts driven with hand-made tensors.
  Enforced while the test runs: starting a process, building a model or a `transformers.Trainer` fails it.
- `trainer`: builds a trainer or a model in this process, or uses what starts a helper process of its own (the
  math-verify reward's scoring process, matplotlib's font cache).
- `distributed`: launches processes (torchrun, accelerate, the recipes and scripts as commands, notebooks, pip,
  vLLM engines and servers). Under pytest-xdist (`-n 2`, CI) those of the main suite all run on one worker, one
  after the other (`--dist loadgroup`), since each one already keeps both cores busy; tests_vllm/conftest.py groups
  its own.

`slow` marks a test that takes over 30 seconds here on its own. The method markers (`rl_zvp`, `erpo`, `exgrpo`,
`grpo_ds`, `greso`) are set automatically from the test's file name, its name and its parameters (an algorithm
`erpo_rl_zvp`, a combination `erpo+exgrpo+rl_zvp`), so `pytest -m "erpo and not slow"` selects one method's checks;
`tests_vllm/` is marked `vllm` as a whole.
"""

import contextlib
import functools
import re

import pytest


TIERS = ("unit", "trainer", "distributed")
METHOD_MARKERS = ("rl_zvp", "erpo", "exgrpo", "grpo_ds", "greso")


@functools.cache
def _method_pattern() -> tuple[dict[str, tuple[str, ...]], re.Pattern]:
    """Names that stand for methods in test names and parameters: the methods, the package's registered combinations
    (`zvp_trl.core.composition.aliases()`), and the name the dynamic-sampling files use."""
    from zvp_trl.core.composition import aliases

    names = {**{method: (method,) for method in METHOD_MARKERS}, **aliases(), "dynamic_sampling": ("grpo_ds",)}
    alternatives = "|".join(sorted(map(re.escape, names), key=len, reverse=True))
    return names, re.compile(rf"(?<![a-z0-9])({alternatives})(?![a-z0-9])")


# Session fixtures that build models or launch processes: a unit test cannot ask for them.
NOT_UNIT_FIXTURES = {"tiny_model_path", "tool_model_path", "every_trainer_run", "vllm_model_path", "server"}


def methods_of(text: str) -> set[str]:
    """The methods a test's id names (`tests/test_erpo.py::test_x[exgrpo_rl_zvp]` -> erpo, exgrpo, rl_zvp)."""
    names, pattern = _method_pattern()
    found: set[str] = set()
    for match in pattern.finditer(text.lower()):
        found.update(names[match.group(1)])
    return found


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own hook reads the xdist_group markers (--dist loadgroup)
def pytest_collection_modifyitems(config, items):
    """Adds the method markers and checks that every test has exactly one tier."""
    wrong = []
    xdist = config.pluginmanager.hasplugin("xdist")
    for item in items:
        for method in sorted(methods_of(item.nodeid)):
            item.add_marker(method)
        if xdist and item.get_closest_marker("distributed") and not item.get_closest_marker("vllm"):
            item.add_marker(pytest.mark.xdist_group("launches"))
        tiers = [tier for tier in TIERS if item.get_closest_marker(tier) is not None]
        if len(tiers) != 1:
            wrong.append(f"{item.nodeid}: {', '.join(tiers) or 'no tier'}")
        elif tiers == ["unit"] and NOT_UNIT_FIXTURES & set(getattr(item, "fixturenames", ())):
            wrong.append(f"{item.nodeid}: unit, but asks for {', '.join(NOT_UNIT_FIXTURES & set(item.fixturenames))}")
    if wrong:
        raise pytest.UsageError(
            "Every test needs exactly one of the markers unit / trainer / distributed (conftest.py says which):\n  "
            + "\n  ".join(wrong)
        )


class TierViolation(AssertionError):
    """A `unit` test did what only a `trainer` or `distributed` test may."""


def _refuse(what: str):
    def refused(*args, **kwargs):
        raise TierViolation(f"a unit test {what}: mark it `trainer` or `distributed` instead")

    return refused


@contextlib.contextmanager
def _unit_tier_guard(item):
    """While a `unit` test is set up, runs and is torn down (its fixtures included), starting a process or building a
    model or a trainer fails it."""
    if item.get_closest_marker("unit") is None:
        yield
        return
    import multiprocessing.process
    import os
    import subprocess

    import transformers

    patches = [
        (subprocess.Popen, "__init__", _refuse("started a process")),
        (multiprocessing.process.BaseProcess, "start", _refuse("started a process")),
        (os, "fork", _refuse("forked")),
        (transformers.PreTrainedModel, "__init__", _refuse("built a model")),
        (transformers.Trainer, "__init__", _refuse("built a trainer")),
    ]
    saved = [(owner, name, owner.__dict__[name]) for owner, name, _ in patches]
    for owner, name, replacement in patches:
        setattr(owner, name, replacement)
    try:
        yield
    finally:
        for owner, name, original in saved:
            setattr(owner, name, original)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    with _unit_tier_guard(item):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    with _unit_tier_guard(item):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item, nextitem):
    with _unit_tier_guard(item):
        return (yield)
