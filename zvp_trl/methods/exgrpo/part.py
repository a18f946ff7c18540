# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
import json
import random
import warnings

import torch
from trl.trainer.utils import nanmax, nanmin

from ...core.loss import aggregate_loss, entropy_bonus, kl_penalty
from ...core.parts import MethodPart
from ...core.prompt_ids import dataset_prompt_ids, prompt_id
from ...core.step import GenerationStep, LossStep
from .algorithm import (
    exgrpo_bucket_weights,
    exgrpo_per_token_loss,
    mean_token_entropy,
    replacements_for_retired,
    sample_buffer_prompts,
)
from .buffer import ExperienceBuffer


# The multimodal inputs TRL's loss forward passes on (a row's images and their layout).
MULTIMODAL_INPUTS = (
    "pixel_values",
    "image_grid_thw",
    "num_images",
    "pixel_attention_mask",
    "spatial_shapes",
    "num_tiles",
    "image_sizes",
    "token_type_ids",
    "mm_token_type_ids",
    "image_position_ids",
)


class ExGRPOPhase:
    """Delayed-start state of ExGRPO (checkpointed): whether the mixed phase started, and how many replay draws were
    made (seeds the draw that is identical on every process)."""

    def __init__(self, active: bool = False):
        self.active = active
        self.draws = 0

    def state_dict(self) -> dict:
        return {"active": self.active, "draws": self.draws}

    def load_state_dict(self, state: dict) -> None:
        self.active = bool(state["active"])
        self.draws = int(state["draws"])


def _json_safe(row):
    # The buffer saves its rows as JSON: values JSON cannot hold (e.g. numpy scalars) are stored as their string form.
    return json.loads(json.dumps(row, default=str))


