# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from cpu_config import cpu_config_kwargs
from datasets import Dataset
from recording import cloned, record_generations
from transformers import AutoModelForCausalLM, AutoTokenizer, LogitsProcessorList

from zvp_trl import (
    ERPOConfig,
    ERPODSConfig,
    ERPODSTrainer,
    ERPORLZVPConfig,
    ERPORLZVPTrainer,
    ERPOTrainer,
    PromptTemperatureHistory,
    erpo_next_temperature,
    prompt_id,
)
from zvp_trl.core.per_row_temperature import (
    PerRowTemperatureLogitsProcessor,
    generate_grouped_by_temperature,
    per_request_sampling_params,
    temperatures_for_continuations,
)


G = 4
RULE = dict(base=1.0, step=0.1, max_temperature=1.5)


# ----- the pure rule -------------------------------------------------------------------------------------------


@pytest.mark.unit
@pytest.mark.parametrize(
    "current, k, options, expected",
    [
        (1.0, 4, {}, 1.1),  # all-correct: one step up
        (1.45, 4, {}, 1.5),  # capped
        (1.5, 4, {}, 1.5),  # stays at the cap
        (1.3, 0, {}, 1.3),  # all-wrong: unchanged under the paper's trigger
        (1.3, 0, {"trigger": "all_correct_or_all_wrong"}, 1.4),
        (1.3, 2, {}, 1.3),  # mixed, hold
        (1.3, 2, {"on_mixed": "reset"}, 1.0),
        (1.3, 2, {"on_mixed": "decay"}, 1.2),
        (1.05, 2, {"on_mixed": "decay"}, 1.0),  # never below base
        (1.0, 1, {"on_mixed": "decay"}, 1.0),
    ],
)
def test_next_temperature_rule(current, k, options, expected):
    assert erpo_next_temperature(current, k, G, **RULE, **options) == pytest.approx(expected, abs=1e-12)


@pytest.mark.unit
def test_repeated_steps_land_on_exact_decimals():
    t = 1.0
    for _ in range(3):
        t = erpo_next_temperature(t, G, G, **RULE)
    assert t == 1.3  # not 1.3000000000000003


@pytest.mark.unit
@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(trigger="all_wrong"), "trigger"),
        (dict(on_mixed="drop"), "on_mixed"),
        (dict(num_correct=5), "outside"),
        (dict(max_temperature=0.9), "below base"),
    ],
)
def test_next_temperature_rejects_bad_arguments(kwargs, match):
    arguments = dict(current=1.0, num_correct=4, num_generations=G, **RULE)
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=match):
        erpo_next_temperature(**arguments)


@pytest.mark.unit
def test_history_updates_and_round_trips():
    history = PromptTemperatureHistory(**RULE)
    assert history.temperature("a") == 1.0
    sampled = history.update(["a", "b", "c"], [4, 2, 0], G)
    assert sampled == [1.0, 1.0, 1.0]
    assert history.temperatures == {"a": 1.1}  # only elevated prompts are stored
    assert history.update(["a", "a"], [4, 4], G) == [1.1, 1.2]  # a repeated id is updated in order
    assert history.temperature("a") == 1.3
    assert history.num_updates == {"a": 3, "b": 1, "c": 1}
    state = json.loads(json.dumps(history.state_dict()))
    restored = PromptTemperatureHistory(**RULE)
    restored.load_state_dict(state)
    assert restored.temperatures == history.temperatures and restored.num_updates == history.num_updates
    # A resumed run with a lower cap clips the stored temperatures into its range.
    lower = PromptTemperatureHistory(base=1.0, step=0.1, max_temperature=1.2)
    lower.load_state_dict(state)
    assert lower.temperature("a") == 1.2


@pytest.mark.distributed
def test_prompt_ids_are_stable_and_column_aware():
    row = {"prompt": [{"role": "user", "content": "2+2?"}], "id": 7}
    assert prompt_id(row) == prompt_id(json.loads(json.dumps(row)))
    assert len(prompt_id(row)) == 16 and prompt_id(row) != prompt_id({"prompt": "2+2?"})
    assert prompt_id(row, "id") == "7"
    with pytest.raises(KeyError, match="uid"):
        prompt_id(row, "uid")
    # Identical in a fresh interpreter (no salted hash()).
    code = "from zvp_trl import prompt_id; print(prompt_id({'prompt': 'Q: 1+1=?'}))"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert other == prompt_id({"prompt": "Q: 1+1=?"})


# ----- per-row sampling and log-probs --------------------------------------------------------------------------


@pytest.mark.trainer
def test_per_row_temperatures_in_one_generate_call(tiny_model_path):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_path)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_path)
    prompt = tokenizer(["Q: 12+7=?\nA:"] * 8, return_tensors="pt")
    greedy = model.generate(**prompt, do_sample=False, max_new_tokens=12)
    # Rows 0-3 near zero temperature (greedy), rows 4-7 very hot, in the same batch.
    factors = torch.tensor([1e-4] * 4 + [20.0] * 4)
    processors = LogitsProcessorList([PerRowTemperatureLogitsProcessor(factors)])
    torch.manual_seed(0)
    sampled = model.generate(
        **prompt, do_sample=True, temperature=1.0, top_k=0, max_new_tokens=12, logits_processor=processors
    )
    assert torch.equal(sampled[:4], greedy[:4])
    assert not any(torch.equal(sampled[i], greedy[i]) for i in range(4, 8))
    with pytest.raises(ValueError, match="8 rows"):
        model.generate(**tokenizer(["Q: 1=?"] * 3, return_tensors="pt"), do_sample=True, logits_processor=processors)


