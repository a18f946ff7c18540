# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""Bad inputs, one section each: every one gets a clear error naming the field and the fix, or a defined behaviour.

1. dataset without `prompt` / without the answer column      6. rewards that are None/NaN for some or all rows
2. `num_generations < 2`                                     7. empty completions (EOS at once, fully masked)
3. RL-ZVP `zvp_alpha < 0`                                    8. completions without a `\\boxed` answer
4. ERPO max temperature below the base temperature           9. pathological LaTeX (bounded reward, no hanging step)
5. conflicting options                                      10. a YAML recipe with an unknown key
"""

import json
import math
import os
import resource
import subprocess
import sys
import textwrap
import time

import pytest
import torch
from cpu_config import cpu_config_kwargs
from datasets import Dataset
from recording import record_generations
from transformers import AutoTokenizer

from zvp_trl import ALGORITHMS, get_algorithm, rl_zvp_token_advantages
from zvp_trl.data import rewards as rewards_module
from zvp_trl.data.rewards import (
    accuracy_reward,
    batch_math_verify_accuracy,
    boxed_format_reward,
    make_accuracy_reward,
    math_verify_accuracy,
    shutdown_math_verify_worker,
)
from zvp_trl.methods.erpo.algorithm import erpo_next_temperature
from zvp_trl.scripts.train import main, make_parser


G = 4
# math-verify/sympy does not finish comparing this with 5 (10**(10**10) has ten billion digits); as in test_rewards.py.
SLOW_ANSWER = r"The answer is \boxed{10^{10^{10}}}."
TRAINED = ["rl_zvp", "erpo", "erpo_rl_zvp", "grpo_ds", "greso", "exgrpo"]  # the trainers run in the step tests


def make_config(algorithm, tmp_path, **overrides):
    config_class, _ = get_algorithm(algorithm).load()
    values = cpu_config_kwargs(tmp_path, num_generations=G, max_completion_length=6, shuffle_dataset=False)
    values.update(overrides)
    return config_class(**values)


def make_trainer(algorithm, model_path, tmp_path, reward, dataset=None, **overrides):
    _, trainer_class = get_algorithm(algorithm).load()
    if dataset is None:
        dataset = Dataset.from_dict(
            {"prompt": [f"Q: {i}+1=?\nA:" for i in range(8)], "solution": ["0"] * 8, "kind": ["mixed", "wrong"] * 4}
        )
    return trainer_class(
        model=model_path,
        reward_funcs=reward,
        args=make_config(algorithm, tmp_path, **overrides),
        train_dataset=dataset,
    )


def spy_generation_outputs(trainer):
    """Records each generation batch as scored (rows in reward-call order; TRL shuffles them before the loss)."""
    return record_generations(
        trainer,
        lambda output: {k: (v.detach().clone() if isinstance(v, torch.Tensor) else v) for k, v in output.items()},
    )


def first_log(trainer):
    return next(entry for entry in trainer.state.log_history if "loss" in entry)


def generation_batch(trainer):
    rows = [trainer.train_dataset[i] for i in range(2) for _ in range(G)]
    torch.manual_seed(0)
    return trainer._generate_and_score_completions(rows)


def loss_and_grads(trainer, inputs):
    trainer.model.zero_grad()
    loss = trainer._compute_loss(trainer.model, inputs)
    loss.backward()
    return loss.detach(), [p.grad for p in trainer.model.parameters() if p.grad is not None]


# ---------------------------------------------------------------------------------------------------------------------
# 1. Dataset columns
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.trainer
@pytest.mark.parametrize("algorithm", list(ALGORITHMS))
def test_dataset_without_prompt_column_is_refused_at_construction(tiny_model_path, tmp_path, algorithm):
    dataset = Dataset.from_dict({"question": ["Q: 1+1=?\nA:"] * 8, "solution": ["2"] * 8})
    # Was a bare `KeyError: 'prompt'` at the first generation.
    with pytest.raises(ValueError, match=r"train_dataset has no 'prompt' column .*rename_column.*load_math_dataset"):
        make_trainer(algorithm, tiny_model_path, tmp_path, accuracy_reward, dataset=dataset)


@pytest.mark.trainer
def test_eval_dataset_without_prompt_column_is_refused(tiny_model_path, tmp_path):
    _, trainer_class = get_algorithm("rl_zvp").load()
    good = Dataset.from_dict({"prompt": ["Q: 1+1=?\nA:"] * 8, "solution": ["2"] * 8})
    bad = Dataset.from_dict({"problem": ["Q: 1+1=?\nA:"] * 8, "solution": ["2"] * 8})
    with pytest.raises(ValueError, match=r"eval_dataset\['heldout'\] has no 'prompt' column"):
        trainer_class(
            model=tiny_model_path,
            reward_funcs=accuracy_reward,
            args=make_config("rl_zvp", tmp_path),
            train_dataset=good,
            eval_dataset={"heldout": bad},
        )


@pytest.mark.unit
def test_accuracy_rewards_without_their_answer_column_name_it_and_the_fix():
    trl_kwargs = dict(prompts=["?"], completion_ids=[[1]], trainer_state=None)
    # Was `TypeError: accuracy_reward() missing 1 required positional argument: 'solution'`.
    with pytest.raises(KeyError, match=r"'solution' column.*\['answer'\].*make_accuracy_reward\(answer_column="):
        accuracy_reward(completions=[r"\boxed{2}"], answer=["2"], **trl_kwargs)
    with pytest.raises(KeyError, match=r"'answer' column.*\['solution'\]"):
        make_accuracy_reward("answer")(completions=[r"\boxed{2}"], solution=["2"], **trl_kwargs)


@pytest.mark.trainer
def test_training_without_the_answer_column_stops_with_the_reward_error(tiny_model_path, tmp_path):
    dataset = Dataset.from_dict({"prompt": [f"Q: {i}+1=?\nA:" for i in range(8)], "answer": ["1"] * 8})
    trainer = make_trainer("rl_zvp", tiny_model_path, tmp_path, accuracy_reward, dataset=dataset)
    with pytest.raises(KeyError, match="reads gold answers from the 'solution' column"):
        trainer.train()


@pytest.mark.trainer
@pytest.mark.parametrize(
    "row, match",
    [
        ({"text": "1+1?", "solution": "2"}, r"question column 'question' was not found"),
        ({"question": "1+1?", "result": "2"}, r"answer column 'answer' was not found"),
    ],
)
def test_recipe_dataset_file_without_question_or_answer_names_the_recipe_flag(tiny_model_path, tmp_path, row, match):
    path = tmp_path / "data.jsonl"
    path.write_text(json.dumps(row) + "\n")
    argv = ["--model_name_or_path", tiny_model_path, "--dataset_name", str(path), "--output_dir", str(tmp_path / "o")]
    # The hint was only `column_mapping=` of load_math_dataset, which a recipe user cannot pass.
    with pytest.raises(ValueError, match=match + r".*--dataset_column_mapping"):
        main([*argv, "--use_cpu", "true", "--bf16", "false"])


# ---------------------------------------------------------------------------------------------------------------------
# 2. num_generations < 2
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.unit
@pytest.mark.parametrize("algorithm", list(ALGORITHMS))
@pytest.mark.parametrize("num_generations", [1, 0, -2])
def test_num_generations_below_two_names_the_field(tmp_path, algorithm, num_generations):
    # 0 was a ZeroDivisionError inside GRPOConfig; 1 was TRL's message, which does not name the field.
    with pytest.raises(ValueError, match=rf"num_generations must be >= 2, got {num_generations}.*Set num_generations"):
        make_config(algorithm, tmp_path, num_generations=num_generations)


# ---------------------------------------------------------------------------------------------------------------------
# 3. RL-ZVP alpha
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.unit
@pytest.mark.parametrize("algorithm", ["rl_zvp", "erpo_rl_zvp", "exgrpo_rl_zvp"])
@pytest.mark.parametrize("alpha", [-0.1, math.nan, math.inf])
def test_rl_zvp_alpha_must_be_non_negative_and_finite(tmp_path, algorithm, alpha):
    # inf was accepted and made the loss NaN (inf * a zero entropy). 0 is allowed: plain GRPO.
    with pytest.raises(ValueError, match=r"zvp_alpha must be >= 0 and finite, got .*The paper uses 0.1"):
        make_config(algorithm, tmp_path, zvp_alpha=alpha)


@pytest.mark.unit
@pytest.mark.parametrize("value", [0.0, math.inf])
def test_rl_zvp_constant_advantage_must_be_positive_and_finite(tmp_path, value):
    with pytest.raises(ValueError, match="zvp_constant_advantage must be > 0 and finite"):
        make_config("rl_zvp", tmp_path, zvp_entropy_scaling=False, zvp_constant_advantage=value)


@pytest.mark.unit
def test_an_infinite_alpha_would_have_given_nan_advantages():
    # Why the config refuses it: alpha * H with H = 0 on some token (or a padded one) is NaN.
    entropies = torch.tensor([[0.5, 0.0, 0.2]])
    advantages = rl_zvp_token_advantages(
        torch.zeros(1), torch.ones(1), entropies, torch.tensor([[1, 1, 0]]), alpha=math.inf
    )
    assert torch.isnan(advantages).any()


# ---------------------------------------------------------------------------------------------------------------------
# 4. ERPO max temperature below the base temperature
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.unit
@pytest.mark.parametrize("algorithm", ["erpo", "erpo_rl_zvp"])
@pytest.mark.parametrize("max_temperature", [0.9, math.nan])
def test_erpo_max_temperature_below_base_is_refused(tmp_path, algorithm, max_temperature):
    # NaN was accepted: min(t, nan) is t, so the cap vanished.
    with pytest.raises(
        ValueError, match=r"erpo_max_temperature=.* is below the base temperature \(temperature=1.0\)\. Set"
    ):
        make_config(algorithm, tmp_path, temperature=1.0, erpo_max_temperature=max_temperature)


@pytest.mark.unit
def test_erpo_max_temperature_equal_to_base_is_allowed(tmp_path):
    assert make_config("erpo", tmp_path, temperature=0.7, erpo_max_temperature=0.7).erpo_max_temperature == 0.7


# ---------------------------------------------------------------------------------------------------------------------
# 5. Conflicting options
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.unit
@pytest.mark.parametrize("algorithm", ["exgrpo", "exgrpo_rl_zvp"])
def test_exgrpo_refuses_adaptive_entropy(tmp_path, algorithm):
    with pytest.raises(ValueError, match=r"use_adaptive_entropy=True is not supported .*use_adaptive_entropy=False"):
        make_config(algorithm, tmp_path, use_adaptive_entropy=True)


@pytest.mark.unit
def test_exgrpo_rl_zvp_refuses_an_incompatible_loss_type(tmp_path):
    with pytest.raises(ValueError, match=r"loss_type='vespo' is not supported.*Use one of"):
        make_config("exgrpo_rl_zvp", tmp_path, loss_type="vespo")


# ---------------------------------------------------------------------------------------------------------------------
# 6. Rewards that are None or NaN for some or all completions
# ---------------------------------------------------------------------------------------------------------------------

# Per group (G consecutive rows, one prompt): "mixed" has an unscored row among distinct rewards, "wrong" has an
# unscored (NaN) row among equal rewards -- zero-variance if the unscored row were ignored.
PATTERNS = {"mixed": [1.0, None, 0.0, 1.0], "wrong": [0.0, 0.0, math.nan, 0.0]}


class RecordingReward:
    def __init__(self, all_unscored: bool):
        self.all_unscored = all_unscored
        self.calls = []
        self.__name__ = "unscored" if all_unscored else "partly_unscored"

    def __call__(self, completions, kind, **kwargs):
        scores = [None] * len(completions) if self.all_unscored else [PATTERNS[k][i % G] for i, k in enumerate(kind)]
        self.calls.append(scores)
        return scores


@pytest.mark.trainer
@pytest.mark.parametrize("all_unscored", [False, True], ids=["some_rows_unscored", "all_rows_unscored"])
@pytest.mark.parametrize("algorithm", TRAINED)
def test_unscored_rewards_give_a_finite_step_and_zero_advantage(tiny_model_path, tmp_path, algorithm, all_unscored):
    reward = RecordingReward(all_unscored)
    # ERPO's non-default trigger is the one an unscored group used to fire (counted as all-wrong).
    overrides = dict(erpo_trigger="all_correct_or_all_wrong") if algorithm.startswith("erpo") else {}
    trainer = make_trainer(algorithm, tiny_model_path, tmp_path, reward, **overrides)
    seen = spy_generation_outputs(trainer)
    trainer.train()

    log = first_log(trainer)
    assert math.isfinite(log["loss"]) and math.isfinite(log["grad_norm"])
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())
    scores = reward.calls[0]
    unscored = torch.tensor([s is None or math.isnan(s) for s in scores])
    advantages = seen[0]["advantages"]
    assert advantages.shape == (len(scores),) and torch.isfinite(advantages).all()
    # TRL's rule, kept by every trainer: an unscored row has advantage 0 and is left out of its group's baseline.
    assert torch.all(advantages[unscored] == 0)
    if all_unscored:
        assert torch.all(advantages == 0) and log["loss"] == 0.0 and log["grad_norm"] == 0.0
    else:
        groups = [scores[i : i + G] for i in range(0, len(scores), G)]
        for g, group in enumerate(groups):
            scored = {s for s in group if s is not None and not math.isnan(s)}
            rows = advantages[g * G : (g + 1) * G][~unscored[g * G : (g + 1) * G]]
            assert torch.all(rows != 0) if len(scored) > 1 else torch.all(rows == 0)
        assert log["grad_norm"] > 0  # the "mixed" group still teaches

    # Each method's documented treatment of a group with an unscored row: not zero-variance / mixed.
    if "zvp_signs" in seen[0]:
        assert torch.all(seen[0]["zvp_signs"] == 0)  # keeps GRPO's advantage, no entropy shaping
        assert log["zvp/frac_zv_positive"] == 0.0 and log["zvp/frac_zv_negative"] == 0.0
    if algorithm.startswith("erpo"):
        assert trainer.part("erpo").history.temperatures == {}  # never raised (was raised by all_correct_or_all_wrong)
        assert log["erpo/frac_residual"] == 0.0 and log["erpo/frac_all_correct"] == 0.0
    if algorithm in ("grpo_ds", "greso"):
        assert log["ds/frac_dropped"] == 0.0 and log["ds/generation_rounds"] == 1.0  # never dropped
    if algorithm == "greso":
        # Recorded as None (a NaN mean): neither easy nor hard.
        assert trainer.part("greso").greso_state.traces and all(
            trace == [None] for trace in trainer.part("greso").greso_state.traces.values()
        )


@pytest.mark.unit
@pytest.mark.parametrize("on_mixed, expected", [("hold", 1.3), ("reset", 1.0), ("decay", 1.2)])
def test_erpo_rule_treats_an_unscored_group_as_mixed(on_mixed, expected):
    rule = dict(base=1.0, step=0.1, max_temperature=1.5, trigger="all_correct_or_all_wrong", on_mixed=on_mixed)
    assert erpo_next_temperature(1.3, None, G, **rule) == pytest.approx(expected)


# ---------------------------------------------------------------------------------------------------------------------
# 7. Empty completions
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.trainer
def test_completion_that_is_only_eos_gets_no_all_wrong_advantage(tiny_model_path, tmp_path):
    eos = AutoTokenizer.from_pretrained(tiny_model_path).eos_token_id
    # EOS first, every time: the completion text is empty, so the accuracy reward says wrong (no \boxed answer).
    trainer = make_trainer(
        "rl_zvp", tiny_model_path, tmp_path, accuracy_reward, generation_kwargs={"sequence_bias": [[[eos], 100.0]]}
    )
    inputs = generation_batch(trainer)
    texts = trainer.processing_class.batch_decode(inputs["completion_ids"], skip_special_tokens=True)
    assert texts == [""] * 8
    assert inputs["completion_mask"].sum(dim=1).tolist() == [1] * 8  # TRL keeps the EOS token itself
    assert inputs["zvp_signs"].tolist() == [-1.0] * 8  # all-wrong groups
    loss, grads = loss_and_grads(trainer, inputs)
    # max_k H_k - H_t over a one-token response is 0: no NaN/inf, no contribution to the loss.
    assert loss.item() == 0.0
    assert grads and all(torch.count_nonzero(g) == 0 for g in grads)


@pytest.mark.trainer
@pytest.mark.parametrize("reward_value", [0.0, 1.0])
def test_fully_masked_completions_contribute_nothing(tiny_model_path, tmp_path, reward_value):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_path)

    def constant(completions, **kwargs):
        return [reward_value] * len(completions)

    # No EOS within max_completion_length, and mask_truncated_completions: every row has zero loss tokens.
    trainer = make_trainer(
        "rl_zvp",
        tiny_model_path,
        tmp_path,
        constant,
        mask_truncated_completions=True,
        generation_kwargs={"suppress_tokens": [tokenizer.eos_token_id, tokenizer.pad_token_id]},
    )
    inputs = generation_batch(trainer)
    assert inputs["completion_mask"].sum().item() == 0
    assert inputs["zvp_signs"].tolist() == [1.0 if reward_value else -1.0] * 8
    loss, grads = loss_and_grads(trainer, inputs)
    assert loss.item() == 0.0 and all(torch.count_nonzero(g) == 0 for g in grads)


@pytest.mark.unit
def test_token_advantages_of_empty_rows_are_zero():
    entropies = torch.tensor([[0.7, 0.3, 0.1, 0.9], [0.4, 0.8, 0.2, 0.6], [0.5, 0.1, 0.3, 0.2]])
    mask = torch.tensor([[0, 0, 0, 0], [1, 0, 0, 0], [1, 1, 1, 0]])
    for sign in (-1.0, 1.0):
        out = rl_zvp_token_advantages(torch.zeros(3), torch.full((3,), sign), entropies, mask, alpha=0.1)
        assert torch.isfinite(out).all()
        assert torch.all(out[0] == 0) and torch.all(out[:, 3] == 0)  # no valid token, padding
        if sign < 0:
            assert torch.all(out[1] == 0)  # a one-token response is its own max
            torch.testing.assert_close(out[2, :3], -0.1 * (0.5 - entropies[2, :3]))


# ---------------------------------------------------------------------------------------------------------------------
# 8. Completions without a \boxed answer
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.trainer
def test_completions_without_a_boxed_answer_score_zero():
    texts = ["The answer is 5.", "", r"so \boxed{", [{"role": "assistant", "content": "5"}]]
    # Integer gold (in-process fast path) and LaTeX gold (math-verify helper process).
    assert accuracy_reward(texts, solution=["5"] * 4) == [0.0] * 4
    assert accuracy_reward(texts, solution=[r"\frac{1}{2}"] * 4) == [0.0] * 4
    assert boxed_format_reward(texts) == [0.0] * 4


# ---------------------------------------------------------------------------------------------------------------------
# 9. Pathological LaTeX
# ---------------------------------------------------------------------------------------------------------------------


def _process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a running process, from /proc/<pid>/stat (fields 14 and 15)."""
    with open(f"/proc/{pid}/stat") as file:
        fields = file.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _reaped_children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@pytest.mark.trainer
