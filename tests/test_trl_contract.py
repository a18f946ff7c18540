# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""The contracts zvp_trl keeps with TRL's `GRPOTrainer` (and transformers' `Trainer` under it), one test per hook.

`zvp_trl/core/adapter.py` lists in its hook table every TRL method the adapter overrides. For each, this file checks
what the adapter relies on: the signature of TRL's method (the parameters it passes or reads, in order), and the
shape and keys of what TRL's method returns or reads, recorded in a real run of the tiny model. A TRL release that
changes one of them fails here, in a test named after the hook, instead of deep inside a training run.
Also checked: the attributes of TRL's trainer the parts read, and the vLLM generation objects per-row temperatures
wrap (their signatures; their outputs are checked by tests_vllm against a real vLLM).
"""

import inspect
import json
import os
import re
from pathlib import Path

import pytest
import torch
from datasets import Dataset
from trl import GRPOTrainer
from trl_support import LOSS_RUNS_HERE, TRL_STOPS_AT, WHY_NOT

import zvp_trl
from zvp_trl.core.adapter import GRPOBaselineTrainer, ZVPBaseTrainer
from zvp_trl.core.config import GRPOBaselineConfig


EXPORTED_TRAINERS = [getattr(zvp_trl, name) for name in zvp_trl.__all__ if name.endswith("Trainer")]
BASE = Path(__file__).resolve().parents[1] / "zvp_trl" / "core" / "adapter.py"

# hook -> (static?, the leading parameters of TRL's method the adapter relies on, in order)
SIGNATURES = {
    "_generate_and_score_completions": (False, ["self", "inputs"]),
    "_calculate_rewards": (False, ["self", "inputs", "prompts", "completions", "completion_ids_list"]),
    "_generate_single_turn": (False, ["self", "prompt_ids", "images", "multimodal_fields", "num_generations"]),
    "_tool_call_loop": (False, ["self", "prompts", "prompt_ids", "completion_ids", "completions", "logprobs"]),
    "_get_per_token_logps_and_entropies": (
        False,
        ["self", "model", "input_ids", "attention_mask", "logits_to_keep", "batch_size", "compute_entropy"],
    ),
    "_compute_loss": (False, ["self", "model", "inputs"]),
    "get_off_policy_mask": (
        True,
        ["advantages", "per_token_logps", "sampling_per_token_logps", "mask", "off_policy_threshold"],
    ),
    "get_gamma_weights": (True, ["advantages", "log_ratio_per_token", "mask", "importance_sampling_ratio"]),
    "_prepare_inputs": (False, ["self", "generation_batch"]),
    "_get_train_sampler": (False, ["self", "dataset"]),
    "log": (False, ["self", "logs", "start_time"]),
    "_save_checkpoint": (False, ["self", "model", "trial"]),
    "_save": (False, ["self", "output_dir", "state_dict"]),
    "_save_optimizer_and_scheduler": (False, ["self", "output_dir"]),
    "_load_optimizer_and_scheduler": (False, ["self", "checkpoint"]),
    "train": (False, ["self", "resume_from_checkpoint", "trial", "ignore_keys_for_eval"]),
    "create_model_card": (False, ["self", "model_name", "dataset_name", "tags"]),
}


def hook_table() -> list[str]:
    """The hooks named in the first column of adapter.py's hook table."""
    docstring = BASE.read_text().split('"""')[1]
    hooks = []
    for line in docstring.splitlines():
        match = re.match(r"\| (`[^|]+`) \|", line)
        if match:
            hooks += re.findall(r"`([A-Za-z_]+)`", match.group(1))
    return hooks


@pytest.mark.unit
def test_every_hook_of_the_table_has_a_contract_and_is_overridden():
    hooks = hook_table()
    assert len(hooks) >= 14, hooks  # the table was read
    assert sorted(hooks) == sorted(SIGNATURES), "adapter.py's hook table and this file's contracts differ"
    for hook in hooks:
        assert hook in vars(ZVPBaseTrainer), f"the table lists {hook}, which ZVPBaseTrainer does not override"
        assert hasattr(GRPOTrainer, hook), f"TRL's GRPOTrainer has no {hook}"