def make_config(tmp_path, config_class=ERPOConfig, **overrides):
    values = cpu_config_kwargs(tmp_path, num_generations=G, max_completion_length=8, epsilon_high=0.28)
    values.update(overrides)
    return config_class(**values)


PROMPTS = [f"Q: {i}+1=?\nA:" for i in range(4)]


def make_trainer(tiny_model_path, tmp_path, reward, trainer_class=ERPOTrainer, config_class=ERPOConfig, **overrides):
    dataset = Dataset.from_dict({"prompt": PROMPTS, "kind": ["easy", "easy", "hard", "mixed"]})
    return trainer_class(
        model=tiny_model_path,
        reward_funcs=reward,
        args=make_config(tmp_path, config_class, **overrides),
        train_dataset=dataset,
    )


def reward_by_kind(completions, kind, **kwargs):
    """easy: always right; hard: always wrong; mixed: 1, 0, 1, 0 within the group."""
    return [{"easy": 1.0, "hard": 0.0}.get(k, float(i % 2 == 0)) for i, k in enumerate(kind)]


def reference_logps(model, input_ids, attention_mask, logits_to_keep, temperatures):
    with torch.no_grad():
        logits = model(input_ids=input_ids, attention_mask=attention_mask).logits[:, -logits_to_keep - 1 : -1]
    logits = logits / temperatures[:, None, None]
    logps = torch.log_softmax(logits.float(), dim=-1)
    targets = input_ids[:, -logits_to_keep:]
    token_logps = logps.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    entropy = -(logps.exp() * logps).sum(-1)
    return token_logps, entropy


@pytest.mark.trainer
def test_logprobs_and_entropies_at_per_row_temperatures(tiny_model_path, tmp_path):
    trainer = make_trainer(tiny_model_path, tmp_path, reward_by_kind, temperature=0.9, erpo_max_temperature=2.0)
    model = trainer.model
    input_ids = torch.randint(2, 40, (6, 10))
    attention_mask = torch.ones_like(input_ids)
    attention_mask[0, :3] = 0  # left padding on one row
    temperatures = torch.tensor([0.9, 1.2, 2.0, 0.9, 1.5, 1.0])
    trainer.zvp_step.logprob_temperatures = temperatures
    # batch_size=4: TRL's chunking splits the 6 rows 4 + 2; the temperatures must follow the rows.
    logps, entropies, _ = trainer._get_per_token_logps_and_entropies(
        model, input_ids, attention_mask, 5, batch_size=4, compute_entropy=True
    )
    trainer.zvp_step.logprob_temperatures = None
    expected_logps, expected_entropy = reference_logps(model, input_ids, attention_mask, 5, temperatures)
    torch.testing.assert_close(logps, expected_logps, atol=2e-5, rtol=1e-5)
    torch.testing.assert_close(entropies, expected_entropy, atol=2e-5, rtol=1e-5)
    # Without per-row temperatures, everything is at the base temperature, as in TRL.
    base_logps, _, _ = trainer._get_per_token_logps_and_entropies(model, input_ids, attention_mask, 5)
    torch.testing.assert_close(
        base_logps, reference_logps(model, input_ids, attention_mask, 5, torch.full((6,), 0.9))[0]
    )
    # Gradients flow through the scaled hidden states.
    trainer.zvp_step.logprob_temperatures = temperatures
    logps, _, _ = trainer._get_per_token_logps_and_entropies(model, input_ids, attention_mask, 5)
    trainer.zvp_step.logprob_temperatures = None
    logps.sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


@pytest.mark.trainer
def test_models_with_a_biased_head_are_refused_for_sampling_logprobs(tiny_model_path, tmp_path):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_path)
    head = model.get_output_embeddings()
    biased = torch.nn.Linear(head.in_features, head.out_features, bias=True)
    model.set_output_embeddings(biased)
    model.config.tie_word_embeddings = False
    dataset = Dataset.from_dict({"prompt": PROMPTS})
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_path)
    with pytest.raises(ValueError, match="erpo_logprob_temperature='base'"):
        ERPOTrainer(
            model, reward_by_kind, args=make_config(tmp_path), train_dataset=dataset, processing_class=tokenizer
        )
    trainer = ERPOTrainer(
        model,
        reward_by_kind,
        args=make_config(tmp_path, erpo_logprob_temperature="base"),
        train_dataset=dataset,
        processing_class=tokenizer,
    )
    assert trainer._row_scaler is None


# ----- the trainer ---------------------------------------------------------------------------------------------


def generation_batch(trainer, kinds=(0, 1, 2, 3)):
    return [trainer.train_dataset[i] for i in kinds for _ in range(G)]


