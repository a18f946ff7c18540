# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
import torch

from ...core.parts import MethodPart
from ...core.per_row_temperature import per_row_sampling_agreement
from ...core.prompt_ids import prompt_id
from ...core.step import GenerationStep
from .algorithm import PromptTemperatureHistory


class ERPOPart(MethodPart):
    """ERPO as a part (see [`ERPOTrainer`]): before a training round, each row's sampling temperature from its
    prompt's history (at the first generation call for environment-owned data); after scoring, the history update from
    the gathered prompt ids and rewards, RA, ERPO's metrics; in the loss, log-probs at each row's temperature
    (`erpo_logprob_temperature="sampling"`)."""

    name = "erpo"

    def __init__(self, context):
        super().__init__(context)
        args = self.args
        self.history = PromptTemperatureHistory(
            base=args.temperature,
            step=args.erpo_temperature_step,
            max_temperature=args.erpo_max_temperature,
            trigger=args.erpo_trigger,
            on_mixed=args.erpo_on_mixed,
        )
        if args.erpo_logprob_temperature == "sampling":
            context.enable_row_temperature_logprobs()

    def checkpointed_state(self) -> dict[str, object]:
        return {"erpo_history": self.history}

    def warm_start(self, probe) -> None:
        """The probe as a first epoch: every probed group (sampled at the base temperature) updates its prompt's
        temperature by ERPO's rule, as a training batch would (a group with an unscored completion is mixed)."""
        rows = probe.rows
        num_correct = [None if row.get("num_unscored") else row["num_correct"] for row in rows]
        self.history.update([row["prompt_id"] for row in rows], num_correct, self.context.num_generations)

    # ----- generation -------------------------------------------------------------------------------------------

    def before_generation(self, step: GenerationStep) -> None:
        if not self.context.training:
            return  # evaluation samples at the base temperature and leaves the history alone
        if self.context.prompts_from_environment:
            # Each prompt is identified by its token ids (zvp_trl.core.prompt_ids.token_prompt_id).
            step.temperatures_from_prompts = True  # known at the first generation call (before_sampling)
            return
        step.prompt_ids = [prompt_id(row, self.args.prompt_id_column) for row in step.rows]
        step.sampling_temperatures = [self.history.temperature(pid) for pid in step.prompt_ids]

    def before_sampling(self, step: GenerationStep) -> None:
        if step.temperatures_from_prompts and step.environment_prompt_ids is not None:
            step.sampling_temperatures = [self.history.temperature(pid) for pid in step.environment_prompt_ids]

    def after_scoring(self, step: GenerationStep, output: dict) -> None:
        if not self.context.training:
            return
        local_ids = step.prompt_ids if step.prompt_ids is not None else step.environment_prompt_ids
        temperatures = step.sampling_temperatures
        self._update_history(output, local_ids, step.scalar_rewards(self.context.reward_weights))
        output["erpo_temperatures"] = torch.tensor(
            temperatures, dtype=torch.float32, device=self.context.device
        )
        self._log_sampling_agreement(output)

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
        collectives = self.context.collectives
        stats = per_row_sampling_agreement(old, sampling, output["completion_mask"])
        rows = torch.cat([stats, output["erpo_temperatures"][:, None].to(stats)], dim=1)
        rows = collectives.gather(rows) if collectives.num_processes > 1 else rows
        elevated = rows[:, 2] > self.history.base
        metrics = self.context.metrics["train"]
        for name, select in (("base", ~elevated), ("elevated", elevated)):
            chosen = rows[select]  # nanmean of no rows is NaN
            metrics[f"erpo/is_ratio_{name}"].append(chosen[:, 0].nanmean().item())
            metrics[f"erpo/logp_diff_{name}"].append(chosen[:, 1].nanmean().item())

    def _update_history(self, output, local_ids, rewards: torch.Tensor) -> None:
        """Updates the history from the gathered prompt ids and scalar rewards `(all processes' rows,)` of the batch,
        logs ERPO's metrics and, with RA, sets the advantage of all-correct groups."""
        num_generations = self.context.num_generations
        all_ids = self.context.collectives.gather_object(local_ids)
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
        base = self.history.base
        sampled_at = self.history.update(group_ids, num_correct, num_generations)

        elevated = [t > base for t in sampled_at]
        all_correct = [k == num_generations for k in num_correct]
        zero_variance = [k in (0, num_generations) for k in num_correct]
        reactivated = [e and not z for e, z in zip(elevated, zero_variance, strict=True)]
        n = len(group_ids)
        metrics = self.context.metrics["train"]
        metrics["erpo/temperature_mean"].append(sum(sampled_at) / n)
        metrics["erpo/temperature_max"].append(max(sampled_at))
        metrics["erpo/frac_elevated"].append(sum(elevated) / n)
        # Share of this batch's elevated prompts whose group came back mixed (NaN when none was elevated).
        metrics["erpo/frac_reactivated"].append(sum(reactivated) / sum(elevated) if any(elevated) else float("nan"))
        metrics["erpo/frac_residual"].append(sum(zero_variance) / n)
        metrics["erpo/frac_all_correct"].append(sum(all_correct) / n)
        metrics["erpo/num_elevated_prompts"].append(float(len(self.history.temperatures)))

        if self.args.erpo_ra_advantage > 0:
            signs = self.context.row_signs(rewards, num_generations)
            local_positive = (self.context.local_rows(signs, output["prompt_ids"].size(0)) > 0).to(
                output["advantages"].device
            )
            output["advantages"] = torch.where(
                local_positive,
                torch.full_like(output["advantages"], -self.args.erpo_ra_advantage),
                output["advantages"],
            )
            metrics["erpo/frac_ra"].append((signs[::num_generations] > 0).float().mean().item())

    def groups_with_signal(self, group_signs: torch.Tensor) -> torch.Tensor:
        if self.args.erpo_ra_advantage > 0:  # RA's signal: all-correct groups keep an advantage
            return torch.where(group_signs > 0, torch.zeros_like(group_signs), group_signs)
        return group_signs

    # ----- loss --------------------------------------------------------------------------------------------------

    def loss_logprob_temperatures(self, inputs: dict) -> torch.Tensor | None:
        temperatures = inputs.get("erpo_temperatures")
        if temperatures is not None and bool((temperatures != self.history.base).any()):
            return temperatures
        return None