@pytest.mark.unit
def test_only_the_adapter_overrides_trls_methods():
    """Method trainers are compositions of parts: no class but the adapter overrides a method of GRPOTrainer."""
    trl_methods = {name for name, value in inspect.getmembers(GRPOTrainer) if callable(value)} - {"__init__"}
    for trainer in EXPORTED_TRAINERS:
        for klass in trainer.__mro__:
            if klass in (ZVPBaseTrainer, GRPOTrainer) or not issubclass(klass, ZVPBaseTrainer):
                continue
            overridden = sorted(trl_methods & set(vars(klass)))
            assert overridden == [], f"{klass.__name__} overrides TRL's {overridden}"


@pytest.mark.unit
@pytest.mark.parametrize("hook", list(SIGNATURES))
def test_signature_of(hook):
    static, leading = SIGNATURES[hook]
    assert isinstance(inspect.getattr_static(GRPOTrainer, hook), staticmethod) == static, hook
    parameters = list(inspect.signature(getattr(GRPOTrainer, hook)).parameters)
    assert parameters[: len(leading)] == leading, f"TRL's {hook}{parameters} no longer starts with {leading}"


# ---------------------------------------------------------------------------------------------------- a recorded run

RECORDED = [hook for hook in SIGNATURES if hook not in ("get_gamma_weights", "train", "create_model_card")]


def reward(completions, **kwargs):
    return [float(i % 3 == 0) for i in range(len(completions))]


def config(tmp_path, **overrides):
    values = dict(
        output_dir=str(tmp_path), use_cpu=True, bf16=False, gradient_checkpointing=False, report_to="none",
        per_device_train_batch_size=4, num_generations=2, max_completion_length=5, max_steps=2, learning_rate=1e-2,
        logging_steps=1, save_strategy="steps", save_steps=1, seed=0, beta=0.04, num_iterations=2,
        off_policy_mask_threshold=1e-3,
    )  # fmt: skip
    values.update(overrides)
    return GRPOBaselineConfig(**values)


needs_loss = pytest.mark.skipif(not LOSS_RUNS_HERE, reason=WHY_NOT)


@pytest.fixture(scope="module")
def recorded(tiny_model_path, tmp_path_factory):
    """Every call of TRL's recorded hooks in a 2-step run (KL term, two iterations, off-policy masking, a checkpoint
    per step), then a resumed run from its first checkpoint: hook -> [(bound arguments, result, files in the
    checkpoint directory at the call)]."""
    calls = {hook: [] for hook in RECORDED}
    originals = {hook: inspect.getattr_static(GRPOTrainer, hook) for hook in RECORDED}
    patch = pytest.MonkeyPatch()

    def recorder(hook, function, static):
        signature = inspect.signature(function)

        def record(*args, **kwargs):
            bound = signature.bind(*args, **kwargs).arguments
            directory = bound.get("output_dir") or bound.get("checkpoint")
            before = sorted(os.listdir(directory)) if directory and os.path.isdir(directory) else None
            result = function(*args, **kwargs)
            calls[hook].append((bound, result, before))
            return result

        return staticmethod(record) if static else record

    for hook, original in originals.items():
        static = isinstance(original, staticmethod)
        patch.setattr(GRPOTrainer, hook, recorder(hook, getattr(GRPOTrainer, hook), static))
    out = tmp_path_factory.mktemp("contract")
    dataset = Dataset.from_dict({"prompt": [f"Q: {i}+1=?\nA:" for i in range(8)]})
    try:
        trainer = GRPOBaselineTrainer(tiny_model_path, reward, args=config(out), train_dataset=dataset)
        trainer.train()
        first_run = {hook: len(c) for hook, c in calls.items()}
        resumed = GRPOBaselineTrainer(tiny_model_path, reward, args=config(out), train_dataset=dataset)
        resumed.train(resume_from_checkpoint=str(out / "checkpoint-1"))
    finally:
        patch.undo()
    return {"calls": calls, "first_run": first_run, "trainer": trainer, "out": out}


@pytest.mark.trainer
@needs_loss
def test_generate_and_score_completions_returns_the_batch_keys_read(recorded):
    (bound, output, _), *_ = recorded["calls"]["_generate_and_score_completions"]
    assert (
        isinstance(bound["inputs"], list) and isinstance(bound["inputs"][0], dict) and "prompt" in bound["inputs"][0]
    )
    rows = len(bound["inputs"])
    for key in ("prompt_ids", "prompt_mask", "completion_ids", "completion_mask"):
        assert output[key].dim() == 2 and output[key].size(0) == rows, key
    assert output["advantages"].shape == (rows,)
    assert output["completion_mask"].shape == output["completion_ids"].shape
    # num_iterations=2 keeps the old log-probs; beta > 0 the reference's; both per completion token.
    for key in ("old_per_token_logps", "ref_per_token_logps"):
        assert output[key].shape == output["completion_ids"].shape, key
    assert "num_items_in_batch" in output