@pytest.mark.trainer
def test_generation_uses_each_prompt_history_and_updates_it(tiny_model_path, tmp_path):
    trainer = make_trainer(tiny_model_path, tmp_path, reward_by_kind, per_device_train_batch_size=16)
    trainer.model.train()
    rows = generation_batch(trainer)
    ids = [prompt_id({"prompt": p}) for p in PROMPTS]
    trainer.part("erpo").history.temperatures[ids[1]] = 1.5  # easy prompt, already at the cap
    trainer.part("erpo").history.temperatures[ids[3]] = 1.2  # mixed prompt, elevated
    seen = {}
    original = ERPOTrainer._generate_single_turn

    def spy(self, prompt_ids, *args, **kwargs):
        seen["temperatures"] = list(self.zvp_step.generation.sampling_temperatures)
        seen["logprob_temperatures"] = self.zvp_step.logprob_temperatures.tolist()
        return original(self, prompt_ids, *args, **kwargs)

    trainer._generate_single_turn = spy.__get__(trainer)
    output = trainer._generate_and_score_completions(rows)
    expected = [1.0] * 4 + [1.5] * 4 + [1.0] * 4 + [1.2] * 4
    assert seen["temperatures"] == expected
    assert seen["logprob_temperatures"] == pytest.approx(expected)
    assert output["erpo_temperatures"].tolist() == pytest.approx(expected)
    # easy 1.0 -> 1.1; easy at cap stays 1.5; hard unchanged (base, not stored); mixed holds 1.2.
    assert trainer.part("erpo").history.temperatures == {ids[0]: 1.1, ids[1]: 1.5, ids[3]: 1.2}
    metrics = trainer._metrics["train"]
    assert metrics["erpo/temperature_mean"] == [pytest.approx((1.0 + 1.5 + 1.0 + 1.2) / 4)]
    assert metrics["erpo/temperature_max"] == [1.5]
    assert metrics["erpo/frac_elevated"] == [0.5]
    assert metrics["erpo/frac_reactivated"] == [0.5]  # of the 2 elevated prompts, the mixed one
    assert metrics["erpo/frac_residual"] == [0.75] and metrics["erpo/frac_all_correct"] == [0.5]
    # Old log-probs are not needed here (one iteration, no vLLM), so the loss recomputes them at the row temperatures.
    assert "old_per_token_logps" not in output


@pytest.mark.trainer
def test_continuous_batching_generates_once_per_temperature(tiny_model_path, tmp_path):
    """transformers' `generate_batch` takes one generation config: one call per distinct temperature, each at that
    temperature, and the completions come back in the rows' order. TRL's deprecated alias `use_transformers_paged`
    turns into the same setting (before, ERPO refused both)."""
    assert make_config(tmp_path, use_transformers_paged=True).use_transformers_continuous_batching
    trainer = make_trainer(
        tiny_model_path, tmp_path, reward_by_kind, per_device_train_batch_size=16, max_completion_length=4,
        use_transformers_continuous_batching=True,
        # A paged cache for these 16 short rows: TRL's default sizes it at half the free memory, which on a CPU means
        # filling gigabytes at every call (30 s of this test's 41 s).
        transformers_continuous_batching_config={"num_blocks": 64},
    )  # fmt: skip
    trainer.model.train()
    ids = [prompt_id({"prompt": p}) for p in PROMPTS]
    trainer.part("erpo").history.temperatures[ids[1]] = 1.5
    trainer.part("erpo").history.temperatures[ids[3]] = 1.2
    model_class = type(trainer.accelerator.unwrap_model(trainer.model))
    original, calls = model_class.generate_batch, []

    def recording(model, inputs, generation_config=None, **kwargs):
        outputs = original(model, inputs, generation_config=generation_config, **kwargs)
        calls.append((generation_config.temperature, [list(x) for x in inputs], list(outputs.values())))
        return outputs

    model_class.generate_batch = recording
    try:
        output = trainer._generate_and_score_completions(generation_batch(trainer))
    finally:
        model_class.generate_batch = original
    assert [(t, len(inputs)) for t, inputs, _ in calls] == [(1.0, 8), (1.5, 4), (1.2, 4)]
    assert trainer.generation_config.temperature == 1.0  # TRL's own config is left as it was
    # Rows 0-3 and 8-11 at 1.0 (first call), 4-7 at 1.5, 12-15 at 1.2: each row's completion is its call's output.
    order = [(0, i) for i in range(4)] + [(1, i) for i in range(4)] + [(0, i) for i in range(4, 8)]
    order += [(2, i) for i in range(4)]
    mask = output["completion_mask"].bool()
    for row, (call, index) in enumerate(order):
        expected = list(calls[call][2][index].generated_tokens)
        assert output["completion_ids"][row][mask[row]].tolist() == expected[: int(mask[row].sum())], row
    assert output["erpo_temperatures"].tolist() == pytest.approx([1.0] * 4 + [1.5] * 4 + [1.0] * 4 + [1.2] * 4)


