# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
import contextlib

import torch
from accelerate.utils import gather_object
from transformers import LogitsProcessorList

from ..algorithms.erpo import PromptTemperatureHistory
from ..algorithms.prompt_ids import prompt_id, token_prompt_id
from . import papers
from .base import ZVPBaseTrainer
from .dynamic_sampling_trainer import GRPODSTrainer
from .erpo_config import ERPOConfig, ERPODSConfig, ERPORLZVPConfig
from .per_row_temperature import (
    PerRowTemperatureLogitsProcessor,
    RowScaledHiddenStates,
    backbone_of,
    check_row_scalable,
    generate_grouped_by_temperature,
    per_request_sampling_params,
    per_row_sampling_agreement,
    temperatures_for_continuations,
)
from .rl_zvp_trainer import RLZVPTrainer


class ERPOTrainer(ZVPBaseTrainer):
    """
    Trainer for ERPO, from [Explore Data Left Behind in Reinforcement Learning for Reasoning Language
    Models](https://huggingface.co/papers/2511.04800).

    A per-prompt history ([`~zvp_trl.algorithms.erpo.PromptTemperatureHistory`]) records each prompt's groups. A prompt whose
    group came back all-correct (a *residual* prompt, which gives GRPO no signal) is sampled at a higher temperature
    the next time it is drawn, raised by `erpo_temperature_step` up to `erpo_max_temperature`, so it yields incorrect
    completions and a learning signal again. Optional RA gives all-correct groups a small negative advantage.

    Rows of one generation batch are sampled at their own temperatures on every generation path: transformers
    `generate` (a per-row logits processor), vLLM colocate (one `SamplingParams` per request) and vLLM server (one
    request per distinct temperature, order restored). With `erpo_logprob_temperature="sampling"` the old, new and
    reference log-probs and entropies are computed at each row's temperature too, by scaling the last hidden state
    before TRL's fused LM head (exact for heads without bias or logit soft-capping). The history is updated from the
    gathered prompt ids and rewards, so it is identical on every process, and it is saved in every checkpoint. A group
    with an unscored completion (every reward function returned `None`/NaN for it) counts as mixed: it never raises
    the temperature and is not residual.

    A prompt's temperature rises only when the prompt is drawn again (about once per epoch without dynamic
    sampling), so in a run of a few epochs it is raised a few times at most; see [`ERPODSTrainer`] for ERPO on DAPO's
    dynamic sampling, the combination of the ERPO paper.

    Tools and environments (`tools`, `environment_factory` with a `train_dataset`) keep each row's temperature through
    TRL's multi-turn tool loop: the rows that called a tool continue at their own prompt's temperature. With
    environment-owned data (`environment_factory` and no `train_dataset`) a prompt is the one `reset()` returned,
    identified by its token ids ([`~zvp_trl.algorithms.prompt_ids.token_prompt_id`]). Not supported: transformers continuous
    batching (one generation config per call).

    Args are those of [`~trl.GRPOTrainer`]; `args` is an [`ERPOConfig`].
    """

    _tag_names = ["trl", "erpo"]
    _name = "ERPO"
    _paper = papers.ERPO
    _config_class = ERPOConfig
    _default_suffix = "ERPO"

    def __init__(self, model, reward_funcs=None, args=None, *pargs, **kwargs):
        train_dataset = kwargs.get("train_dataset", pargs[0] if pargs else None)
        # Environment-owned data: the rows are placeholders and each prompt comes from the environment's reset(), so a
        # prompt is identified by its token ids, at its first generation call.
        self._prompts_from_environment = kwargs.get("environment_factory") is not None and train_dataset is None
        super().__init__(model, reward_funcs, args, *pargs, **kwargs)
        args = self.args
        self.erpo_history = PromptTemperatureHistory(
            base=args.temperature,
            step=args.erpo_temperature_step,
            max_temperature=args.erpo_max_temperature,
            trigger=args.erpo_trigger,
            on_mixed=args.erpo_on_mixed,
        )
        self._checkpointed_state["erpo_history"] = self.erpo_history
        self._row_scaler = None
        if args.erpo_logprob_temperature == "sampling":
            self._row_scaler = RowScaledHiddenStates()
            policy = self.accelerator.unwrap_model(self.model)
            check_row_scalable(policy.get_base_model() if hasattr(policy, "get_base_model") else policy)
            self._row_scaler.attach(backbone_of(policy))
            if self.ref_model is not None:
                ref = self.accelerator.unwrap_model(self.ref_model)
                check_row_scalable(ref)
                self._row_scaler.attach(backbone_of(ref))
        self._sampling_temperatures = None  # local rows' sampling temperatures, during generation
        self._temperatures_from_prompts = False  # environment-owned data: set at the first generation call
        self._sampled_prompts = None  # the prompt ids of the first generation call (tool-loop continuations follow)
        self._environment_prompt_ids = None  # environment-owned data: this batch's prompt ids, from its token ids
        self._logprob_temperatures = None  # (rows,) temperatures of the next log-prob forward, when not all base

    # ----- generation -------------------------------------------------------------------------------------------

    def _generate_and_score_completions(self, inputs):
        if not self.model.training:
            # Evaluation samples at the base temperature and leaves the history alone.
            return super()._generate_and_score_completions(inputs)
        if self._prompts_from_environment:
            local_ids = None  # known at the first generation call, from the prompts reset() returned
            self._temperatures_from_prompts = True
        else:
            local_ids = [prompt_id(row, self.args.prompt_id_column) for row in inputs]
            self._set_sampling_temperatures([self.erpo_history.temperature(pid) for pid in local_ids])
        try:
            output = super()._generate_and_score_completions(inputs)
            if local_ids is None:
                local_ids = self._environment_prompt_ids
            temperatures = self._sampling_temperatures
        finally:
            self._sampling_temperatures = None
            self._temperatures_from_prompts = False
            self._sampled_prompts = None
            self._environment_prompt_ids = None
            self._logprob_temperatures = None
        self._update_history(output, local_ids, self._gathered_scalar_rewards())
        output["erpo_temperatures"] = torch.tensor(temperatures, dtype=torch.float32, device=self.accelerator.device)
        self._log_sampling_agreement(output)
        return output

    def _set_sampling_temperatures(self, temperatures: list[float]) -> None:
        """This generation batch's per-row sampling temperatures (and, when some are raised, those of the log-prob
        forwards of the batch's old/reference log-probs)."""
        self._sampling_temperatures = temperatures
        if self._row_scaler is not None and any(t != self.erpo_history.base for t in temperatures):
            self._logprob_temperatures = torch.tensor(temperatures, dtype=torch.float32)

    def _log_sampling_agreement(self, output) -> None:
        """vLLM only: how well the trainer's log-probs match the sampler's, split by base and elevated rows.

        With `erpo_logprob_temperature="sampling"`, the trainer scores each row at the temperature vLLM sampled it at,
        so elevated rows agree with vLLM as well as base rows do; at the base temperature they would not. Logged as
        `erpo/is_ratio_{base,elevated}` (mean over rows of the row's mean token ratio `exp(trainer - vLLM)`, before
        TRL's clipping or masking) and `erpo/logp_diff_{base,elevated}` (mean over rows of the mean `|trainer - vLLM|`
        per token); NaN when the batch has no such row.
        """
        old = output.get("old_per_token_logps")
        sampling = output.get("sampling_per_token_logps")
        if old is None or sampling is None:
            return
        stats = per_row_sampling_agreement(old, sampling, output["completion_mask"])
        rows = torch.cat([stats, output["erpo_temperatures"][:, None].to(stats)], dim=1)
        rows = self.accelerator.gather(rows) if self.accelerator.num_processes > 1 else rows
        elevated = rows[:, 2] > self.erpo_history.base
        metrics = self._metrics["train"]
        for name, select in (("base", ~elevated), ("elevated", elevated)):
            chosen = rows[select]  # nanmean of no rows is NaN
            metrics[f"erpo/is_ratio_{name}"].append(chosen[:, 0].nanmean().item())
            metrics[f"erpo/logp_diff_{name}"].append(chosen[:, 1].nanmean().item())

    def _update_history(self, output, local_ids, rewards: torch.Tensor) -> None:
        """Updates the history from the gathered prompt ids and scalar rewards `(all processes' rows,)` of the batch,
        logs ERPO's metrics and, with RA, sets the advantage of all-correct groups."""
        num_generations = self.num_generations
        all_ids = gather_object(local_ids) if self.accelerator.num_processes > 1 else list(local_ids)
        if len(all_ids) != rewards.size(0) or len(all_ids) % num_generations:
            raise RuntimeError(
                f"{len(all_ids)} gathered prompt ids for {rewards.size(0)} gathered rewards (groups of "
                f"{num_generations})."
            )
        group_ids = all_ids[::num_generations]
        for g, pid in enumerate(group_ids):
            if any(other != pid for other in all_ids[g * num_generations : (g + 1) * num_generations]):
                raise RuntimeError(
                    "The rows of one group carry different prompt ids; prompt_id_column must be constant across "
                    "the copies of a prompt. With environment-owned data, reset() must return the same prompt to "
                    "every rollout of a group."
                )
        correct = rewards > self.args.correct_threshold  # NaN (unscored) compares False: never correct
        num_correct = correct.view(-1, num_generations).sum(dim=1).tolist()
        # A group with an unscored row is mixed (None), as for RL-ZVP and DS: never all-wrong nor residual, so a prompt
        # whose gold answer cannot be parsed is not elevated by the all_correct_or_all_wrong trigger.
        unscored = torch.isnan(rewards).view(-1, num_generations).any(dim=1).tolist()
        num_correct = [None if u else k for k, u in zip(num_correct, unscored, strict=True)]
        base = self.erpo_history.base
        sampled_at = self.erpo_history.update(group_ids, num_correct, num_generations)

        elevated = [t > base for t in sampled_at]
        all_correct = [k == num_generations for k in num_correct]
        zero_variance = [k in (0, num_generations) for k in num_correct]
        reactivated = [e and not z for e, z in zip(elevated, zero_variance, strict=True)]
        n = len(group_ids)
        metrics = self._metrics["train"]
        metrics["erpo/temperature_mean"].append(sum(sampled_at) / n)
        metrics["erpo/temperature_max"].append(max(sampled_at))
        metrics["erpo/frac_elevated"].append(sum(elevated) / n)
        # Share of this batch's elevated prompts whose group came back mixed (NaN when none was elevated).
        metrics["erpo/frac_reactivated"].append(sum(reactivated) / sum(elevated) if any(elevated) else float("nan"))
        metrics["erpo/frac_residual"].append(sum(zero_variance) / n)
        metrics["erpo/frac_all_correct"].append(sum(all_correct) / n)
        metrics["erpo/num_elevated_prompts"].append(float(len(self.erpo_history.temperatures)))

        if self.args.erpo_ra_advantage > 0:
            signs = self._row_signs(rewards, num_generations)
            local_positive = (self._local_rows(signs, output["prompt_ids"].size(0)) > 0).to(
                output["advantages"].device
            )
            output["advantages"] = torch.where(
                local_positive,
                torch.full_like(output["advantages"], -self.args.erpo_ra_advantage),
                output["advantages"],
            )
            metrics["erpo/frac_ra"].append((signs[::num_generations] > 0).float().mean().item())

    def _generate_single_turn(self, prompt_ids, images, multimodal_fields, num_generations, *args, **kwargs):
        args = (prompt_ids, images, multimodal_fields, num_generations, *args)
        if self._temperatures_from_prompts and self._sampling_temperatures is None:
            # Environment-owned data: the prompts reset() returned identify the rows (at the batch's first turn).
            self._environment_prompt_ids = [token_prompt_id(ids) for ids in prompt_ids]
            self._set_sampling_temperatures([self.erpo_history.temperature(i) for i in self._environment_prompt_ids])
        temperatures = self._sampling_temperatures
        if temperatures is None:
            return super()._generate_single_turn(*args, **kwargs)
        if self._sampled_prompts is None:  # the batch's first turn: one row per temperature
            if len(temperatures) != len(prompt_ids):
                raise RuntimeError(
                    f"Per-row temperatures were set for {len(temperatures)} rows but generation got {len(prompt_ids)}."
                )
            self._sampled_prompts = [list(ids) for ids in prompt_ids]
        else:  # TRL's tool loop: the rows that called a tool continue, each at its own prompt's temperature
            temperatures = temperatures_for_continuations(prompt_ids, self._sampled_prompts, temperatures)
        if self.use_vllm:
            context = self._vllm_per_row_temperatures(temperatures, num_generations)
        elif all(t == self.erpo_history.base for t in temperatures):
            context = contextlib.nullcontext()
        else:
            context = self._generate_per_row_temperatures(temperatures)
        with context:
            return super()._generate_single_turn(*args, **kwargs)

    @contextlib.contextmanager
    def _generate_per_row_temperatures(self, temperatures):
        """transformers `generate`: add a per-row logits processor to the model TRL generates with."""
        unwrapped = self.accelerator.unwrap_model(self.model_wrapped)
        factors = torch.tensor(temperatures, dtype=torch.float32) / self.erpo_history.base
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

    # ----- loss --------------------------------------------------------------------------------------------------

    def _compute_loss(self, model, inputs):
        temperatures = inputs.get("erpo_temperatures")
        if self._row_scaler is not None and temperatures is not None:
            if bool((temperatures != self.erpo_history.base).any()):
                self._logprob_temperatures = temperatures
        try:
            return super()._compute_loss(model, inputs)
        finally:
            self._logprob_temperatures = None

    def _get_per_token_logps_and_entropies(self, model, input_ids, *args, **kwargs):
        temperatures = self._logprob_temperatures
        if temperatures is None:
            return super()._get_per_token_logps_and_entropies(model, input_ids, *args, **kwargs)
        if temperatures.numel() != input_ids.size(0):
            raise RuntimeError(
                f"Per-row temperatures were set for {temperatures.numel()} rows but the log-prob forward got "
                f"{input_ids.size(0)}."
            )
        scales = self.erpo_history.base / temperatures.float()
        with self._row_scaler.active(scales):
            return super()._get_per_token_logps_and_entropies(model, input_ids, *args, **kwargs)


