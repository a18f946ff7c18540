# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""What every zvp_trl trainer shares on top of TRL's `GRPOTrainer`.

- Configuration: `args=None` builds the trainer's `_config_class` with the output directory
  `<model name>-<_default_suffix>`, as TRL does; any other `args` must be an instance of it.
- The generation round's rewards: `_calculate_rewards` keeps TRL's gathered reward matrix (all processes' rows, in
  process order) in the round's `GenerationStep` (`zvp_trl.core.step`). Parts read it with
  `step.scalar_rewards(context.reward_weights)` (TRL's weighted sum), decide zero-variance groups with
  `context.row_signs(...)` (by `args.correct_threshold` and `args.zero_variance_atol`) and take this process's rows
  with `context.local_rows(...)`. The base logs every round's split:
  `zvp/frac_zv_positive` (all-correct groups) and `zvp/frac_zv_negative` (all-wrong).
- Rollout accounting: `rollouts/total` (completions generated so far, all processes), `rollouts/kept` (completions
  that reached the loss so far: generated minus those a method dropped, plus any it replayed; counted once even when
  `num_iterations > 1`) and `rollouts/grad_steps` (optimizer steps so far), logged as running totals, so runs can be
  compared at the same rollout budget. `args.max_rollouts` (see `ZVPBaseConfig`) stops training once the budget is
  spent. `kept` is counted in `_prepare_inputs`, which hands every micro-batch to the loss, so no loss override can
  skip it.
- Checkpointed state: objects with `state_dict()` / `load_state_dict()` registered in `self._checkpointed_state` are
  written to `zvp_state.json` in every checkpoint and restored when training resumes from it. An object that also
  has `save(directory)` keeps its bulk data in files of its own (ExGRPO's buffer): `save(checkpoint)` writes them
  before zvp_state.json and returns the small JSON state stored there, and on resume
  `load_state_dict(state, directory=checkpoint)` reads them back.

The adapter to TRL. This class is the only one in zvp_trl that overrides `GRPOTrainer`'s private hooks (TRL 1.16; a
private hook that is only forwarded takes `*args, **kwargs`, so that a change of its signature in TRL does not break
it). The methods are parts (`zvp_trl.core.parts`) that it runs at the step events they declare, handing them the
step's data (`zvp_trl.core.step`) and a narrow `PartContext` (built once, `part_context`); a method's trainer class
is this adapter with the method's parts, derived from its registration (`zvp_trl.core.registry`).

| hook | what the adapter does there | the part events it runs |
|---|---|---|
| `_generate_and_score_completions` | a training batch from the part that assembles batches (dynamic sampling, GRESO) or from one round; per round: count rollouts, log the all-correct / all-wrong split | `assemble_batch`, `choose_rows`, `before_generation`, `after_scoring` |
| `_calculate_rewards` | keep the gathered rewards of the round in its step | |
| `_generate_single_turn` | per-row temperatures around TRL's generation (transformers `generate` and continuous batching, vLLM colocate and server, tool-loop continuations); completions replaced by the parts' overrides (replays) | `before_sampling` |
| `_tool_call_loop` | replaced completions (replays) kept out of TRL's tool loop (their tool calls are not run again), with the override's tool mask and messages; the round's messages kept in its step | |
| `_get_per_token_logps_and_entropies` | log-probs at each row's temperature; the token-advantage step: the loss's advantages rewritten from the entropies of its own policy forward, which TRL runs before it reads them (tests/test_loss_seams.py) | `shapes_token_advantages` / `token_advantages` |
| `_compute_loss` | the loss's log-prob temperatures; a part's own loss, or TRL's with the policy forward armed | `loss_logprob_temperatures`, `compute_loss` |
| `get_off_policy_mask`, `get_gamma_weights` | TRL's sequence rules read the sequence advantages a part gave (RL-ZVP: the group's sign on zero-variance rows) | |
| `_prepare_inputs` | count `rollouts/kept` once per micro-batch | |
| `_get_train_sampler` | an epoch order that a resumed run reproduces, on any number of processes | |
| `log` | running rollout totals; the parts' window metrics | `log` |
| `_save_optimizer_and_scheduler`, `_load_optimizer_and_scheduler` | `zvp_state.json` (every part's state) in every checkpoint | `checkpointed_state` |
| `_save_checkpoint` | with `save_only_model=True` (no optimizer saved), `zvp_state.json` in the checkpoint all the same | |
| `_save` | with `save_on_each_node=True`, the model's weights on every node (transformers writes them on the world's process 0 only) | |
| `train`, `create_model_card` | resume from the last complete checkpoint, the same one on every process (DeepSpeed: every shard there); the method's hyperparameters in the card | |
"""

import contextlib
import copy
import functools
import json
import os

import torch
from accelerate.utils import gather_object
from transformers import LogitsProcessorList, PreTrainedModel
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR
from trl import GRPOConfig, GRPOTrainer
from trl.trainer.utils import RepeatSampler, get_config_model_id

from ..data.math_datasets import check_prompt_column
from ..data.rewards import math_verify_timeouts
from .callbacks import RolloutBudgetCallback
from .checkpoints import (
    STATE_FILE,
    WRITER_KEY,
    check_deepspeed_checkpoint,
    check_same_resume_checkpoint,
    has_model_weights,
    is_complete_checkpoint,
    last_complete_checkpoint,
)
from .config import GRPOBaselineConfig, ZVPBaseConfig
from .model_card import hyperparameters_markdown
from .parts import LossSettings, MethodPart, PartContext, parts_of
from .per_row_temperature import (
    PerRowTemperatureLogitsProcessor,
    RowScaledHiddenStates,
    backbone_of,
    check_row_scalable,
    generate_grouped_by_temperature,
    per_request_sampling_params,
    temperatures_for_continuations,
)
from .prompt_ids import dataset_prompt_ids, token_prompt_id
from .sampler import EpochSeededRepeatSampler, SamplerEpochCallback
from .step import GenerationStep, ZVPStep
from .warm_start import ProbeResult


class SequenceRule:
    """One of TRL's static sequence-level rules (`get_off_policy_mask`, `get_gamma_weights`), kept TRL's static method
    on the class (`Trainer.get_off_policy_mask(advantages, ...)` works as TRL documents it), and on a trainer the same
    call with the loss's sequence advantages in place of per-token ones (`ZVPBaseTrainer._per_sequence`)."""

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, trainer, owner=None):
        rule = getattr(GRPOTrainer, self.name)
        if trainer is None:
            return rule

        @functools.wraps(rule)
        def on_the_loss_advantages(*args, **kwargs):
            if "advantages" in kwargs:
                kwargs["advantages"] = trainer._per_sequence(kwargs["advantages"])
            elif args:
                args = (trainer._per_sequence(args[0]), *args[1:])
            return rule(*args, **kwargs)

        return on_the_loss_advantages