@pytest.mark.trainer
def test_ra_gives_all_correct_groups_a_negative_advantage(tiny_model_path, tmp_path):
    trainer = make_trainer(
        tiny_model_path, tmp_path, reward_by_kind, per_device_train_batch_size=16, erpo_ra_advantage=0.05
    )
    trainer.model.train()
    output = trainer._generate_and_score_completions(generation_batch(trainer))
    advantages = output["advantages"].view(4, G)
    assert torch.all(advantages[0] == -0.05) and torch.all(advantages[1] == -0.05)  # all-correct
    assert torch.all(advantages[2] == 0)  # all-wrong: untouched
    assert torch.all(advantages[3] != 0)  # mixed: GRPO's advantages
    assert trainer._metrics["train"]["erpo/frac_ra"] == [0.5]


@pytest.mark.trainer
def test_toy_run_elevates_prompts_up_to_the_cap_and_resumes(tiny_model_path, tmp_path):
    overrides = dict(
        max_steps=6, save_strategy="steps", save_steps=3, erpo_temperature_step=0.3, erpo_max_temperature=1.5
    )
    trainer = make_trainer(tiny_model_path, tmp_path, reward_by_kind, **overrides)
    trainer.train()
    logs = [entry for entry in trainer.state.log_history if "erpo/temperature_max" in entry]
    assert len(logs) == 6
    maxima = [entry["erpo/temperature_max"] for entry in logs]
    assert max(maxima) == 1.5 and all(1.0 <= m <= 1.5 for m in maxima)
    assert any(entry["erpo/frac_elevated"] > 0 for entry in logs)
    # Every prompt is drawn once per 2 steps; the easy ones are sampled at 1.0, 1.3, 1.5 (1.6 capped) and end at the
    # cap; the hard one stays at base.
    assert sorted(set(maxima)) == [1.0, 1.3, 1.5]
    easy = [prompt_id({"prompt": p}) for p in PROMPTS[:2]]
    assert [trainer.part("erpo").history.temperature(pid) for pid in easy] == [1.5, 1.5]
    assert trainer.part("erpo").history.temperature(prompt_id({"prompt": PROMPTS[2]})) == 1.0
    # The checkpoint holds the history at step 3; resuming from it reproduces the uninterrupted run's history.
    saved = json.loads((tmp_path / "checkpoint-3" / "zvp_state.json").read_text())["erpo_history"]
    final = trainer.part("erpo").history.state_dict()
    resumed = make_trainer(
        tiny_model_path, tmp_path / "resumed", reward_by_kind, **dict(overrides, save_strategy="no")
    )
    resumed.train(resume_from_checkpoint=str(tmp_path / "checkpoint-3"))
    assert saved["num_updates"] and sum(saved["num_updates"].values()) == 3 * 2  # 2 groups per step
    assert resumed.part("erpo").history.state_dict() == final


@pytest.mark.trainer
def test_combined_erpo_rl_zvp_run(tiny_model_path, tmp_path):
    trainer = make_trainer(
        tiny_model_path,
        tmp_path,
        reward_by_kind,
        trainer_class=ERPORLZVPTrainer,
        config_class=ERPORLZVPConfig,
        max_steps=4,
        erpo_temperature_step=0.25,
    )
    trainer.train()
    logs = [entry for entry in trainer.state.log_history if "erpo/temperature_max" in entry]
    assert len(logs) == 4
    assert max(entry["erpo/temperature_max"] for entry in logs) > 1.0
    assert any(entry["zvp/frac_zv_positive"] > 0 for entry in logs)
    # RL-ZVP shaped the all-correct groups (sampled at raised temperatures).
    assert any((entry["zvp/adv_mean_positive"] or 0) > 0 for entry in logs)
    trainer.create_model_card(model_name="tiny-erpo-rl-zvp")
    card = (tmp_path / "README.md").read_text()
    assert "ERPO + RL-ZVP" in card and "2511.04800" in card and "2509.21880" in card


def run_erpo_ds(tiny_model_path, tmp_path, **overrides):
    # 2 groups per optimizer batch, rounds of 4 prompts. The dataloader and the trainer's sampler both start at prompt
    # 0 (no shuffling): round 1 holds the two easy prompts twice, later rounds hard, mixed, easy, easy.
    trainer = make_trainer(
        tiny_model_path, tmp_path, reward_by_kind, trainer_class=ERPODSTrainer, config_class=ERPODSConfig,
        shuffle_dataset=False, ds_oversample_factor=2.0, ds_max_generation_rounds=0, ds_carry_over=False, **overrides,
    )  # fmt: skip
    batches = record_generations(trainer, cloned("advantages", "erpo_temperatures"))
    trainer.train()
    return trainer, batches