class ExGRPOPart(MethodPart):
    """ExGRPO as a part (see [`ExGRPOTrainer`]): before a training round, retired questions replaced and buffered
    questions replayed (`step.rows`, `step.completion_overrides`, `step.replayed_rows`); after scoring, the replay
    flags and recorded log-probs of the batch, the buffer update and the delayed start; in the mixed phase, the whole
    loss."""

    name = "exgrpo"

    @classmethod
    def refuse_construction(cls, kwargs: dict) -> None:
        if kwargs.get("rollout_func") is not None:
            raise ValueError(
                "ExGRPO injects replayed trajectories into TRL's own generation; a custom rollout_func is not "
                "supported. Leave rollout_func=None."
            )

    def __init__(self, context):
        super().__init__(context)
        args = self.args
        self.buffer = ExperienceBuffer(
            max_prompts=args.exgrpo_max_buffer_prompts, max_trajectories=args.exgrpo_max_trajectories_per_prompt
        )
        self.phase = ExGRPOPhase(active=args.exgrpo_start_threshold is None)
        self._dataset_pids = None  # prompt id of every train_dataset row, built at the first retirement
        self.refuse_environments(context)
        dataset = context.train_dataset
        if args.exgrpo_exclude_retired and not (hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__")):
            raise ValueError(
                "exgrpo_exclude_retired=True replaces retired questions by other train_dataset rows, which needs a "
                f"map-style train_dataset (got {type(dataset).__name__}). Pass a map-style dataset or set "
                "exgrpo_exclude_retired=False."
            )
        # Sharded parameters: every no-grad forward is a collective (same calls on every process, see the docstring).
        self.collective_forwards = context.sharded_forwards

    @staticmethod
    def refuse_environments(context) -> None:
        """The environment cases a replay has no defined meaning in (docs/exgrpo.md): environment-owned data and an
        environment that owns the reward."""
        if context.prompts_from_environment:
            raise ValueError(
                "ExGRPO with environment_factory needs a train_dataset: without one each prompt is whatever the "
                "environment's reset() returns, so a buffered question could not be asked again with the prompt its "
                "stored trajectory answers. Pass a train_dataset whose rows reset() reads."
            )
        owners = sorted(type(env).__name__ for env in context.environments if hasattr(env, "get_reward"))
        if owners:
            raise ValueError(
                f"ExGRPO does not support an environment that owns the reward ({', '.join(owners)} defines "
                "get_reward): a replayed trajectory's tool calls are not run again, so its environment is the one "
                "reset() left and its get_reward() would not score that trajectory. Score with reward_funcs that "
                "read the completions instead."
            )

    def checkpointed_state(self) -> dict[str, object]:
        return {"exgrpo_buffer": self.buffer, "exgrpo_phase": self.phase}

    def warm_start(self, probe) -> None:
        """Every probed group updates the buffer as a collected training group does: an always-solved prompt is
        retired; a partially solved one enters its bucket (its number of correct samples) with the probe's correct
        trajectories (token ids and the sampling policy's log-probs, the policy this run starts from) and its
        training row, to be replayed and shaped like any other."""
        G = self.context.num_generations
        column = self.args.prompt_id_column
        index_of = {pid: i for i, pid in enumerate(dataset_prompt_ids(self.context.train_dataset, column))}
        by_prompt: dict[int, list[dict]] = {}
        for trajectory in probe.trajectories:
            by_prompt.setdefault(trajectory["index"], []).append(trajectory)
        for row in probe.rows:
            pid, stored = row["prompt_id"], by_prompt.get(row["index"], [])
            if pid not in index_of:
                continue  # a probed prompt this run does not train on (a filtered data set)
            trajectories = [
                (torch.tensor(t["completion_ids"]), torch.tensor(t["logps"], dtype=torch.float32)) for t in stored
            ]
            data_row = _json_safe(self.context.dataset_row(index_of[pid])) if stored else None
            prompt_tokens = stored[0]["prompt_ids"] if stored else None
            self.buffer.update(pid, row["num_correct"], G, data_row, prompt_tokens, trajectories)

    # ------------------------------------------------------------------ the round

    def choose_rows(self, step: GenerationStep) -> None:
        if not self.context.training:
            return
        G = self.context.num_generations
        mixed = self.phase.active
        rows, num_fresh_replaced = self.replace_retired(step.rows)
        replays, num_replayed = {}, 0
        if mixed and self.args.exgrpo_replay_ratio > 0:
            rows, replays, num_replayed = self.plan_replays(rows)
        step.rows = rows
        step.completion_overrides = {group * G: t for group, t in replays.items()} or None
        replayed = [False] * len(rows)
        for group in replays:
            replayed[group * G] = True
        step.replayed_rows = replayed
        step.part_data[self.name] = {
            "mixed": mixed,
            "replays": replays,
            "replayed": num_replayed,
            "redrawn": num_fresh_replaced,
        }

    def after_scoring(self, step: GenerationStep, output: dict) -> None:
        context, round_ = self.context, step.part_data.get(self.name)
        if round_ is None:  # evaluation
            return
        G = context.num_generations
        mixed, replays = round_["mixed"], round_["replays"]
        device = context.device
        completion_ids = output["completion_ids"]
        B, T = completion_ids.shape
        replay = torch.zeros(B, dtype=torch.bool, device=device)
        recorded = torch.zeros((B, T), dtype=torch.float32, device=device)
        tool_mask = output.get("tool_mask")
        for group, trajectory in replays.items():
            row = group * G
            ids = trajectory["ids"][:T]
            if not torch.equal(completion_ids[row, : len(ids)].cpu(), ids.to(completion_ids.dtype)):
                raise RuntimeError("ExGRPO: the replayed trajectory was not injected into its row.")
            self.check_replayed_tool_mask(trajectory, tool_mask, output["completion_mask"][row], row, len(ids))
            replay[row] = True
            recorded[row, : len(ids)] = trajectory["logps"][:T].to(device=device, dtype=torch.float32)
        output["exgrpo_replay"] = replay
        output["exgrpo_recorded_logps"] = recorded
        output["exgrpo_mixed"] = torch.tensor(float(mixed), device=device)  # 0-dim: copied into every chunk

        # (all processes' rows,) bool: an unscored row (NaN) compares False, so it is never correct.
        correct = step.scalar_rewards(context.reward_weights) > self.args.correct_threshold
        collect = mixed or self.args.exgrpo_collect_during_warmup
        # With tools, the messages TRL's tool loop produced for each row (the base trainer keeps them in the step).
        messages = getattr(step, "completions", None)
        self.update_buffer(step.rows, output, correct, replay, collect, messages)
        if not self.phase.active and correct.float().mean().item() > self.args.exgrpo_start_threshold:
            self.phase.active = True  # from the next generation batch on, for good

        metrics = context.metrics["train"]
        metrics["exgrpo/active"].append(float(mixed))
        metrics["exgrpo/replay_frac"].append(round_["replayed"] / (correct.numel() // G))
        metrics["exgrpo/buffer_prompts"].append(float(len(self.buffer)))
        metrics["exgrpo/retired"].append(float(len(self.buffer.retired)))
        replaced = torch.tensor(float(round_["redrawn"]), device=device)
        metrics["exgrpo/retired_redrawn"].append(context.collectives.reduce(replaced, reduction="sum").item())
        sizes = {k: len(v) for k, v in self.buffer.buckets().items()}
        for k in range(G):
            metrics[f"exgrpo/bucket_{k}"].append(float(sizes.get(k, 0)))

    @staticmethod
    def check_replayed_tool_mask(trajectory: dict, tool_mask, completion_mask, row: int, length: int) -> None:
        """The replayed row's tool mask must be the stored one (its tool-result tokens out of the loss), all ones for
        a trajectory without tool results, on the tokens the loss sees (`completion_mask`: TRL zeroes both masks of
        a truncated row with `mask_truncated_completions`)."""
        stored = trajectory.get("tool_mask")
        if tool_mask is None:
            if stored is not None:
                raise RuntimeError(
                    "ExGRPO: a replayed trajectory has tool-result tokens, but this run has no tools, so its batch "
                    "has no tool_mask to keep them out of the loss. Resume a buffer collected with tools with the "
                    "same tools / environment_factory."
                )
            return
        seen = completion_mask[:length].cpu().long()
        expected = torch.ones(length, dtype=torch.long) if stored is None else stored[:length].long()
        if not torch.equal(tool_mask[row, :length].cpu().long() * seen, expected * seen):
            raise RuntimeError("ExGRPO: the replayed row's tool_mask is not the stored trajectory's.")

    def compute_loss(self, loss: LossStep, model, inputs: dict):
        # On-policy phase (and eval): TRL's loss, unchanged. The phase is the same on every process, so every process
        # runs the same collectives.
        if "exgrpo_mixed" not in inputs or not bool(inputs["exgrpo_mixed"]):
            return None
        return self.mixed_loss(loss, model, dict(inputs))

    # ------------------------------------------------------------------ generation side

    def select_trajectory(self, entry: dict, generator: torch.Generator) -> int:
        """Index of the stored trajectory of `entry` with the lowest mean token entropy under the current policy (one
        no-grad forward of all candidates, at the sampling temperature; ties: the first); a uniform draw with
        `exgrpo_trajectory_selection="random"`."""
        trajectories = entry["trajectories"]
        if len(trajectories) == 1:
            return 0
        if self.args.exgrpo_trajectory_selection == "random":
            return int(torch.randint(len(trajectories), (1,), generator=generator).item())
        device = self.context.device
        pad = self.context.pad_token_id
        width = max(len(t["ids"]) for t in trajectories)
        completion_ids = torch.full((len(trajectories), width), pad, dtype=torch.long, device=device)
        completion_mask = torch.zeros((len(trajectories), width), dtype=torch.long, device=device)
        model_tokens = torch.zeros((len(trajectories), width), dtype=torch.long, device=device)
        for i, t in enumerate(trajectories):
            completion_ids[i, : len(t["ids"])] = torch.as_tensor(t["ids"], dtype=torch.long, device=device)
            completion_mask[i, : len(t["ids"])] = 1
            # The entropy is the model's own: tool-result tokens are context, not part of the mean.
            mask = t.get("tool_mask")
            model_tokens[i, : len(t["ids"])] = 1 if mask is None else torch.as_tensor(mask, device=device)
        prompt = torch.as_tensor(entry["prompt_ids"], dtype=torch.long, device=device).expand(len(trajectories), -1)
        input_ids = torch.cat([prompt, completion_ids], dim=1)
        attention_mask = torch.cat([torch.ones_like(prompt), completion_mask], dim=1)
        with torch.no_grad():
            _, entropies, _ = self.context.logprobs(
                self.context.policy(),
                input_ids,
                attention_mask,
                width,
                batch_size=self.args.per_device_train_batch_size,
                compute_entropy=True,
            )
        return int(torch.argmin(mean_token_entropy(entropies.float(), model_tokens)).item())

    def plan_replays(self, inputs: list[dict]) -> tuple[list[dict], dict[int, dict], int]:
        """Replaces groups of the local rows by buffered questions. Returns the new rows, {local group: chosen
        trajectory} and the number of replayed groups over all processes."""
        G = self.context.num_generations
        local_groups = len(inputs) // G
        per_process = int(self.args.exgrpo_replay_ratio * local_groups)
        world = self.context.num_processes
        buckets = self.buffer.buckets()
        if per_process == 0 or not buckets:
            return inputs, {}, 0
        # Identical on every process: same buffer, same seed.
        generator = torch.Generator().manual_seed(self.args.seed * 1_000_003 + self.phase.draws)
        self.phase.draws += 1
        if self.args.exgrpo_question_selection == "random":  # ablation: uniform over the buffered questions
            pool = [pid for k in sorted(buckets) for pid in buckets[k]]
            order = torch.randperm(len(pool), generator=generator)[: per_process * world].tolist()
            chosen = [pool[i] for i in order]
        else:
            probs = exgrpo_bucket_weights(buckets.keys(), G, self.args.exgrpo_bucket_weighting)
            chosen = sample_buffer_prompts(buckets, probs, per_process * world, generator)
        mine = chosen[self.context.process_index :: world]
        entries = self.buffer.entries
        if self.collective_forwards and self.args.exgrpo_trajectory_selection != "random":
            # Sharded parameters: every process runs the selection forwards of all the chosen questions (the same
            # list everywhere, so the same forwards in the same order) and keeps its own. The entropy selection does
            # not use the generator, so the choices are those of the default path.
            picks = [self.select_trajectory(entries[pid], generator) for pid in chosen]
            picks = picks[self.context.process_index :: world]
        else:
            picks = [self.select_trajectory(entries[pid], generator) for pid in mine]
        inputs = list(inputs)
        replays = {}
        for group, (pid, pick) in enumerate(zip(mine, picks, strict=True)):
            entry = entries[pid]
            trajectory = entry["trajectories"][pick]
            for row in range(group * G, (group + 1) * G):
                inputs[row] = dict(entry["row"])
            replays[group] = trajectory
        return inputs, replays, len(chosen)

    def replace_retired(self, inputs: list[dict]) -> tuple[list[dict], int]:
        """Replaces this process's fresh groups of retired questions by non-retired `train_dataset` rows. The draw is
        seeded by `seed`, the global step and the process index (a resumed run draws the same rows). Returns the rows
        and the number of groups replaced on this process."""
        retired = self.buffer.retired
        if not self.args.exgrpo_exclude_retired or not retired:
            return inputs, 0
        G = self.context.num_generations
        column = self.args.prompt_id_column
        group_pids = [prompt_id(inputs[g * G], column) for g in range(len(inputs) // G)]
        if not any(pid in retired for pid in group_pids):
            return inputs, 0
        if self._dataset_pids is None:
            self._dataset_pids = dataset_prompt_ids(self.context.train_dataset, column)
        rng = random.Random(
            f"zvp-exgrpo-fresh-{self.args.seed}-{self.context.run.global_step}-{self.context.process_index}"
        )
        replacements = replacements_for_retired(group_pids, retired, self._dataset_pids, rng)
        if len(replacements) < sum(pid in retired for pid in group_pids):
            warnings.warn(
                "ExGRPO: fewer non-retired questions are left in train_dataset than retired ones were drawn; the "
                "remaining retired questions are rolled out again.",
                stacklevel=2,
            )
        inputs = list(inputs)
        for group, index in replacements.items():
            row = self.context.train_dataset[index]
            for r in range(group * G, (group + 1) * G):
                inputs[r] = dict(row)
        return inputs, len(replacements)

    def update_buffer(
        self,
        inputs,
        output,
        correct: torch.Tensor,
        replay: torch.Tensor,
        collect: bool = True,
        messages: list | None = None,
    ) -> None:
        """Builds this process's updates (one per local group), gathers them in process order and applies them all,
        so every process ends with the same buffer. With `collect=False` (the warm-up) only retirements apply: no
        trajectory is stored, no log-prob is computed and no bucket changes. `collect` is the same on every
        process (the phase is). A stored row keeps its `tool_mask` (when the batch has one: tools) and, when it has
        tool-result tokens, its entry of `messages` (the local rows' messages after TRL's tool loop)."""
        G = self.context.num_generations
        B = output["completion_ids"].size(0)
        local_groups = B // G
        first_group = self.context.process_index * local_groups
        k_all = correct.view(-1, G).sum(dim=1).tolist()
        column = self.args.prompt_id_column
        pids = [prompt_id(inputs[g * G], column) for g in range(local_groups)]
        if not collect:
            retired = [pid for g, pid in enumerate(pids) if k_all[first_group + g] >= G]
            if self.context.num_processes > 1:
                retired = self.context.collectives.gather_object(retired)
            for pid in retired:
                self.buffer.retire(pid)
            return
        correct_local = self.context.local_rows(correct, B)
        # Rows worth storing: correct, fresh, in a partially solved group of a non-retired question, non-empty mask.
        lengths = output["completion_mask"].sum(dim=1).tolist()
        store_rows = [
            row
            for row in range(B)
            if 0 < k_all[first_group + row // G] < G
            and pids[row // G] not in self.buffer.retired
            and bool(correct_local[row])
            and not bool(replay[row])
            and lengths[row] > 0
        ]
        logps = None
        index = torch.tensor(store_rows, dtype=torch.long, device=output["completion_ids"].device)
        if output.get("old_per_token_logps") is not None:  # same on every process (TRL's config)
            logps = output["old_per_token_logps"][index] if store_rows else None
        elif self.collective_forwards:
            # Sharded parameters: every process forwards all its B rows (B is the same everywhere), or none when no
            # group of the gathered batch is partially solved (then no process has a row to store), and indexes out
            # the rows to store.
            if any(0 < k < G for k in k_all):
                logps = self.generating_logps(output, None)[index]
        elif store_rows:
            logps = self.generating_logps(output, index)
        by_group: dict[int, list] = {}
        tool_mask = output.get("tool_mask")
        if store_rows:  # one copy to the CPU; each stored row is cloned out (a view would carry the whole batch)
            stored_ids, stored_logps = output["completion_ids"][index].cpu(), logps.float().cpu()
            stored_masks = tool_mask[index].cpu() if tool_mask is not None else None
        for i, row in enumerate(store_rows):
            n = int(lengths[row])
            trajectory = (stored_ids[i, :n].clone(), stored_logps[i, :n].clone())
            if stored_masks is not None and not bool(stored_masks[i, :n].all()):  # tool-result tokens
                row_messages = _json_safe(messages[row]) if messages is not None else None
                trajectory = (*trajectory, stored_masks[i, :n].clone(), row_messages)
            by_group.setdefault(row // G, []).append(trajectory)
        updates = []
        for g in range(local_groups):
            trajectories = by_group.get(g, [])
            row = g * G
            prompt_tokens = output["prompt_ids"][row][output["prompt_mask"][row].bool()].cpu()
            updates.append(
                {
                    "pid": pids[g],
                    "k": int(k_all[first_group + g]),
                    "row": _json_safe(inputs[row]) if trajectories else None,
                    "prompt_ids": prompt_tokens if trajectories else None,
                    "trajectories": trajectories,
                }
            )
        if self.context.num_processes > 1:
            updates = self.context.collectives.gather_object(updates)
        for u in updates:
            self.buffer.update(u["pid"], u["k"], G, u["row"], u["prompt_ids"], u["trajectories"])

    def generating_logps(self, output, index: torch.Tensor | None) -> torch.Tensor:
        """Per-token log-probs of the rows `index` of the generation batch (all rows with None) under the policy that
        generated them (the weights before this batch's update): no-grad forwards of `per_device_train_batch_size`
        rows."""
        prompt_ids, prompt_mask = output["prompt_ids"], output["prompt_mask"]
        completion_ids, completion_mask = output["completion_ids"], output["completion_mask"]
        if index is not None:
            prompt_ids, prompt_mask = prompt_ids[index], prompt_mask[index]
            completion_ids, completion_mask = completion_ids[index], completion_mask[index]
        input_ids = torch.cat([prompt_ids, completion_ids], dim=1)
        attention_mask = torch.cat([prompt_mask, completion_mask], dim=1)
        with torch.no_grad():
            logps, _, _ = self.context.logprobs(
                self.context.policy(),
                input_ids,
                attention_mask,
                completion_ids.size(1),
                batch_size=self.args.per_device_train_batch_size,
            )
        return logps

    # ------------------------------------------------------------------ loss side

    def mixed_loss(self, loss: LossStep, model, inputs):
        """ExGRPO's loss of a mixed-phase batch (see [`ExGRPOTrainer`]), with TRL's masks, aggregation and metrics
        (`zvp_trl.core.loss`)."""
        context, settings = self.context, self.context.loss
        training, mode = context.training, context.mode
        prompt_ids, prompt_mask = inputs["prompt_ids"], inputs["prompt_mask"]
        completion_ids, completion_mask = inputs["completion_ids"], inputs["completion_mask"]
        input_ids = torch.cat([prompt_ids, completion_ids], dim=1)
        attention_mask = torch.cat([prompt_mask, completion_mask], dim=1)
        mask = completion_mask if "tool_mask" not in inputs else completion_mask * inputs["tool_mask"]
        per_token_logps, entropies, aux_loss = context.logprobs(
            model,
            input_ids,
            attention_mask,
            completion_ids.size(1),
            compute_entropy=True,
            compute_aux_loss=settings.aux_loss,
            **{key: inputs.get(key) for key in MULTIMODAL_INPUTS},
        )
        # TRL's advantages, or the per-token ones of a part that shapes them (RL-ZVP, on the fresh rows).
        advantages = context.token_advantages(loss, inputs, entropies)
        if advantages.dim() == 1:
            advantages = advantages.unsqueeze(1)
        old_per_token_logps = inputs.get("old_per_token_logps")
        old_per_token_logps = per_token_logps.detach() if old_per_token_logps is None else old_per_token_logps
        replay = inputs["exgrpo_replay"].bool()
        per_token_loss, fresh_ratio, replay_ratio = exgrpo_per_token_loss(
            per_token_logps,
            old_per_token_logps,
            inputs["exgrpo_recorded_logps"],
            advantages,
            replay,
            mask,
            loss_type=settings.loss_type,
            importance_sampling_level=settings.importance_sampling_level,
            epsilon_low=settings.epsilon_low,
            epsilon_high=settings.epsilon_high,
            delta=settings.delta,
            unclip_fresh=self.args.exgrpo_unclip_fresh,
            shaping_beta=self.args.exgrpo_shaping_beta,
        )
        fresh = (~replay).unsqueeze(1)
        # TRL's masks, as GRPOTrainer applies them. Off-policy sequence masking acts on fresh rows only: a replayed
        # trajectory is off-policy on purpose (its ratio is shaped instead), and correct, so it would be kept anyway.
        if settings.off_policy_mask_threshold is not None:
            sampling = inputs.get("sampling_per_token_logps", old_per_token_logps)
            off_policy_mask = context.off_policy_mask(
                advantages=advantages,
                per_token_logps=per_token_logps,
                sampling_per_token_logps=sampling,
                mask=mask,
                off_policy_threshold=settings.off_policy_mask_threshold,
            )
            per_token_loss = per_token_loss * torch.where(fresh, off_policy_mask, torch.ones_like(off_policy_mask))
        entropy_mask = None
        if settings.top_entropy_quantile < 1.0:  # entropy filtering: every row's highest-entropy tokens
            entropy_mask = context.high_entropy_mask(entropies, mask, 1 - settings.top_entropy_quantile)
            per_token_loss = per_token_loss * entropy_mask
        if settings.vllm_importance_sampling_correction:
            # The vLLM/trainer mismatch correction applies to freshly sampled tokens only.
            is_ratio = inputs["importance_sampling_ratio"]
            per_token_loss = per_token_loss * torch.where(fresh, is_ratio, torch.ones_like(is_ratio))
        if settings.beta != 0.0:
            ratio = torch.exp(per_token_logps - old_per_token_logps) if settings.use_bias_correction_kl else None
            per_token_kl = kl_penalty(per_token_logps, inputs["ref_per_token_logps"], ratio)
            per_token_loss = per_token_loss + settings.beta * per_token_kl

        accumulation = dict(training=training, accumulation_steps=context.run.accumulation_steps)
        loss, policy_loss = aggregate_loss(
            per_token_loss,
            mask,
            settings,
            **accumulation,
            num_items_in_batch=inputs.get("num_items_in_batch"),
            num_processes=context.num_processes,
        )
        metrics = context.metrics[mode]
        if settings.entropy_bonus:  # static coefficient only (ExGRPOConfig rejects the adaptive one)
            loss = loss - entropy_bonus(entropies, mask, settings, entropy_mask=entropy_mask, **accumulation)
            metrics["policy_loss"].append(context.collectives.gather(policy_loss).nanmean().item())
            if training and context.run.sync_gradients:
                metrics["entropy_coef"].append(settings.entropy_coef)
        if settings.aux_loss:
            loss = loss + settings.router_aux_loss_coef * aux_loss / (context.run.accumulation_steps if training else 1.0)
            metrics["aux_loss"].append(context.collectives.gather_for_metrics(aux_loss).mean().item())
        self._log_mixed_loss_metrics(metrics, mask, replay, entropies, advantages, fresh_ratio, replay_ratio)
        if settings.beta != 0.0:
            metrics["kl"].append(self._global_masked_mean(per_token_kl, mask))
        return loss

    def _global_masked_mean(self, x: torch.Tensor, mask: torch.Tensor) -> float:
        """Mean of `x` over the masked tokens of every process (`x` may be `(B, 1)`: one value per sequence)."""
        mask = mask.to(x.dtype)
        if x.size(1) == 1:
            mask = (mask.sum(-1, keepdim=True) > 0).to(x.dtype)
        totals = self.context.collectives.reduce(torch.stack([(x * mask).sum(), mask.sum()]).detach(), reduction="sum")
        return (totals[0] / totals[1]).item() if totals[1] > 0 else float("nan")

    def _log_mixed_loss_metrics(self, metrics, mask, replay, entropies, advantages, fresh_ratio, replay_ratio):
        """TRL's loss metrics (entropy; the clip ratios of the fresh tokens: low/high/region means and the per-process
        low_min / high_max, or CISPO's clip ratio), plus `exgrpo/replay_ratio_mean`."""
        mask = mask.to(entropies.dtype)
        fresh_mask = mask * (~replay).unsqueeze(1).to(mask.dtype)
        replay_mask = mask * replay.unsqueeze(1).to(mask.dtype)
        metrics["entropy"].append(self._global_masked_mean(entropies, mask))
        if self.context.loss.loss_type == "cispo":
            clipped = (fresh_ratio > self.context.loss.epsilon_high) & (advantages > 0)
            metrics["cispo_clip_ratio"].append(self._global_masked_mean(clipped.float(), fresh_mask))
        else:
            # (B, T), or (B, 1) at sequence level: then one value per sequence, as TRL averages them.
            low = ((fresh_ratio < 1 - self.context.loss.epsilon_low) & (advantages < 0)).float()
            high = ((fresh_ratio > 1 + self.context.loss.epsilon_high) & (advantages > 0)).float()
            metrics["clip_ratio/low_mean"].append(self._global_masked_mean(low, fresh_mask))
            metrics["clip_ratio/high_mean"].append(self._global_masked_mean(high, fresh_mask))
            metrics["clip_ratio/region_mean"].append(self._global_masked_mean(((low + high) > 0).float(), fresh_mask))
            # Per-sequence clip fractions of the fresh rows, gathered: the smallest low and the largest high.
            rows = fresh_mask.sum(-1)
            low_seq = torch.where(rows > 0, (low * fresh_mask).sum(-1) / rows.clamp(min=1.0), torch.nan)
            high_seq = torch.where(rows > 0, (high * fresh_mask).sum(-1) / rows.clamp(min=1.0), torch.nan)
            metrics["clip_ratio/low_min"].append(nanmin(self.context.collectives.gather(low_seq)).item())
            metrics["clip_ratio/high_max"].append(nanmax(self.context.collectives.gather(high_seq)).item())
        metrics["exgrpo/replay_ratio_mean"].append(self._global_masked_mean(replay_ratio.expand_as(mask), replay_mask))