@pytest.mark.trainer
@needs_loss
def test_calculate_rewards_returns_the_gathered_reward_matrix(recorded):
    (bound, rewards, _), *_ = recorded["calls"]["_calculate_rewards"]
    rows = len(bound["prompts"])
    assert len(bound["inputs"]) == len(bound["completions"]) == len(bound["completion_ids_list"]) == rows
    assert rewards.shape == (rows, 1) and rewards.dtype == torch.float32  # one process: all rows, one function
    assert rewards[:, 0].tolist() == reward(bound["completions"])


@pytest.mark.trainer
@needs_loss
def test_generate_single_turn_returns_completions_and_logprobs(recorded):
    (bound, result, _), *_ = recorded["calls"]["_generate_single_turn"]
    completion_ids, logprobs = result
    assert len(completion_ids) == len(bound["prompt_ids"])
    assert all(isinstance(ids, list) and all(isinstance(t, int) for t in ids) for ids in completion_ids)
    assert logprobs is None  # transformers generation gives none; vLLM's are checked in tests_vllm


@pytest.mark.trainer
@needs_loss
def test_get_per_token_logps_and_entropies_returns_three(recorded):
    with_entropy = [c for c in recorded["calls"]["_get_per_token_logps_and_entropies"] if c[0].get("compute_entropy")]
    assert with_entropy, "the loss's policy forward asks for entropies"
    bound, (logps, entropies, aux_loss), _ = with_entropy[0]
    rows, width = bound["input_ids"].size(0), bound["logits_to_keep"]
    assert logps.shape == entropies.shape == (rows, width)
    assert aux_loss is None  # not a mixture-of-experts model


@pytest.mark.trainer
@needs_loss
def test_compute_loss_returns_a_scalar(recorded):
    (bound, loss, _), *_ = recorded["calls"]["_compute_loss"]
    assert loss.dim() == 0 and loss.requires_grad
    assert isinstance(
        bound["self"].current_gradient_accumulation_steps, int
    )  # set by the training loop, read by parts
    assert {"advantages", "completion_mask", "completion_ids"} <= set(bound["inputs"])


@pytest.mark.trainer
@needs_loss
def test_get_off_policy_mask_is_called_with_token_log_probs(recorded):
    (bound, mask, _), *_ = recorded["calls"]["get_off_policy_mask"]
    rows, width = bound["per_token_logps"].shape
    assert bound["advantages"].size(0) == rows
    assert bound["sampling_per_token_logps"].shape == bound["mask"].shape == (rows, width)
    assert mask.shape == (rows, 1)


@pytest.mark.unit
def test_get_gamma_weights_returns_one_weight_per_sequence():
    advantages, log_ratio = torch.tensor([[1.0], [-1.0]]), torch.zeros(2, 3)
    weights = GRPOTrainer.get_gamma_weights(advantages, log_ratio, torch.ones(2, 3), None)
    assert weights.shape == (2, 1) and torch.isfinite(weights).all()


@pytest.mark.trainer
@needs_loss
def test_prepare_inputs_hands_one_micro_batch_per_call(recorded):
    calls = recorded["calls"]["_prepare_inputs"][: recorded["first_run"]["_prepare_inputs"]]
    # gradient_accumulation_steps=1: one call per optimizer step; num_iterations=2 reuses one generation batch for both.
    assert len(calls) == 2 and recorded["first_run"]["_generate_and_score_completions"] == 1
    for _, inputs, _ in calls:
        assert inputs["completion_ids"].size(0) == 4 and inputs["advantages"].shape == (4,)


@pytest.mark.trainer
@needs_loss
def test_get_train_sampler_is_trls_repeat_sampler(recorded):
    from trl.trainer.utils import RepeatSampler

    (_, sampler, _), *_ = recorded["calls"]["_get_train_sampler"]
    assert type(sampler) is RepeatSampler
    assert {"seed", "shuffle", "generator", "num_samples"} <= set(vars(sampler))


@pytest.mark.trainer
@needs_loss
def test_log_gets_the_window_and_reads_the_metrics(recorded):
    logs = [bound["logs"] for bound, _, _ in recorded["calls"]["log"]]
    assert any("loss" in entry for entry in logs)
    trainer = recorded["trainer"]
    assert set(trainer._metrics) == {"train", "eval"} and isinstance(trainer._metrics["train"]["x"], list)