@pytest.mark.trainer
def test_erpo_on_dynamic_sampling_drops_groups_without_signal(tiny_model_path, tmp_path):
    trainer, batches = run_erpo_ds(tiny_model_path, tmp_path)
    assert isinstance(trainer, ERPODSTrainer) and trainer.args.ds_fill_scope == "global"
    # Round 1: 4 easy groups, all dropped; rounds 2 and 3 each keep the mixed group only.
    assert trainer.part("grpo_ds").ds_stats.state_dict() == {
        "rounds": 3, "generated_groups": 12, "dropped_groups": 10, "discarded_groups": 0, "exhausted_steps": 0,
    }  # fmt: skip
    (batch,) = batches
    assert batch["advantages"].numel() == 2 * G and bool((batch["advantages"] != 0).all())  # the mixed groups
    assert batch["erpo_temperatures"].tolist() == [1.0] * (2 * G)  # a mixed prompt is never raised
    # Every rolled-out group updated the history, dropped ones included: each easy prompt was all-correct 4 times
    # (1.0 -> 1.4), the hard one stays at base.
    ids = [prompt_id({"prompt": p}) for p in PROMPTS]
    assert trainer.part("erpo").history.num_updates == {ids[0]: 4, ids[1]: 4, ids[2]: 2, ids[3]: 2}
    assert trainer.part("erpo").history.temperatures == {ids[0]: pytest.approx(1.4), ids[1]: pytest.approx(1.4)}
    trainer.create_model_card(model_name="tiny-erpo-ds")
    card = (tmp_path / "README.md").read_text()
    assert "ERPO + GRPO-DS" in card and "2511.04800" in card and "2503.14476" in card


@pytest.mark.trainer
def test_erpo_ra_on_dynamic_sampling_keeps_all_correct_groups(tiny_model_path, tmp_path):
    trainer, batches = run_erpo_ds(tiny_model_path, tmp_path, erpo_ra_advantage=0.1)
    # RA gives the easy groups of round 1 an advantage: they fill the batch in one round.
    assert trainer.part("grpo_ds").ds_stats.state_dict() == {
        "rounds": 1, "generated_groups": 4, "dropped_groups": 0, "discarded_groups": 2, "exhausted_steps": 0,
    }  # fmt: skip
    (batch,) = batches
    assert batch["advantages"].tolist() == pytest.approx([-0.1] * (2 * G))
    assert batch["erpo_temperatures"].tolist() == [1.0] * (2 * G)  # sampled before any update


@pytest.mark.trainer
def test_combined_loss_uses_entropy_at_the_row_temperature(tiny_model_path, tmp_path):
    trainer = make_trainer(
        tiny_model_path,
        tmp_path,
        reward_by_kind,
        trainer_class=ERPORLZVPTrainer,
        config_class=ERPORLZVPConfig,
        per_device_train_batch_size=16,
        zvp_alpha=0.5,
    )
    trainer.model.train()
    trainer.part("erpo").history.temperatures[prompt_id({"prompt": PROMPTS[0]})] = 1.4
    inputs = trainer._generate_and_score_completions(generation_batch(trainer))
    seen = {}
    part = trainer.part("rl_zvp")
    original = part.token_advantages

    def spy(loss, loss_inputs, entropies):
        seen["entropies"] = entropies.detach().clone()
        return original(loss, loss_inputs, entropies)

    part.token_advantages = spy
    trainer.current_gradient_accumulation_steps = 1  # set by Trainer.train, which this test does not run
    trainer._compute_loss(trainer.model, inputs)
    input_ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], dim=1)
    mask = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1)
    T = inputs["completion_ids"].size(1)
    _, expected = reference_logps(trainer.model, input_ids, mask, T, inputs["erpo_temperatures"])
    completion_mask = inputs["completion_mask"].bool()
    torch.testing.assert_close(seen["entropies"][completion_mask], expected[completion_mask], atol=2e-5, rtol=1e-5)


@pytest.mark.unit
@pytest.mark.parametrize(
    "config_class, overrides, match",
    [
        (ERPOConfig, dict(temperature=1.0, erpo_max_temperature=0.8), "erpo_max_temperature=0.8 is below"),
        (ERPOConfig, dict(erpo_temperature_step=0.0), "erpo_temperature_step"),
        (ERPOConfig, dict(erpo_trigger="all_wrong"), "erpo_trigger"),
        (ERPOConfig, dict(erpo_on_mixed="drop"), "erpo_on_mixed"),
        (ERPOConfig, dict(erpo_ra_advantage=-0.1), "erpo_ra_advantage"),
        (ERPOConfig, dict(erpo_logprob_temperature="train"), "erpo_logprob_temperature"),
        (ERPORLZVPConfig, dict(erpo_ra_advantage=0.1), "zvp_use_positive=False"),
        (ERPORLZVPConfig, dict(zvp_alpha=-0.1), "zvp_alpha"),
    ],
)
def test_bad_configurations_raise(tmp_path, config_class, overrides, match):
    with pytest.raises(ValueError, match=match):
        make_config(tmp_path, config_class, **overrides)


def tool_trainer(tool_model_path, tmp_path, **tool_kwargs):
    dataset = Dataset.from_dict(
        {
            "prompt": [[{"role": "user", "content": "What is 3 times 4?"}], [{"role": "user", "content": "Hello."}]],
            "kind": ["easy", "mixed"],
        }
    )
    args = make_config(tmp_path, per_device_train_batch_size=8, max_completion_length=96, shuffle_dataset=False)
    return ERPOTrainer(
        model=tool_model_path, reward_funcs=reward_by_kind, args=args, train_dataset=dataset, **tool_kwargs
    )