def test_pathological_latex_reward_returns_within_its_bound():
    # The budget is CPU time of the helper process (see math_verify_worker), so that is what is bounded here: wall
    # time stretches with the machine's load (a 0.5 s budget took 1.5 s of wall time beside another test worker).
    math_verify_accuracy(r"\frac12", r"\boxed{0.5}")  # the helper process is running: no start-up below
    helper = rewards_module._WORKER.pid
    helper_cpu_before = _process_cpu_seconds(helper)
    children_cpu_before = _reaped_children_cpu_seconds()
    timeouts_before = rewards_module._WORKER.cpu_timeouts
    start = time.perf_counter()
    assert batch_math_verify_accuracy(["5", "5"], [SLOW_ANSWER, r"\boxed{5}"], timeout=0.5) == [0.0, 1.0]
    wall = time.perf_counter() - start
    shutdown_math_verify_worker()  # reaps the helper (ended by its CPU limit, or killed now): its CPU time is counted
    helper_cpu = _reaped_children_cpu_seconds() - children_cpu_before
    # Python code is interrupted at the 0.5 s budget; native code (this power) at the kernel's limit, the budget rounded
    # up to the next whole second of the helper's CPU time: at most budget + 1 s on this answer, plus scheduler ticks.
    assert rewards_module._WORKER.cpu_timeouts == timeouts_before + 1  # the answer ran out of its budget
    assert 0.5 <= helper_cpu - helper_cpu_before <= 0.5 + 1.0 + 0.1  # it had its whole budget, and no more than that
    assert wall < 60  # far below a hang, on any load