@pytest.mark.trainer
@needs_loss
def test_save_optimizer_and_scheduler_runs_before_the_trainer_state_is_written(recorded):
    calls = recorded["calls"]["_save_optimizer_and_scheduler"][
        : recorded["first_run"]["_save_optimizer_and_scheduler"]
    ]
    assert [Path(b["output_dir"]).name for b, _, _ in calls] == ["checkpoint-1", "checkpoint-2"]
    for _, _, files_before in calls:
        assert "trainer_state.json" not in files_before and "model.safetensors" in files_before
    assert len(recorded["calls"]["_save_checkpoint"]) == 2 + 1  # two steps, then the resumed run's second step


@pytest.mark.trainer
@needs_loss
def test_load_optimizer_and_scheduler_gets_the_checkpoint_on_resume(recorded):
    calls = recorded["calls"]["_load_optimizer_and_scheduler"]
    resumed = [b["checkpoint"] for b, _, _ in calls if b["checkpoint"] is not None]
    assert resumed == [str(recorded["out"] / "checkpoint-1")]
    state = json.loads((recorded["out"] / "checkpoint-1" / "zvp_state.json").read_text())
    assert state["rollouts"]["total"] == 4


@pytest.mark.trainer
@needs_loss
def test_train_and_model_card_keep_trls_behaviour(recorded):
    card = (recorded["out"] / "README.md").read_text()
    assert "## Citations" in card and "## Method hyperparameters" in card
    assert card.index("## Method hyperparameters") < card.index("## Citations")


# ---------------------------------------------------------------------------------------------------- what parts read

# TRL attributes of a built GRPOTrainer that the parts and the adapter read -> the type they must have.
ATTRIBUTES = {
    "accelerator": object, "num_generations": int, "num_generations_eval": int, "loss_type": str,
    "epsilon_low": float, "epsilon_high": float, "beta": float, "top_entropy_quantile": float,
    "off_policy_mask_threshold": (float, type(None)), "importance_sampling_level": str, "max_completion_length": int,
    "aux_loss_enabled": bool, "router_aux_loss_coef": float, "entropy_coef": float, "_entropy_bonus_enabled": bool,
    "use_vllm": bool, "vllm_importance_sampling_correction": bool, "reward_weights": torch.Tensor,
    "_tokenizer": object, "_metrics": dict, "_step": int,
}  # fmt: skip


@pytest.mark.trainer
def test_trainer_attributes_the_parts_read(tiny_model_path, tmp_path):
    dataset = Dataset.from_dict({"prompt": [f"Q: {i}+1=?\nA:" for i in range(8)]})
    trainer = GRPOBaselineTrainer(tiny_model_path, reward, args=config(tmp_path), train_dataset=dataset)
    for name, kind in ATTRIBUTES.items():
        assert hasattr(trainer, name), f"TRL's GRPOTrainer no longer has {name}"
        assert isinstance(getattr(trainer, name), kind), (name, type(getattr(trainer, name)))
    assert callable(trainer.get_high_entropy_mask) and callable(trainer._set_signature_columns_if_needed)
    trainer._set_signature_columns_if_needed()
    assert "prompt" in trainer._signature_columns


@pytest.mark.unit
def test_vllm_objects_per_row_temperatures_wrap():
    """Server mode wraps `VLLMClient.generate(prompts=..., n=..., temperature=..., ...)`; colocate mode wraps
    `llm.generate(prompts, sampling_params=...)` of `VLLMGeneration`, which also keeps its tensor-parallel group."""
    from trl.generation.vllm_client import VLLMClient
    from trl.generation.vllm_generation import VLLMGeneration

    parameters = inspect.signature(VLLMClient.generate).parameters
    assert {"prompts", "n", "temperature", "features"} <= set(parameters)
    source = inspect.getsource(VLLMGeneration)
    for assignment in ("self.vllm_client =", "self.llm =", "self.tensor_parallel_size =", "self.tp_group"):
        assert assignment in source, assignment
    assert "self.vllm_client.generate(" in source and "self.llm.generate(" in source
    assert re.search(r"self\.llm\.generate\([^)]*sampling_params=", source)


# ---------------------------------------------------------------------------------------------------- TRL's public API

PUBLIC_OVERRIDES = ["get_off_policy_mask", "get_gamma_weights", "log", "train", "create_model_card"]


@pytest.mark.unit
def test_the_public_methods_we_override_are_listed():
    public = {name for name in vars(ZVPBaseTrainer) if not name.startswith("_") and hasattr(GRPOTrainer, name)}
    assert public == set(PUBLIC_OVERRIDES)