@pytest.mark.trainer
@pytest.mark.parametrize("kind", ["tools", "environment_factory"])
def test_tool_calls_keep_each_row_temperature(tool_model_path, tmp_path, kind):
    from tool_model import MultiplyEnvironment, multiply, scripted_generate

    tool_kwargs = {"tools": [multiply]} if kind == "tools" else {"environment_factory": MultiplyEnvironment}
    trainer = tool_trainer(tool_model_path, tmp_path, **tool_kwargs)
    hot = prompt_id(trainer.train_dataset[0])
    trainer.part("erpo").history.temperatures[hot] = 1.3  # the tool-calling prompt is elevated
    calls = []
    trainer.model.generate = scripted_generate(trainer.processing_class, calls, tool_rows=G)
    batches = record_generations(
        trainer, lambda output: {k: output[k].tolist() for k in ("erpo_temperatures", "tool_mask")}
    )
    trainer.train()

    def factors(call):
        (processor,) = [p for p in call["logits_processor"] if isinstance(p, PerRowTemperatureLogitsProcessor)]
        return processor.factors.tolist()

    # First turn: 4 rows of the hot prompt, 4 at base. The tool loop continues the 4 rows that called the tool, each
    # at its prompt's temperature (1.3), not at the base temperature.
    assert [call["rows"] for call in calls] == [2 * G, G]
    assert factors(calls[0]) == pytest.approx([1.3] * G + [1.0] * G)
    assert factors(calls[1]) == pytest.approx([1.3] * G)
    # The tool ran (its result tokens are masked out of the loss), and the batch carries each row's temperature.
    (batch,) = batches
    assert all(0 in mask for mask in batch["tool_mask"][:G]) and all(0 not in m for m in batch["tool_mask"][G:])
    assert batch["erpo_temperatures"] == pytest.approx([1.3] * G + [1.0] * G)
    (log,) = [entry for entry in trainer.state.log_history if "tools/call_frequency" in entry]
    assert log["tools/call_frequency"] == pytest.approx(0.5) and log["tools/failure_frequency"] == 0.0
    # The hot prompt came back all-correct: raised again.
    assert trainer.part("erpo").history.temperatures[hot] == pytest.approx(1.4)