class RolloutCounter:
    """Running count of generated completions (all processes), restored on resume."""

    def __init__(self):
        self.total = 0  # completions generated
        self.kept = 0  # completions that reached the loss

    def state_dict(self) -> dict:
        return {"total": self.total, "kept": self.kept}

    def load_state_dict(self, state: dict) -> None:
        self.total = int(state["total"])
        self.kept = int(state.get("kept", 0))


# `LossSettings` fields that `GRPOTrainer` resolves into attributes of the same name.
TRL_LOSS_ATTRIBUTES = (
    "loss_type",
    "importance_sampling_level",
    "epsilon_low",
    "epsilon_high",
    "beta",
    "off_policy_mask_threshold",
    "top_entropy_quantile",
    "max_completion_length",
    "entropy_coef",
    "router_aux_loss_coef",
)


class _Collectives:
    """accelerate's collectives as a `PartContext` hands them to the parts: the `Accelerator`'s own (`gather`,
    `gather_for_metrics`, `reduce`, the process numbers), and `gather_object`."""

    def __init__(self, accelerator):
        self._accelerator = accelerator

    def __getattr__(self, name: str):
        return getattr(self._accelerator, name)

    def gather_object(self, objects: list) -> list:
        return gather_object(objects) if self._accelerator.num_processes > 1 else list(objects)


class _LiveRun:
    """The trainer's run state as a part reads it (`zvp_trl.core.parts.RunState`'s attributes, read live)."""

    def __init__(self, trainer):
        self._trainer = trainer

    training = property(lambda self: self._trainer.model.training)
    global_step = property(lambda self: self._trainer.state.global_step)
    epoch = property(lambda self: self._trainer.state.epoch or 0.0)
    accumulation_steps = property(lambda self: self._trainer.current_gradient_accumulation_steps)
    sync_gradients = property(lambda self: self._trainer.accelerator.sync_gradients)