TRAIN_STEP_SCRIPT = """
import json, math, sys, time
from datasets import Dataset
from zvp_trl import RLZVPConfig, RLZVPTrainer, make_accuracy_reward

model_path, output_dir, slow = sys.argv[1:4]
score = make_accuracy_reward("solution", timeout=1.0)
scores, seconds = [], []

def pathological_accuracy(completions, solution, **kwargs):
    texts = [slow if i % 4 == 0 else text for i, text in enumerate(completions)]  # one per group
    start = time.perf_counter()
    scores.extend(score(texts, solution=solution))
    seconds.append(time.perf_counter() - start)
    return scores[-len(texts):]

pathological_accuracy.__name__ = "pathological_accuracy"
args = RLZVPConfig(
    output_dir=output_dir, use_cpu=True, bf16=False, report_to="none", per_device_train_batch_size=8,
    num_generations=4, max_completion_length=6, max_steps=1, logging_steps=1, save_strategy="no", seed=0,
)
dataset = Dataset.from_dict({"prompt": [f"Q: {i}+1=?\\nA:" for i in range(8)], "solution": ["5"] * 8})
trainer = RLZVPTrainer(model=model_path, reward_funcs=pathological_accuracy, args=args, train_dataset=dataset)
trainer.train()
loss = next(e for e in trainer.state.log_history if "loss" in e)["loss"]
print("RESULT " + json.dumps({"scores": scores, "seconds": seconds, "loss": loss}))
"""