@pytest.mark.trainer
def test_environment_owned_data_keeps_a_history_per_reset_prompt(tool_model_path, tmp_path):
    # No train_dataset: the environment's reset() supplies the prompt, which identifies the row by its token ids.
    from tool_model import TaskEnvironment, scripted_generate

    def always_right(completions, **kwargs):
        return [1.0] * len(completions)

    args = make_config(tmp_path, per_device_train_batch_size=8, max_completion_length=96, max_steps=2)
    trainer = ERPOTrainer(
        model=tool_model_path, reward_funcs=always_right, args=args, environment_factory=TaskEnvironment
    )
    calls = []
    trainer.model.generate = scripted_generate(trainer.processing_class, calls, tool_rows=0)
    trainer.train()
    # One prompt (the task reset() returns), 2 all-correct groups per step, each raising it by 0.1: sampled at 1.0 in
    # step 1, at 1.2 in step 2; now 1.4.
    ((pid, temperature),) = trainer.part("erpo").history.temperatures.items()
    assert pid.startswith("tokens:") and temperature == pytest.approx(1.4)
    assert trainer.part("erpo").history.num_updates == {pid: 2 * 8 // G}
    processors = [[p for p in c["logits_processor"] if isinstance(p, PerRowTemperatureLogitsProcessor)] for c in calls]
    assert processors[0] == []  # step 1: every row at the base temperature
    assert processors[1][0].factors.tolist() == pytest.approx([1.2] * 8)


@pytest.mark.unit
def test_continuation_rows_take_their_prompt_temperature():
    prompts = [[1, 2], [1, 2], [1, 2, 3], [7]]
    temperatures = [1.2, 1.2, 1.5, 1.0]
    rows = [[1, 2, 9, 9], [1, 2, 3, 4], [7, 1, 2], [1, 2]]
    # [1, 2, 3, 4] starts with both [1, 2] and [1, 2, 3]: the longest prompt is its own.
    assert temperatures_for_continuations(rows, prompts, temperatures) == [1.2, 1.5, 1.0, 1.2]
    with pytest.raises(RuntimeError, match="does not start with any prompt"):
        temperatures_for_continuations([[5, 5]], prompts, temperatures)
    with pytest.raises(RuntimeError, match="identical prompt tokens"):
        temperatures_for_continuations([[1, 2]], [[1, 2], [1, 2]], [1.0, 1.1])


@pytest.mark.trainer
def test_model_card_names_erpo(tiny_model_path, tmp_path):
    trainer = make_trainer(tiny_model_path, tmp_path, reward_by_kind)
    trainer.create_model_card(model_name="tiny-erpo")
    card = (tmp_path / "README.md").read_text()
    assert "ERPO" in card and "2511.04800" in card and "Explore Data Left Behind" in card


# ----- vLLM request building (vLLM cannot run on these CPU machines) -------------------------------------------


class FakeSamplingParams:
    def __init__(self, temperature=1.0, top_p=1.0, n=1):
        self.temperature, self.top_p, self.n = temperature, top_p, n

    def clone(self):
        return FakeSamplingParams(self.temperature, self.top_p, self.n)


@pytest.mark.unit
def test_colocate_gets_one_sampling_params_per_row():
    shared = FakeSamplingParams(temperature=1.0, top_p=0.7)
    requests = per_request_sampling_params(shared, [1.0, 1.0, 1.3, 1.3])
    assert [r.temperature for r in requests] == [1.0, 1.0, 1.3, 1.3]
    assert all(r.top_p == 0.7 and r.n == 1 and r is not shared for r in requests)
    assert shared.temperature == 1.0


def fake_server_generate(calls):
    def generate(prompts, n=1, temperature=1.0, **kwargs):
        calls.append((list(prompts), temperature, kwargs))
        completions = [[p[0], j, int(temperature * 10)] for p in prompts for j in range(n)]
        return {
            "prompt_ids": [list(p) for p in prompts],
            "completion_ids": completions,
            "logprobs": [[-temperature] * 3 for _ in completions],
            "logprob_token_ids": [[c[0]] * 3 for c in completions],
        }

    return generate


@pytest.mark.unit
def test_server_requests_are_grouped_by_temperature_and_reordered():
    calls = []
    prompts = [[10], [11], [12], [13]]
    output = generate_grouped_by_temperature(
        fake_server_generate(calls), prompts, [1.0, 1.2, 1.0, 1.5], 2, top_p=0.9, temperature=1.0
    )
    # One request per temperature (sent concurrently, so in any order).
    assert sorted(((c[0], c[1]) for c in calls), key=lambda c: c[1]) == [
        ([[10], [12]], 1.0),
        ([[11]], 1.2),
        ([[13]], 1.5),
    ]
    assert all(c[2] == {"top_p": 0.9} for c in calls)
    assert output["prompt_ids"] == prompts
    assert output["completion_ids"] == [
        [10, 0, 10], [10, 1, 10], [11, 0, 12], [11, 1, 12], [12, 0, 10], [12, 1, 10], [13, 0, 15], [13, 1, 15]
    ]  # fmt: skip
    assert [lp[0] for lp in output["logprobs"]] == [-1.0, -1.0, -1.2, -1.2, -1.0, -1.0, -1.5, -1.5]
    assert [ids[0] for ids in output["logprob_token_ids"]] == [10, 10, 11, 11, 12, 12, 13, 13]


@pytest.mark.unit
def test_server_requests_of_different_temperatures_run_concurrently():
    """All requests are in flight at once: each waits at a barrier that opens only when every temperature's request
    has arrived (sequential requests would time out there)."""
    import threading

    barrier, calls = threading.Barrier(3, timeout=10), []
    inner = fake_server_generate(calls)

    def generate(**kwargs):
        barrier.wait()
        return inner(**kwargs)

    output = generate_grouped_by_temperature(generate, [[10], [11], [12]], [1.0, 1.2, 1.5], 1)
    assert output["completion_ids"] == [[10, 0, 10], [11, 0, 12], [12, 0, 15]]
    assert sorted(c[1] for c in calls) == [1.0, 1.2, 1.5]


@pytest.mark.unit
def test_a_failed_server_request_fails_the_call_with_its_error():
    calls = []
    inner = fake_server_generate(calls)

    def generate(**kwargs):
        if kwargs["temperature"] == 1.2:
            raise RuntimeError("Request failed: 500, the server's message")
        return inner(**kwargs)

    with pytest.raises(RuntimeError, match="the server's message"):
        generate_grouped_by_temperature(generate, [[10], [11], [12]], [1.0, 1.2, 1.5], 1)
    assert sorted(c[1] for c in calls) == [1.0, 1.5]  # the other requests were sent and returned


@pytest.mark.unit
def test_server_features_go_with_their_prompts():
    """Multimodal prompts: each request gets the features (images) of its own prompts, not the whole list."""
    calls = []
    features = [{"image": "a"}, {"image": "b"}, None, {"image": "d"}]
    generate_grouped_by_temperature(
        fake_server_generate(calls), [[10], [11], [12], [13]], [1.0, 1.2, 1.0, 1.2], 1, features=features
    )
    by_temperature = {temperature: (prompts, kwargs["features"]) for prompts, temperature, kwargs in calls}
    assert by_temperature == {
        1.0: ([[10], [12]], [{"image": "a"}, None]),
        1.2: ([[11], [13]], [{"image": "b"}, {"image": "d"}]),
    }
    with pytest.raises(ValueError, match="4 prompts but 3 features"):
        generate_grouped_by_temperature(
            fake_server_generate([]), [[10], [11], [12], [13]], [1.0] * 4, 1, features=features[:3]
        )


@pytest.mark.unit
def test_trainer_wraps_the_vllm_server_and_colocate_calls():
    """`_vllm_per_row_temperatures` on stand-ins for TRL's vLLM objects (single process)."""
    calls = []
    client = SimpleNamespace(generate=fake_server_generate(calls))
    fake = SimpleNamespace(
        vllm_mode="server",
        vllm_generation=SimpleNamespace(vllm_client=client),
        accelerator=SimpleNamespace(is_main_process=True),
    )
    rows = [1.0, 1.0, 1.3, 1.3]  # two groups of G=2
    with ERPOTrainer._vllm_per_row_temperatures(fake, rows, 2):
        output = client.generate(prompts=[[5], [6]], n=2, temperature=1.0, top_p=1.0)
    assert sorted(((c[0], c[1]) for c in calls), key=lambda c: c[1]) == [([[5]], 1.0), ([[6]], 1.3)]
    assert output["completion_ids"] == [[5, 0, 10], [5, 1, 10], [6, 0, 13], [6, 1, 13]]
    assert "generate" not in vars(client) or client.generate is not None  # restored afterwards

    seen = {}

    class FakeLLM:
        def generate(self, prompts, sampling_params=None, use_tqdm=False):
            seen["params"] = sampling_params
            return ["out"] * len(prompts)

    llm = FakeLLM()
    fake = SimpleNamespace(vllm_mode="colocate", vllm_generation=SimpleNamespace(llm=llm, tensor_parallel_size=1))
    with ERPOTrainer._vllm_per_row_temperatures(fake, [1.0, 1.4], 1):
        llm.generate([{"prompt_token_ids": [1]}, {"prompt_token_ids": [2]}], sampling_params=FakeSamplingParams())
        with pytest.raises(RuntimeError, match="2 row temperatures for 1"):
            llm.generate([{"prompt_token_ids": [1]}], sampling_params=FakeSamplingParams())
    assert [p.temperature for p in seen["params"]] == [1.0, 1.4]
    assert "generate" not in vars(llm)  # the instance patch is removed


# ----- two processes -------------------------------------------------------------------------------------------


@pytest.mark.distributed
def test_history_identical_on_two_processes(tiny_model_path, tmp_path):
    script = Path(__file__).parent / "scripts" / "erpo_two_processes.py"
    env = dict(os.environ, ZVP_TEST_MODEL=tiny_model_path, ZVP_TEST_OUT=str(tmp_path))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rank0 = json.loads((tmp_path / "history_rank0.json").read_text())
    rank1 = json.loads((tmp_path / "history_rank1.json").read_text())
    assert rank0 == rank1
    # Prompt A (all-correct, split over both ranks' rows) climbed once per step; C (all-wrong) stayed at base.
    a, c = prompt_id({"prompt": "Q: 1+1=?\nA:"}), prompt_id({"prompt": "Q: 3+3=?\nA:"})
    assert rank0["temperatures"][a] == pytest.approx(1.0 + 0.1 * rank0["num_updates"][a])
    assert c not in rank0["temperatures"] and rank0["num_updates"][c] >= 1


@pytest.mark.trainer
@pytest.mark.parametrize("setting", ["lora", "gradient_checkpointing"])
def test_per_row_logprobs_under_lora_and_gradient_checkpointing(tiny_model_path, tmp_path, setting):
    from peft import LoraConfig

    kwargs, overrides = {}, {}
    if setting == "lora":
        kwargs["peft_config"] = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"])
    else:
        overrides["gradient_checkpointing"] = True
    dataset = Dataset.from_dict({"prompt": PROMPTS, "kind": ["easy", "easy", "hard", "mixed"]})
    trainer = ERPOTrainer(
        model=tiny_model_path,
        reward_funcs=reward_by_kind,
        args=make_config(tmp_path, max_steps=3, **overrides),
        train_dataset=dataset,
        **kwargs,
    )
    model = trainer.model
    model.train()
    input_ids = torch.randint(2, 40, (4, 9))
    attention_mask = torch.ones_like(input_ids)
    temperatures = torch.tensor([1.0, 1.3, 1.5, 1.1])
    trainer.zvp_step.logprob_temperatures = temperatures
    logps, _, _ = trainer._get_per_token_logps_and_entropies(model, input_ids, attention_mask, 4)
    trainer.zvp_step.logprob_temperatures = None
    expected, _ = reference_logps(model, input_ids, attention_mask, 4, temperatures)
    torch.testing.assert_close(logps.detach(), expected, atol=2e-5, rtol=1e-5)
    logps.sum().backward()
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in trainable)
    model.zero_grad()
    trainer.train()  # a full run, the easy prompts sampled at raised temperatures from the second epoch on
    assert trainer.part("erpo").history.temperatures


@pytest.mark.unit
def test_per_row_sampling_agreement_by_hand():
    from zvp_trl.core.per_row_temperature import per_row_sampling_agreement

    logps = torch.tensor([[-1.0, -2.0, -3.0], [-0.5, -0.5, 0.0]])
    sampling = torch.tensor([[-1.5, -2.0, float("nan")], [-0.5, -1.0, 0.0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    stats = per_row_sampling_agreement(logps, sampling, mask)
    # Row 0: tokens 0 and 1 (token 2 has no sampling log-prob): diffs 0.5 and 0. Row 1: diffs 0 and 0.5.
    expected_ratio = (torch.exp(torch.tensor(0.5)) + 1) / 2
    assert stats[0, 0].item() == pytest.approx(expected_ratio.item())
    assert stats[0, 1].item() == pytest.approx(0.25)
    assert stats[1, 0].item() == pytest.approx(expected_ratio.item())
    assert stats[1, 1].item() == pytest.approx(0.25)
    empty = per_row_sampling_agreement(logps[:1], sampling[:1], torch.zeros(1, 3))
    assert torch.isnan(empty).all()