class ERPORLZVPTrainer(ERPOTrainer, RLZVPTrainer):
    """
    ERPO's per-prompt sampling temperatures with RL-ZVP's entropy-guided advantages for zero-variance groups.

    The two act on different stages: ERPO decides at which temperature each prompt is sampled (and updates its
    history from the group's rewards), RL-ZVP shapes the advantages of the groups that still come back zero-variance,
    from the current policy's entropy at each row's sampling temperature. Every option of [`ERPOTrainer`] and
    [`RLZVPTrainer`] applies; `args` is an [`ERPORLZVPConfig`]. The model card cites both papers.
    """

    _tag_names = ["trl", "erpo", "rl-zvp"]
    _name = "ERPO + RL-ZVP"
    _paper = papers.citing_also(papers.ERPO, papers.RL_ZVP)
    _config_class = ERPORLZVPConfig
    _default_suffix = "ERPO-RL-ZVP"


class ERPODSTrainer(GRPODSTrainer, ERPOTrainer):
    """
    ERPO on top of DAPO's dynamic sampling: the combination the ERPO paper trains (per-prompt temperatures and RA on a
    DAPO baseline).

    Each generation round of [`GRPODSTrainer`] is an ERPO generation: its prompts are sampled at their own
    temperatures, every rolled-out group (kept or dropped) updates the prompt history, and RA sets the advantage of
    all-correct groups. Dynamic sampling then drops the groups with no signal: all-wrong groups, and all-correct ones
    unless RA gave them an advantage (`erpo_ra_advantage > 0`). A prompt is "all-correct" for both by
    `correct_threshold`. Every option of [`ERPOTrainer`] and [`GRPODSTrainer`] applies; `args` is an
    [`ERPODSConfig`]. The model card cites both papers.
    """

    _tag_names = ["trl", "erpo", "grpo-ds", "dapo"]
    _name = "ERPO + GRPO-DS"
    _paper = papers.citing_also(papers.ERPO, papers.DAPO)
    _config_class = ERPODSConfig
    _default_suffix = "ERPO-DS"

    def _group_signs(self, rewards: torch.Tensor) -> torch.Tensor:
        signs = super()._group_signs(rewards)
        if self.args.erpo_ra_advantage > 0:
            signs = torch.where(signs > 0, torch.zeros_like(signs), signs)  # RA's signal: kept
        return signs