@pytest.mark.distributed
def test_training_step_scoring_pathological_latex_does_not_hang(tiny_model_path, tmp_path):
    command = [sys.executable, "-c", textwrap.dedent(TRAIN_STEP_SCRIPT), tiny_model_path, str(tmp_path), SLOW_ANSWER]
    # Generous: importing torch/trl and starting the math-verify helper twice on a busy 2-core machine.
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    line = next(line for line in result.stdout.splitlines() if line.startswith("RESULT "))
    outcome = json.loads(line.removeprefix("RESULT "))
    assert [outcome["scores"][i] for i in (0, 4)] == [0.0, 0.0]  # the pathological rows: timed out, scored 0
    assert math.isfinite(outcome["loss"])
    # Two 1 s timeouts plus restarts of the helper process (each imports sympy); far from a hang.
    assert outcome["seconds"][0] < 120


# ---------------------------------------------------------------------------------------------------------------------
# 10. A YAML recipe with an unknown key
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.unit
@pytest.mark.parametrize(
    "yaml_text, key",
    [
        ("algorithm: grpo\nlearning_rat: 3.0e-6\n", "learning_rat"),  # typo
        ("algorithm: grpo\nzvp_alpha: 0.2\n", "zvp_alpha"),  # a field of another algorithm's config
    ],
)
def test_yaml_recipe_with_an_unknown_key_is_an_error_naming_it(tmp_path, yaml_text, key):
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml_text)
    parser, _, _ = make_parser(["--config", str(path)])
    with pytest.raises(ValueError, match=rf"Unknown arguments from config file: \['--{key}'.*Please remove them"):
        parser.parse_args_and_config(["--config", str(path), "--output_dir", str(tmp_path / "out")])