def call_shape(function) -> list[tuple]:
    """What a caller sees of a signature: each parameter's name, kind and default (not its annotation)."""
    return [(p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()]


@pytest.mark.trainer
@pytest.mark.parametrize("trainer_class", EXPORTED_TRAINERS, ids=lambda c: c.__name__)
def test_public_methods_keep_trls_signatures_and_calls(trainer_class, tiny_model_path, tmp_path):
    from zvp_trl import ALGORITHMS, get_algorithm

    for name in PUBLIC_OVERRIDES:
        ours, theirs = inspect.getattr_static(trainer_class, name), inspect.getattr_static(GRPOTrainer, name)
        assert isinstance(ours, staticmethod) == isinstance(theirs, staticmethod) or name.startswith("get_"), name
        assert call_shape(getattr(trainer_class, name)) == call_shape(getattr(GRPOTrainer, name)), name
    # The static rules, on the class: TRL's own function, positional and keyword.
    mask_args = (torch.tensor([[1.0], [-1.0]]), torch.zeros(2, 3), torch.full((2, 3), -1.0), torch.ones(2, 3), 0.5)
    mask_names = ["advantages", "per_token_logps", "sampling_per_token_logps", "mask", "off_policy_threshold"]
    expected_mask = GRPOTrainer.get_off_policy_mask(*mask_args)
    gamma_args = (torch.tensor([[1.0], [-1.0]]), torch.full((2, 3), 0.1), torch.ones(2, 3), None)
    gamma_names = ["advantages", "log_ratio_per_token", "mask", "importance_sampling_ratio"]
    expected_gamma = GRPOTrainer.get_gamma_weights(*gamma_args)
    assert torch.equal(trainer_class.get_off_policy_mask(*mask_args), expected_mask)
    assert torch.equal(trainer_class.get_off_policy_mask(**dict(zip(mask_names, mask_args))), expected_mask)
    assert torch.equal(trainer_class.get_gamma_weights(*gamma_args), expected_gamma)
    assert torch.equal(trainer_class.get_gamma_weights(**dict(zip(gamma_names, gamma_args))), expected_gamma)

    # On a trainer (outside a loss, so TRL's advantages are read): the same results, and log / train /
    # create_model_card called positionally as TRL's signatures allow.
    (algorithm,) = [a for a in ALGORITHMS if get_algorithm(a).load()[1] is trainer_class]
    config_class, _ = get_algorithm(algorithm).load()
    args = config_class(
        output_dir=str(tmp_path), use_cpu=True, bf16=False, gradient_checkpointing=False, report_to="none",
        per_device_train_batch_size=4, num_generations=2, max_completion_length=4, max_steps=1, logging_steps=1,
        save_strategy="no", seed=0,
    )  # fmt: skip
    dataset = Dataset.from_dict({"prompt": [f"Q: {i}+1=?\nA:" for i in range(8)]})
    trainer = trainer_class(tiny_model_path, reward, args, train_dataset=dataset)
    assert torch.equal(trainer.get_off_policy_mask(*mask_args), expected_mask)
    assert torch.equal(trainer.get_gamma_weights(**dict(zip(gamma_names, gamma_args))), expected_gamma)
    if not LOSS_RUNS_HERE:
        with pytest.raises(AttributeError, match=re.escape(TRL_STOPS_AT)):
            trainer.train(None, None, None)
        return
    output = trainer.train(None, None, None)
    assert output.global_step == 1
    trainer.log({"probe": 1.0}, None)
    assert trainer.state.log_history[-1]["probe"] == 1.0
    trainer.create_model_card("probe-model", None, ["probe-tag"])
    card = (tmp_path / "README.md").read_text()
    assert "probe-model" in card and "probe-tag" in card and trainer_class.__name__ in card


@pytest.mark.unit
def test_continuous_batching_call_per_row_temperatures_wrap():
    """With continuous batching TRL calls `generate_batch(prompt_ids, generation_config=...)` on the unwrapped model and
    reads the outputs' `generated_tokens` in the order of `.values()`: the adapter calls it once per temperature and
    returns the outputs in the rows' order."""
    source = inspect.getsource(GRPOTrainer._generate_single_turn)
    assert re.search(
        r"unwrapped_model\.generate_batch\(\s*prompt_ids,\s*generation_config=self\.generation_config", source
    )
    assert "output.generated_tokens for output in all_outputs.values()" in source
