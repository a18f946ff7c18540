# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""Methods combined by name (`zvp_trl.core.composition`): names order-free, registered combinations as aliases,
contradicting pairs refused naming both parts, the composed config and trainer, and every valid pair trained with
each part's metrics logged and its state checkpointed. The two-process run of the triple erpo+exgrpo+rl_zvp is in
tests/test_two_processes.py."""

import dataclasses
import itertools
import json
import pickle
import subprocess
import sys

import pytest
from cpu_config import cpu_config_kwargs
from datasets import Dataset

from zvp_trl import get_algorithm
from zvp_trl.core import composition
from zvp_trl.core.composition import ALGORITHMS
from zvp_trl.scripts.train import main


METHODS = ["rl_zvp", "erpo", "exgrpo", "grpo_ds", "greso"]
# Written out by hand: the pairs that contradict each other, and why in a word.
REFUSED = {
    ("grpo_ds", "rl_zvp"): "never sees one",
    ("greso", "rl_zvp"): "never sees one",
    ("greso", "grpo_ds"): "name greso alone",
    ("erpo", "greso"): "raised temperature",
    ("exgrpo", "grpo_ds"): "replay share no longer holds",
    ("exgrpo", "greso"): "replay share no longer holds",
}
VALID_PAIRS = [("erpo", "rl_zvp"), ("exgrpo", "rl_zvp"), ("erpo", "grpo_ds"), ("erpo", "exgrpo")]
# What each part logs of its own and keeps in checkpoints.
OWN_METRIC = {"rl_zvp": "zvp/adv_mean_negative", "erpo": "erpo/temperature_max", "exgrpo": "exgrpo/buffer_prompts",
              "grpo_ds": "ds/frac_dropped"}  # fmt: skip
OWN_STATE = {"rl_zvp": set(), "erpo": {"erpo_history"}, "exgrpo": {"exgrpo_buffer", "exgrpo_phase"},
             "grpo_ds": {"ds_sampler", "dynamic_sampling"}}  # fmt: skip


@pytest.mark.unit
def test_every_pair_is_either_valid_or_refused():
    pairs = {tuple(sorted(p)) for p in itertools.combinations(METHODS, 2)}
    assert pairs == {tuple(sorted(p)) for p in [*REFUSED, *VALID_PAIRS]}
    assert not {tuple(sorted(p)) for p in REFUSED} & {tuple(sorted(p)) for p in VALID_PAIRS}


@pytest.mark.unit
@pytest.mark.parametrize("pair", list(REFUSED), ids="+".join)
def test_contradicting_pairs_are_refused_naming_both_parts(pair):
    for name in ("+".join(pair), "+".join(reversed(pair))):
        with pytest.raises(ValueError, match="cannot be combined") as error:
            get_algorithm(name)
        message = str(error.value)
        assert all(part in message for part in pair) and REFUSED[pair] in message
    # A triple that contains a refused pair is refused too.
    other = next(m for m in ("erpo", "rl_zvp", "exgrpo") if m not in pair)
    with pytest.raises(ValueError, match="cannot be combined"):
        get_algorithm("+".join([*pair, other]))


@pytest.mark.unit
def test_registered_combinations_are_aliases_in_any_order():
    assert get_algorithm("rl_zvp+erpo") is ALGORITHMS["erpo_rl_zvp"] is get_algorithm("erpo+rl_zvp")
    assert get_algorithm("rl_zvp+exgrpo") is ALGORITHMS["exgrpo_rl_zvp"]
    assert get_algorithm("grpo_ds+erpo") is ALGORITHMS["erpo_ds"]
    assert get_algorithm("erpo_rl_zvp+exgrpo").name == get_algorithm("rl_zvp+exgrpo+erpo").name
    assert get_algorithm("rl_zvp+rl_zvp") is ALGORITHMS["rl_zvp"]  # each method once
    with pytest.raises(ValueError, match="Unknown method 'nope' in algorithm 'erpo\\+nope'.*erpo\\+exgrpo\\+rl_zvp"):
        get_algorithm("erpo+nope")


@pytest.mark.distributed
def test_the_composed_config_holds_every_part_field(tmp_path):
    config_class, trainer_class = get_algorithm("erpo+exgrpo+rl_zvp").load()
    fields = {f.name: f for f in dataclasses.fields(config_class)}
    for single in ("erpo", "exgrpo", "rl_zvp"):
        own = {f.name for f in dataclasses.fields(ALGORITHMS[single].load()[0])}
        assert own <= set(fields), single
    assert all(f.metadata.get("help") for name, f in fields.items() if name.startswith(("erpo_", "exgrpo_", "zvp_")))
    config = config_class(**cpu_config_kwargs(tmp_path, num_generations=4))
    # ExGRPO's Dr.GRPO defaults win; ERPO's log-probs at the base temperature, as replays need; ExGRPO draws retired
    # questions again, so ERPO can raise their temperature.
    assert (config.loss_type, config.scale_rewards, config.erpo_logprob_temperature) == ("dr_grpo", "none", "base")
    assert config.exgrpo_exclude_retired is False
    with pytest.raises(ValueError, match="ERPO combined with ExGRPO needs erpo_logprob_temperature='base'"):
        config_class(**cpu_config_kwargs(tmp_path, num_generations=4, erpo_logprob_temperature="sampling"))
    with pytest.raises(ValueError, match="never rolls out again a question whose group came back all-correct"):
        config_class(**cpu_config_kwargs(tmp_path, num_generations=4, exgrpo_exclude_retired=True))
    config_class(  # with a trigger that also raises all-wrong questions, excluding retired ones is consistent
        **cpu_config_kwargs(tmp_path, num_generations=4, exgrpo_exclude_retired=True),
        erpo_trigger="all_correct_or_all_wrong",
    )
    with pytest.raises(ValueError, match="push down the correct trajectories ExGRPO replays"):
        config_class(**cpu_config_kwargs(tmp_path, num_generations=4, erpo_ra_advantage=0.1, zvp_use_positive=False))
    # The pair checks of the registered combinations it covers apply (ERPO + RL-ZVP: RA against positive advantages).
    with pytest.raises(ValueError, match="erpo_ra_advantage > 0"):
        config_class(**cpu_config_kwargs(tmp_path, num_generations=4, erpo_ra_advantage=0.1))
    # It pickles (training_args.bin) by its importable name, and unpickles in a fresh process.
    assert type(pickle.loads(pickle.dumps(config))) is config_class
    assert config_class.__module__ == "zvp_trl.core.composition"
    (tmp_path / "args.pkl").write_bytes(pickle.dumps(config))
    code = (
        "import pickle, sys; c = pickle.load(open(sys.argv[1], 'rb')); print(type(c).__name__, c.exgrpo_replay_ratio)"
    )
    loaded = subprocess.run([sys.executable, "-c", code, str(tmp_path / "args.pkl")], capture_output=True, text=True)
    assert loaded.stdout.split() == ["ExGRPOERPORLZVPConfig", "0.5"], loaded.stderr[-2000:]
    # A refused combination or a registered one is no composed class.
    assert getattr(composition, "GRESORLZVPConfig", None) is None
    with pytest.raises(AttributeError, match="ERPORLZVPTrainer"):
        getattr(composition, "ERPORLZVPTrainer")  # noqa: B009 (the lookup is what is tested)
    # The trainer: the three parts, every paper cited.
    assert [p.name for p in trainer_class._parts] == ["exgrpo", "erpo", "rl_zvp"]
    citation = trainer_class._paper["citation"]
    assert all(key in citation for key in ("2510.02245", "2511.04800", "2509.21880"))
    assert trainer_class._name == "ExGRPO + ERPO + RL-ZVP"


def _reward(completions, **kwargs):
    # Groups of 4: mixed, all-correct, all-wrong, mixed, ... by prompt number, so every part has work.
    return [float((i // 4) % 3 == 1 or ((i // 4) % 3 == 0 and i % 2 == 0)) for i in range(len(completions))]


@pytest.mark.trainer
@pytest.mark.parametrize("pair", VALID_PAIRS, ids="+".join)
def test_every_valid_pair_trains_with_each_part_metrics_and_state(tiny_model_path, tmp_path, pair):
    config_class, trainer_class = get_algorithm("+".join(pair)).load()
    options = {"exgrpo_start_threshold": None} if "exgrpo" in pair else {}
    args = config_class(
        **cpu_config_kwargs(
            tmp_path, num_generations=4, max_completion_length=4, max_steps=3, save_strategy="steps", save_steps=1
        ),
        **options,
    )
    dataset = Dataset.from_dict({"prompt": [f"Q: {i}+2=?\nA:" for i in range(12)]})
    trainer = trainer_class(model=tiny_model_path, reward_funcs=_reward, args=args, train_dataset=dataset)
    assert sorted(trainer.part_names) == sorted(pair)
    trainer.train()
    logged = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert len(logged) == 3
    for part in pair:
        assert any(OWN_METRIC[part] in entry for entry in logged), part
    state = json.loads((tmp_path / "checkpoint-3" / "zvp_state.json").read_text())
    assert set(state) == {"rollouts", "written_by"}.union(*(OWN_STATE[p] for p in pair))
    assert state["written_by"] == {"trainer": type(trainer).__name__, "parts": trainer.part_names}


@pytest.mark.trainer
def test_the_triple_trains_from_the_recipe_on_the_embedded_task(tmp_path, tmp_path_factory, monkeypatch):
    monkeypatch.setenv("ZVP_TRL_CACHE", str(tmp_path_factory.getbasetemp() / "zvp_cache"))
    run = ["--max_steps", "3", "--embedded_warmup_steps", "5", "--embedded_num_train_prompts", "32"]
    run += ["--embedded_num_eval_prompts", "0", "--per_device_train_batch_size", "8", "--num_generations", "4"]
    run += ["--max_completion_length", "12", "--logging_steps", "1", "--save_steps", "1", "--dynamics_plot", "false"]
    run += ["--exgrpo_start_threshold", "0.0", "--reward_funcs", "accuracy", "recipe_two_processes.mixed_reward"]
    monkeypatch.syspath_prepend(str(__import__("pathlib").Path(__file__).parent / "scripts"))
    summary = main([*run, "--algorithm", "rl_zvp+exgrpo+erpo", "--output_dir", str(tmp_path)])
    assert summary["algorithm"] == "rl_zvp+exgrpo+erpo" and summary["global_steps"] == 3
    history = json.loads((tmp_path / "trainer_state.json").read_text())["log_history"]
    logged = [entry for entry in history if "loss" in entry]
    for key in ("erpo/temperature_max", "exgrpo/buffer_prompts", "exgrpo/active", "zvp/entropy_max_mean"):
        assert all(key in entry for entry in logged), key
    assert [entry["exgrpo/active"] for entry in logged][1:] == [1.0, 1.0]  # mixed from the second batch on
    state = json.loads((tmp_path / "checkpoint-3" / "zvp_state.json").read_text())
    assert set(state) == {"rollouts", "erpo_history", "exgrpo_buffer", "exgrpo_phase", "written_by"}


@pytest.mark.unit
@pytest.mark.parametrize(
    "kwargs, expected",
    [
        ({"rollout_func": lambda prompts, trainer: {}}, "a custom rollout_func is not supported"),
    ],
    ids=["rollout_func"],
)
def test_exgrpo_refuses_what_it_cannot_replay_before_trl_builds_anything(tmp_path, kwargs, expected):
    """Refused from the arguments alone, before TRL loads a model or starts an environment: the model named here does
    not exist, so a refusal after TRL's construction would fail on it instead."""
    for name in ("exgrpo", "erpo+exgrpo+rl_zvp"):
        config_class, trainer_class = get_algorithm(name).load()
        args = config_class(**cpu_config_kwargs(tmp_path, num_generations=4))
        with pytest.raises(ValueError, match=expected):
            trainer_class(model=str(tmp_path / "no-such-model"), reward_funcs=_reward, args=args, **kwargs)