class ZVPBaseTrainer(GRPOTrainer):
    """`GRPOTrainer` plus the plumbing every method shares (see the module docstring). Subclasses set
    `_config_class` (the config `args` must be, built by default) and `_default_suffix` (of the default output
    directory)."""

    _config_class: type = ZVPBaseConfig
    _default_suffix: str = "ZVP"
    _accepted_config: type | None = None  # what `args` may be, when wider than `_config_class`

    def __init__(self, model, reward_funcs=None, args=None, *pargs, **kwargs):
        if args is None:
            args = self._default_args(model)
        elif not isinstance(args, self._accepted_config or self._config_class):
            expected = (self._accepted_config or self._config_class).__name__
            raise TypeError(
                f"{type(self).__name__} needs a {expected} (or a subclass of it), got {type(args).__name__}."
            )
        for part in parts_of(type(self)):
            part.refuse_construction(kwargs)
        train_dataset = kwargs.get("train_dataset", pargs[0] if pargs else None)
        # Environment-owned data (an environment_factory and no train_dataset): TRL drives the loop with placeholder
        # rows, and each prompt is the one the environment's reset() returns, known at the first generation call.
        self.prompts_from_environment = kwargs.get("environment_factory") is not None and train_dataset is None
        self.zvp_step = ZVPStep()  # the current generation round's and loss's data (zvp_trl.core.step)
        self._row_scaler = None  # log-probs at per-row temperatures, once a part enables them
        super().__init__(model, reward_funcs, args, *pargs, **kwargs)
        check_prompt_column(self.train_dataset)  # a clear error now rather than a KeyError at the first step
        check_prompt_column(self.eval_dataset, "eval_dataset")
        self.rollouts = RolloutCounter()
        self._checkpointed_state = {"rollouts": self.rollouts}
        self.part_context = self._part_context()  # what the parts may read and call (zvp_trl.core.parts)
        self._method_parts = [part(self.part_context) for part in parts_of(type(self))]
        assemblers = [part.name for part in self._method_parts if part.assembles_batches]
        if len(assemblers) > 1:
            raise ValueError(f"{type(self).__name__} has several parts that assemble its batches ({assemblers}).")
        for part in self._method_parts:
            self._checkpointed_state.update(part.checkpointed_state())
        if getattr(self.args, "init_from_probe", None):
            self._warm_start(self.args.init_from_probe)
        max_rollouts = getattr(self.args, "max_rollouts", None)
        if max_rollouts is not None:
            stop = getattr(self.args, "max_rollouts_stop", "generation")
            self.add_callback(RolloutBudgetCallback(self.rollouts, max_rollouts, stop))

    def _warm_start(self, directory: str) -> None:
        """Seeds the parts' per-prompt state from a probe of this run's model and data (`init_from_probe`)."""
        probe = ProbeResult.load(directory)
        policy = self.accelerator.unwrap_model(self.model)
        model_name = getattr(policy.config, "_name_or_path", None) or get_config_model_id(policy.config)
        column = getattr(self.args, "prompt_id_column", None)
        probe.check_matches(model_name, self.num_generations, dataset_prompt_ids(self.train_dataset, column))
        for part in self._method_parts:
            part.warm_start(probe)

    def _part_context(self) -> PartContext:
        """The parts' view of this run (`zvp_trl.core.parts.PartContext`): the config, the processes, the metrics
        sink, TRL's resolved loss settings and the few trainer functions a part may call."""
        args = self.args
        # TRL's resolved values, read from the trainer's attributes of the same names.
        resolved = {name: getattr(self, name) for name in TRL_LOSS_ATTRIBUTES}
        loss = LossSettings(
            **resolved,
            delta=args.delta,
            use_bias_correction_kl=bool(args.use_bias_correction_kl),
            vllm_importance_sampling_correction=bool(self.use_vllm and self.vllm_importance_sampling_correction),
            steps_per_generation=args.steps_per_generation,
            entropy_bonus=self._entropy_bonus_enabled,
            aux_loss=self.aux_loss_enabled,
        )
        environments = ()
        if self.environment_factories is not None:
            environments = tuple(pool[0] for pool in self._environment_pool.values())
        return PartContext(
            args,
            num_generations=self.num_generations,
            num_generations_eval=self.num_generations_eval,
            reward_weights=self.reward_weights,
            collectives=_Collectives(self.accelerator),
            device=self.accelerator.device,
            metrics=self._metrics,
            run=_LiveRun(self),
            tokenizer=self._tokenizer,
            train_dataset=self.train_dataset,
            dataset_row=self._dataset_row,
            prompts_from_environment=self.prompts_from_environment,
            environments=environments,
            sharded_forwards=self._sharded_forwards(),
            is_vision_language=bool(getattr(self, "_is_vlm", False)),
            loss=loss,
            # Looked up at each call, so what wraps the trainer's method later (a profiler, a test) sees the call.
            policy=lambda: self.model,
            logprobs=lambda *args, **kwargs: self._get_per_token_logps_and_entropies(*args, **kwargs),
            token_advantages=lambda *args, **kwargs: self.shaped_token_advantages(*args, **kwargs),
            groups_with_signal=lambda *args, **kwargs: self._groups_with_signal(*args, **kwargs),
            off_policy_mask=lambda *args, **kwargs: self.get_off_policy_mask(*args, **kwargs),
            high_entropy_mask=lambda *args, **kwargs: self.get_high_entropy_mask(*args, **kwargs),
            enable_row_temperature_logprobs=lambda: self.enable_row_temperature_logprobs(),
        )

    def _sharded_forwards(self) -> bool:
        """Whether a forward gathers sharded parameters collectively: DeepSpeed ZeRO stage 3, or FSDP."""
        if getattr(self, "is_fsdp_enabled", False):
            return True
        if getattr(self, "is_deepspeed_enabled", False):
            plugin = self.accelerator.state.deepspeed_plugin or getattr(self.args, "deepspeed_plugin", None)
            return plugin is not None and plugin.zero_stage == 3
        return False

    def _dataset_row(self, index: int) -> dict:
        """Row `index` of `train_dataset` as the dataloader hands it: with `remove_unused_columns`, the columns TRL's
        dataloader drops are dropped."""
        row = dict(self.train_dataset[int(index)])
        if self.args.remove_unused_columns:
            self._set_signature_columns_if_needed()
            row = {k: v for k, v in row.items() if k in self._signature_columns}
        return row

    def _groups_with_signal(self, group_signs: torch.Tensor) -> torch.Tensor:
        """Zero-variance group signs, with 0 where some part gives such a group a signal (ERPO's RA)."""
        for part in self._method_parts:
            group_signs = part.groups_with_signal(group_signs)
        return group_signs

    @classmethod
    def for_generation_only(cls, *args, **kwargs) -> "ZVPBaseTrainer":
        """A trainer that only generates and scores with the weights it was built from (the probe): with vLLM, no
        weight-transfer channel to a `trl vllm-serve` server is opened (TRL's NCCL communicator, which needs a CUDA
        device) and no weights are synced before generating, since the server and the colocated engine loaded the same
        checkpoint. It must not be trained."""
        try:
            from trl.generation.vllm_client import VLLMClient
        except ImportError:  # no vLLM: nothing to open
            trainer = cls(*args, **kwargs)
        else:
            open_channel = VLLMClient.init_communicator
            VLLMClient.init_communicator = lambda self, *a, **k: None
            try:
                trainer = cls(*args, **kwargs)
            finally:
                VLLMClient.init_communicator = open_channel
        trainer._last_loaded_step = trainer.state.global_step  # TRL syncs when the step moved; it never will
        trainer._generation_only = True
        return trainer

    @classmethod
    def _default_args(cls, model):
        """The config `args=None` stands for: `_config_class` with TRL's default output directory naming."""
        model_name = model if isinstance(model, str) else get_config_model_id(model.config)
        return cls._config_class(f"{model_name.split('/')[-1]}-{cls._default_suffix}")

    @property
    def part_names(self) -> list[str]:
        """The names of the trainer's parts, in the order it runs them."""
        return [part.name for part in self._method_parts]

    def part(self, name: str) -> MethodPart:
        """The trainer's part of that name (`zvp_trl.core.parts`), e.g. `trainer.part("rl_zvp")`."""
        for part in self._method_parts:
            if part.name == name:
                return part
        raise KeyError(f"{type(self).__name__} has no {name!r} part (it has: {[p.name for p in self._method_parts]}).")

    # ------------------------------------------------------------------ the generation batch's rewards

    def _calculate_rewards(self, *args, **kwargs):
        timeouts_before = math_verify_timeouts()
        rewards_per_func = super()._calculate_rewards(*args, **kwargs)
        step = self.zvp_step.generation or self.zvp_step.begin_generation()
        step.gathered_rewards = rewards_per_func  # (all processes' rows, n_funcs), in process order
        # Answers math-verify scored 0.0 for running out of their CPU-time budget, in this batch, all processes.
        local = torch.tensor([float(math_verify_timeouts() - timeouts_before)], device=self.accelerator.device)
        mode = "train" if self.model.training else "eval"
        self._metrics[mode]["rewards/math_verify_timeouts"].append(self.accelerator.gather(local).sum().item())
        return rewards_per_func

    def _row_signs(self, rewards: torch.Tensor, num_generations: int) -> torch.Tensor:
        """Per row: +1 in an all-correct zero-variance group, -1 in an all-wrong one, 0 otherwise (the parts' own
        rule, `PartContext.row_signs`)."""
        return self.part_context.row_signs(rewards, num_generations)

    def _log_zero_variance_split(self, step) -> None:
        """Logs the shares of the batch's groups that are all-correct (`zvp/frac_zv_positive`) and all-wrong
        (`zvp/frac_zv_negative`), for every method, so their dynamics can be compared with RL-ZVP's."""
        if step.gathered_rewards is None:
            return
        mode = "train" if self.model.training else "eval"
        num_generations = self.num_generations if mode == "train" else self.num_generations_eval
        group_signs = self._row_signs(step.scalar_rewards(self.reward_weights), num_generations)[::num_generations]
        self._metrics[mode]["zvp/frac_zv_positive"].append((group_signs > 0).float().mean().item())
        self._metrics[mode]["zvp/frac_zv_negative"].append((group_signs < 0).float().mean().item())

    def _local_rows(self, gathered: torch.Tensor, local_count: int) -> torch.Tensor:
        """This process's `local_count` rows of a tensor gathered over processes in process order."""
        return self.part_context.local_rows(gathered, local_count)

    def _generate_and_score_completions(self, inputs):
        if self.model.training:
            for part in self._method_parts:
                if part.assembles_batches:  # dynamic sampling: the batch from as many rounds as it needs
                    return part.assemble_batch(inputs, self._generate_round)
        output, _ = self._generate_round(inputs)
        return output

    def _generate_round(self, inputs) -> tuple[dict, GenerationStep]:
        """One generation round of this process's `inputs`: the parts choose rows and sampling settings, TRL
        generates and scores, the parts read the scores. Returns TRL's output and the round's `GenerationStep`."""
        step = self.zvp_step.begin_generation()  # never a previous round's data
        step.rows = list(inputs)
        for part in self._method_parts:
            part.choose_rows(step)
        for part in self._method_parts:
            part.before_generation(step)
        self._arm_generation_logprob_temperatures(step)
        try:
            output = super()._generate_and_score_completions(step.rows)
        finally:
            self.zvp_step.logprob_temperatures = None  # the round's no-grad forwards are done
        self._log_zero_variance_split(step)
        for part in self._method_parts:
            part.after_scoring(step, output)
        if self.model.training:
            # Every process generated the same number of rows (TRL requires it), so the global count is local * world.
            self.rollouts.total += output["completion_ids"].size(0) * self.accelerator.num_processes
        return output, step

    def _prepare_inputs(self, generation_batch):
        inputs = super()._prepare_inputs(generation_batch)
        if self.model.training:
            # TRL's micro-step counter: a buffered generation batch is used for `num_iterations` passes of
            # `steps_per_generation` micro-batches each; count its rows on the first pass only.
            generate_every = self.args.steps_per_generation * self.num_iterations
            if self._step % generate_every < self.args.steps_per_generation:
                self.rollouts.kept += inputs["completion_ids"].size(0) * self.accelerator.num_processes
        return inputs

    # ------------------------------------------------------------------ per-row sampling temperatures

    def enable_row_temperature_logprobs(self) -> None:
        """Log-probs and entropies at each row's own temperature (`zvp_step.logprob_temperatures`), by scaling the
        last hidden state of the policy (and reference model) before TRL's fused LM head; see
        `zvp_trl.core.per_row_temperature`. Raises for a model whose LM head makes that inexact."""
        if self._row_scaler is not None:
            return
        scaler = RowScaledHiddenStates()
        policy = self.accelerator.unwrap_model(self.model)
        check_row_scalable(policy.get_base_model() if hasattr(policy, "get_base_model") else policy)
        scaler.attach(backbone_of(policy))
        if self.ref_model is not None:
            ref = self.accelerator.unwrap_model(self.ref_model)
            check_row_scalable(ref)
            scaler.attach(backbone_of(ref))
        self._row_scaler = scaler

    def _arm_generation_logprob_temperatures(self, step) -> None:
        """The round's old / reference log-probs (TRL's no-grad forwards) at the rows' sampling temperatures, when
        some are raised and log-probs follow them."""
        temperatures = step.sampling_temperatures
        if self._row_scaler is not None and temperatures and any(t != self.args.temperature for t in temperatures):
            self.zvp_step.logprob_temperatures = torch.tensor(temperatures, dtype=torch.float32)

    def _generate_single_turn(self, prompt_ids, images, multimodal_fields, num_generations, *args, **kwargs):
        args = (prompt_ids, images, multimodal_fields, num_generations, *args)
        step = self.zvp_step.generation
        if step is None:
            with self._vllm_server_failures_named():
                return super()._generate_single_turn(*args, **kwargs)
        first_call = step.sampled_prompts is None  # later calls: TRL's tool loop continues rows that called a tool
        if first_call and step.temperatures_from_prompts and step.sampling_temperatures is None:
            # Environment-owned data: the prompts reset() returned identify the rows (at the batch's first turn).
            step.environment_prompt_ids = [token_prompt_id(ids) for ids in prompt_ids]
            for part in self._method_parts:
                part.before_sampling(step)
            self._arm_generation_logprob_temperatures(step)
        temperatures = step.sampling_temperatures
        if first_call:
            if temperatures is not None and len(temperatures) != len(prompt_ids):
                raise RuntimeError(
                    f"Per-row temperatures were set for {len(temperatures)} rows but generation got {len(prompt_ids)}."
                )
            step.sampled_prompts = [list(ids) for ids in prompt_ids]
        elif temperatures is not None:  # each continuing row at its own prompt's temperature
            temperatures = temperatures_for_continuations(prompt_ids, step.sampled_prompts, temperatures)
        if temperatures is None:
            context = contextlib.nullcontext()
        elif self.use_vllm:
            context = self._vllm_per_row_temperatures(temperatures, num_generations)
        elif all(t == self.args.temperature for t in temperatures):
            context = contextlib.nullcontext()
        elif self.use_transformers_continuous_batching:
            context = self._generate_batch_per_temperature(temperatures)
        else:
            context = self._generate_per_row_temperatures(temperatures)
        with context, self._vllm_server_failures_named():
            completion_ids, logprobs = super()._generate_single_turn(*args, **kwargs)
        if first_call and step.completion_overrides:
            completion_ids = list(completion_ids)
            for row, trajectory in step.completion_overrides.items():
                completion_ids[row] = trajectory["ids"].tolist()
                if logprobs is not None:
                    # vLLM did not sample this row: its sampling log-probs are unknown (NaN), which TRL reads as "no
                    # vLLM/trainer mismatch to correct" (ratio 1) and leaves out of its sampling/* metrics.
                    logprobs[row] = [float("nan")] * len(trajectory["ids"])
        return completion_ids, logprobs

    @contextlib.contextmanager
    def _vllm_server_failures_named(self):
        """vLLM server mode: a failed request (the server died, restarts, or answered with an HTTP error) stops the
        run with an error that names the server, its URL, the last complete checkpoint and how to go on. TRL's client
        raises the bare `requests` error, or `Exception("Request failed: <status>, <body>")`."""
        if not (self.use_vllm and self.vllm_mode == "server"):
            yield
            return
        try:
            yield
        except Exception as error:
            import requests

            if not isinstance(error, requests.RequestException) and not str(error).startswith("Request failed:"):
                raise
            client = getattr(getattr(self, "vllm_generation", None), "vllm_client", None)
            url = getattr(client, "base_url", None) or self.args.vllm_server_base_url
            checkpoint = last_complete_checkpoint(self.args.output_dir)
            raise RuntimeError(
                f"The vLLM server at {url} failed a generation request at step {self.state.global_step + 1} "
                f"({type(error).__name__}: {str(error)[:500]}). The run stopped there; its last complete checkpoint "
                f"is {checkpoint or 'none (no checkpoint was saved yet)'}, with its per-prompt state. Restart the "
                "server (`trl vllm-serve ...`, same model) and resume with resume_from_checkpoint=True "
                "(`--resume_from_checkpoint last`)."
            ) from error

    def _tool_call_loop(self, prompts, prompt_ids, completion_ids, completions, *args, **kwargs):
        step = self.zvp_step.generation
        overrides = (step.completion_overrides or {}) if step is not None else {}
        # A replaced completion (a replayed trajectory) is finished: TRL's loop must neither run its tool calls again
        # nor continue it. It goes through the loop as a completion without a tool call, and comes out with the
        # override's tool mask and messages.
        parsed = {row: completions[row] for row in overrides}
        for row in overrides:
            completions[row] = [{"role": "assistant", "content": ""}]
        result = super()._tool_call_loop(prompts, prompt_ids, completion_ids, completions, *args, **kwargs)
        tool_mask, completions = result[0], result[1]
        for row, trajectory in overrides.items():
            if trajectory.get("tool_mask") is not None:
                tool_mask[row] = [int(v) for v in trajectory["tool_mask"].tolist()]
            messages = trajectory.get("messages")
            completions[row] = copy.deepcopy(messages) if messages is not None else parsed[row]
        if step is not None:
            step.completions = completions
        return result

    @contextlib.contextmanager
    def _generate_per_row_temperatures(self, temperatures):
        """transformers `generate`: add a per-row logits processor to the model TRL generates with."""
        unwrapped = self.accelerator.unwrap_model(self.model_wrapped)
        factors = torch.tensor(temperatures, dtype=torch.float32) / self.args.temperature
        processor = PerRowTemperatureLogitsProcessor(factors)
        original = unwrapped.generate
        shadowed = vars(unwrapped).get("generate")  # an instance-level generate (a user's wrapper) to put back

        def generate(*pargs, logits_processor=None, **kwargs):
            processors = LogitsProcessorList([*(logits_processor or []), processor])
            return original(*pargs, logits_processor=processors, **kwargs)

        unwrapped.generate = generate
        try:
            yield
        finally:
            if shadowed is None:
                del unwrapped.generate
            else:
                unwrapped.generate = shadowed

    @contextlib.contextmanager
    def _generate_batch_per_temperature(self, temperatures):
        """transformers continuous batching: `generate_batch` takes one generation config per call, so it is called
        once per distinct temperature (each with a copy of TRL's config at that temperature), and the outputs are
        handed back in the rows' order, as TRL reads them."""
        unwrapped = self.accelerator.unwrap_model(self.model_wrapped)
        original = unwrapped.generate_batch
        shadowed = vars(unwrapped).get("generate_batch")

        def generate_batch(inputs, generation_config=None, **kwargs):
            if len(inputs) != len(temperatures):
                raise RuntimeError(f"{len(temperatures)} row temperatures for {len(inputs)} generate_batch inputs.")
            rows_at: dict[float, list[int]] = {}
            for row, temperature in enumerate(temperatures):
                rows_at.setdefault(float(temperature), []).append(row)
            outputs = [None] * len(inputs)
            for temperature, rows in rows_at.items():
                config = copy.deepcopy(generation_config)
                config.temperature = temperature
                results = original([inputs[row] for row in rows], generation_config=config, **kwargs)
                for row, result in zip(rows, results.values()):
                    outputs[row] = result
            return dict(enumerate(outputs))

        unwrapped.generate_batch = generate_batch
        try:
            yield
        finally:
            if shadowed is None:
                del unwrapped.generate_batch
            else:
                unwrapped.generate_batch = shadowed

    @contextlib.contextmanager
    def _vllm_per_row_temperatures(self, temperatures, num_generations):
        vllm_generation = self.vllm_generation
        if self.vllm_mode == "server":
            # Collective on every process, whatever its temperatures, so no process waits alone.
            all_temperatures = gather_object(list(temperatures))
            if not self.accelerator.is_main_process:
                yield
                return
            client = vllm_generation.vllm_client
            original = client.generate
            group_temperatures = all_temperatures[::num_generations]

            def generate(prompts, n=1, **kwargs):
                return generate_grouped_by_temperature(original, prompts, group_temperatures, n, **kwargs)

            client.generate = generate
            try:
                yield
            finally:
                del client.generate
        else:
            if vllm_generation.tensor_parallel_size > 1:
                gathered = [None] * vllm_generation.tensor_parallel_size
                torch.distributed.all_gather_object(gathered, list(temperatures), group=vllm_generation.tp_group)
                temperatures = [t for part in gathered for t in part]
            llm = vllm_generation.llm
            original = llm.generate

            def generate(prompts, sampling_params=None, **kwargs):
                if len(prompts) != len(temperatures):
                    raise RuntimeError(f"{len(temperatures)} row temperatures for {len(prompts)} vLLM requests.")
                return original(
                    prompts, sampling_params=per_request_sampling_params(sampling_params, temperatures), **kwargs
                )

            llm.generate = generate
            try:
                yield
            finally:
                del llm.generate

    # ------------------------------------------------------------------ the loss

    def _compute_loss(self, model, inputs):
        loss = self.zvp_step.begin_loss()
        try:
            for part in self._method_parts:
                temperatures = part.loss_logprob_temperatures(inputs)
                if temperatures is not None and self._row_scaler is not None:
                    self.zvp_step.logprob_temperatures = temperatures
            for part in self._method_parts:
                result = part.compute_loss(loss, model, inputs)  # a part's own loss (ExGRPO's mixed phase)
                if result is not None:
                    return result
            if any(part.shapes_token_advantages for part in self._method_parts):
                # Work on a shallow copy: `inputs` is TRL's buffered batch, reused when num_iterations > 1. The policy
                # forward TRL's loss runs consumes it (below), before TRL reads "advantages".
                inputs = dict(inputs)
                loss.pending_inputs = inputs
            return super()._compute_loss(model, inputs)
        finally:
            self.zvp_step.end_loss()

    def _get_per_token_logps_and_entropies(self, model, input_ids, *args, **kwargs):
        temperatures = self.zvp_step.logprob_temperatures
        if temperatures is None:
            logps, entropies, aux_loss = super()._get_per_token_logps_and_entropies(model, input_ids, *args, **kwargs)
        else:
            if temperatures.numel() != input_ids.size(0):
                raise RuntimeError(
                    f"Per-row temperatures were set for {temperatures.numel()} rows but the log-prob forward got "
                    f"{input_ids.size(0)}."
                )
            scales = self.args.temperature / temperatures.float()
            with self._row_scaler.active(scales):
                logps, entropies, aux_loss = super()._get_per_token_logps_and_entropies(
                    model, input_ids, *args, **kwargs
                )
        loss = self.zvp_step.loss
        # Only the policy forward of the loss is armed; it runs before the loss reads "advantages".
        if loss is not None and loss.pending_inputs is not None and entropies is not None:
            inputs, loss.pending_inputs = loss.pending_inputs, None
            inputs["advantages"] = self.shaped_token_advantages(loss, inputs, entropies)
        return logps, entropies, aux_loss

    def shaped_token_advantages(self, loss, inputs: dict, entropies: torch.Tensor) -> torch.Tensor:
        """The loss's advantages after the parts that shape them per token from the policy forward's entropies
        (RL-ZVP); `inputs["advantages"]` when no part does."""
        advantages = inputs["advantages"]
        for part in self._method_parts:
            if part.shapes_token_advantages:
                advantages = part.token_advantages(loss, inputs, entropies)
        return advantages

    def _per_sequence(self, advantages: torch.Tensor) -> torch.Tensor:
        """TRL's sequence-level rules (off-policy masking, VESPO's gamma weights) read the sign of a sequence's
        advantage. Where a part made the loss's advantages per token, it gives the sequence advantages to read instead
        (RL-ZVP: the group's sign on zero-variance rows); elsewhere TRL's advantages are read unchanged."""
        loss = self.zvp_step.loss
        sequence = loss.sequence_advantages if loss is not None else None
        if sequence is None or advantages.dim() != 2 or sequence.size(0) != advantages.size(0):
            return advantages
        return sequence.to(advantages.device, advantages.dtype)

    get_off_policy_mask = SequenceRule()
    get_gamma_weights = SequenceRule()

    def train(self, resume_from_checkpoint: str | bool | None = None, trial=None, ignore_keys_for_eval=None):
        """As `Trainer.train`; `resume_from_checkpoint=True` resumes from the last *complete* checkpoint of
        `output_dir` (see `zvp_trl.core.checkpoints`), so a run killed while saving resumes from the one before."""
        if getattr(self, "_generation_only", False):
            raise RuntimeError(
                f"This {type(self).__name__} was built for generation only (for_generation_only: no weight transfer to "
                "vLLM), so it cannot train. Build it with the class itself to train."
            )
        # Every process (node) must find the same complete checkpoint on its own disk (gathered: one entry per process).
        if resume_from_checkpoint is True:
            checkpoint = last_complete_checkpoint(self.args.output_dir)
            check_same_resume_checkpoint(gather_object([checkpoint]), self.args.output_dir, "True")
            resume_from_checkpoint = checkpoint
        elif isinstance(resume_from_checkpoint, (str, os.PathLike)) and self.accelerator.num_processes > 1:
            found = resume_from_checkpoint if is_complete_checkpoint(str(resume_from_checkpoint)) else None
            found = gather_object([found])
            if any(path is not None for path in found):  # none: transformers names the missing checkpoint itself
                check_same_resume_checkpoint(found, self.args.output_dir, str(resume_from_checkpoint))
        if isinstance(resume_from_checkpoint, (str, os.PathLike)) and self.is_deepspeed_enabled:
            config = self.accelerator.state.deepspeed_plugin.deepspeed_config
            universal = bool((config.get("checkpoint") or {}).get("load_universal", False))
            check_deepspeed_checkpoint(str(resume_from_checkpoint), self.accelerator.num_processes, universal)
        return super().train(resume_from_checkpoint, trial, ignore_keys_for_eval)

    def create_model_card(self, model_name=None, dataset_name=None, tags=None):
        """TRL's card (method name, paper link and citation, tags), plus the run's method hyperparameters. Also used
        by `push_to_hub`."""
        super().create_model_card(model_name=model_name, dataset_name=dataset_name, tags=tags)
        if not self.is_world_process_zero():
            return
        path = os.path.join(self.args.output_dir, "README.md")
        with open(path) as f:
            card = f.read()
        section = hyperparameters_markdown(type(self).__name__, self.args)
        marker = "## Citations"
        card = card.replace(marker, section + "\n" + marker, 1) if marker in card else card + "\n" + section
        with open(path, "w") as f:
            f.write(card)

    def _get_train_sampler(self, dataset=None):
        sampler = super()._get_train_sampler(dataset)
        if type(sampler) is RepeatSampler:
            sampler = EpochSeededRepeatSampler.from_sampler(sampler)
            self.callback_handler.remove_callback(SamplerEpochCallback)  # the one of an earlier dataloader
            self.add_callback(SamplerEpochCallback(sampler))
        return sampler

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if self.model.training:
            # Running totals: a single value per logging window (TRL averages the lists it logs).
            self._metrics["train"]["rollouts/total"] = [float(self.rollouts.total)]
            self._metrics["train"]["rollouts/kept"] = [float(self.rollouts.kept)]
            self._metrics["train"]["rollouts/grad_steps"] = [float(self.state.global_step)]
        mode = "train" if self.model.training else "eval"
        for part in self._method_parts:
            part.log(mode, self._metrics[mode])
        super().log(logs, start_time)

    def _save_checkpoint(self, model, trial):
        if self.args.save_only_model:
            # transformers then skips `_save_optimizer_and_scheduler`, where the state is written: write it first
            # into the checkpoint directory, before transformers writes trainer_state.json there last (so a
            # checkpoint that looks complete holds it) and before it rotates older checkpoints away. A resume from
            # such a checkpoint restores the state with a fresh optimizer, as transformers resumes it.
            folder = f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
            self._save_checkpointed_state(os.path.join(self._get_output_dir(trial=trial), folder))
        super()._save_checkpoint(model, trial)

    def _save(self, output_dir=None, state_dict=None):
        super()._save(output_dir, state_dict)
        output_dir = output_dir if output_dir is not None else self.args.output_dir
        plain = state_dict is None and not self.is_deepspeed_enabled and not self.is_fsdp_enabled
        if plain and self.args.save_on_each_node and self.args.should_save and not has_model_weights(output_dir):
            # transformers (5.2x) writes a `PreTrainedModel`'s weights from the world's process 0 only
            # (`should_save_on_this_rank`), even with `save_on_each_node=True`: the main process of every other node
            # wrote the rest of the checkpoint but no weights, so that node could not resume from it. Write them
            # (data parallel; DeepSpeed and FSDP write per-process shards of their own).
            model = self.accelerator.unwrap_model(self.model, keep_torch_compile=False)
            if isinstance(model, PreTrainedModel):
                model.should_save_on_this_rank = lambda is_main_process: is_main_process
                try:
                    model.save_pretrained(output_dir, state_dict=state_dict, is_main_process=True)
                finally:
                    del model.should_save_on_this_rank

    def _save_optimizer_and_scheduler(self, output_dir):
        # Written here, before transformers writes trainer_state.json last, so that every checkpoint that looks
        # complete also holds this state.
        super()._save_optimizer_and_scheduler(output_dir)
        self._save_checkpointed_state(output_dir)

    def _save_checkpointed_state(self, output_dir: str) -> None:
        """`zvp_state.json` (every registered object's state) in `output_dir`, from the process that saves; tmp file
        + rename, so a crash never leaves half a file."""
        if not self.args.should_save:
            return
        os.makedirs(output_dir, exist_ok=True)
        # Objects with files of their own write them first (each atomically), so that zvp_state.json, once there,
        # never refers to a file that is not.
        state = {
            name: obj.save(output_dir) if hasattr(obj, "save") else obj.state_dict()
            for name, obj in self._checkpointed_state.items()
        }
        # Which method wrote it: a resume with another method's trainer is refused (`_load_optimizer_and_scheduler`).
        state[WRITER_KEY] = {"trainer": type(self).__name__, "parts": self.part_names}
        tmp = os.path.join(output_dir, STATE_FILE + ".tmp")
        with open(tmp, "w") as f:
            json.dump(state, f)
        os.replace(tmp, os.path.join(output_dir, STATE_FILE))

    def _load_optimizer_and_scheduler(self, checkpoint):
        super()._load_optimizer_and_scheduler(checkpoint)
        if checkpoint is None:
            return
        path = os.path.join(checkpoint, STATE_FILE)
        if not os.path.exists(path):
            raise FileNotFoundError(
                f"{path} is missing: the checkpoint was not written by a zvp_trl trainer (or is incomplete), so its "
                "per-run state cannot be restored. Resume from a complete checkpoint of the same algorithm."
            )
        with open(path) as f:
            state = json.load(f)
        writer = state.pop(WRITER_KEY, None)  # absent from checkpoints written before it was recorded
        if writer is not None and sorted(writer["parts"]) != sorted(self.part_names):
            raise ValueError(
                f"{checkpoint} was written by {writer['trainer']} (method parts: {', '.join(writer['parts']) or 'none'})"
                f", and this is {type(self).__name__} (method parts: {', '.join(self.part_names) or 'none'}): a "
                "resumed run would go on with another method. Resume with the algorithm that wrote it, or start a new "
                "run from its model weights (model_name_or_path) instead of resuming."
            )
        missing = sorted(set(self._checkpointed_state) - set(state))
        if missing:
            raise ValueError(
                f"{path} has no {', '.join(missing)} state: the checkpoint was written by a different algorithm "
                f"(its state holds {', '.join(sorted(state))}). Resume with the trainer that wrote it, or start a new "
                "run from its model weights (model_name_or_path) instead of resuming."
            )
        for name, obj in self._checkpointed_state.items():
            if hasattr(obj, "save"):
                obj.load_state_dict(state[name], directory=checkpoint)
            else:
                obj.load_state_dict(state[name])


class GRPOBaselineTrainer(ZVPBaseTrainer):
    """Plain GRPO (TRL's `GRPOTrainer`, unchanged) with the package's rollout accounting and `max_rollouts` budget, so
    the baseline is compared with the other methods on the same terms. `args` is a [`GRPOBaselineConfig`] (a plain
    `GRPOConfig` works too, without the budget)."""

    _config_class = GRPOBaselineConfig
    _default_suffix = "GRPO"
    _accepted_config = GRPOConfig
