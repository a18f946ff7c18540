# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""transformers 5.25 renamed `gradient_checkpointing` to `activation_checkpointing` and warns when the old name
carries the value; TRL's configs default the old name to True, so every run warned. Every zvp_trl config accepts both
names without a warning, and means the same."""

import warnings

import pytest
from cpu_config import cpu_config_kwargs

from zvp_trl import ALGORITHMS, get_algorithm
from zvp_trl.core.config import ACTIVATION_CHECKPOINTING


pytestmark = pytest.mark.unit

CASES = [
    ({}, True),  # TRL's default: on
    ({"gradient_checkpointing": False}, False),
    ({"gradient_checkpointing": True}, True),
    ({"activation_checkpointing": False}, False),
    ({"activation_checkpointing": True, "gradient_checkpointing": False}, True),  # the new name wins
]


@pytest.mark.parametrize("algorithm", [*ALGORITHMS, "erpo+exgrpo+rl_zvp"])
def test_no_deprecation_warning_and_one_meaning(algorithm, tmp_path):
    config_class, _ = get_algorithm(algorithm).load()
    base = cpu_config_kwargs(tmp_path, num_generations=4)
    base.pop("gradient_checkpointing", None)
    for names, expected in CASES:
        if not ACTIVATION_CHECKPOINTING and "activation_checkpointing" in names:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("error", FutureWarning)
            config = config_class(**base, **names)
        assert config.gradient_checkpointing is expected, (algorithm, names)
        if ACTIVATION_CHECKPOINTING:
            assert config.activation_checkpointing is expected, (algorithm, names)


def test_the_recipe_parser_builds_its_config_without_a_deprecation_warning():
    from zvp_trl.scripts.train import make_parser

    for argv in ([], ["--gradient_checkpointing", "true"], ["--algorithm", "erpo", "--bf16", "false"]):
        parser, _, _ = make_parser(argv)
        with warnings.catch_warnings():
            warnings.simplefilter("error", FutureWarning)
            _, training_args, _ = parser.parse_args_and_config(argv)
        assert training_args.gradient_checkpointing is ("--gradient_checkpointing" in argv)
