# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
import json
import random
import warnings

import torch
from accelerate.utils import gather_object
from trl.trainer.utils import nanmax, nanmin

from ..algorithms.exgrpo import (
    exgrpo_bucket_weights,
    exgrpo_per_token_loss,
    mean_token_entropy,
    replacements_for_retired,
    sample_buffer_prompts,
)
from ..algorithms.exgrpo_buffer import ExperienceBuffer
from ..algorithms.prompt_ids import dataset_prompt_ids, prompt_id
from . import papers
from .base import ZVPBaseTrainer
from .exgrpo_config import ExGRPOConfig, ExGRPORLZVPConfig
from .rl_zvp_trainer import RLZVPTrainer


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


def _json_safe(row: dict) -> dict:
    # The buffer saves its rows as JSON: values JSON cannot hold (e.g. numpy scalars) are stored as their string form.
    return json.loads(json.dumps(row, default=str))


class ExGRPOTrainer(ZVPBaseTrainer):
    """
    Trainer for ExGRPO, from [Learning to Reason from Experience](https://huggingface.co/papers/2510.02245).

    On top of [`~trl.GRPOTrainer`] (with Dr.GRPO advantages by default), it keeps a buffer of correct trajectories of
    partially solved questions and replays them:

    - **Collection** (every training generation batch of the mixed phase, from the rewards and rows gathered over all
      processes, so every process holds the same buffer): a question whose group has `0 < k < G` correct completions
      enters the buffer with its correct completions (token ids and their log-probs under the policy that generated
      them, recomputed before the update); a buffered question moves to bucket `k` (its latest `k`); a group with
      `k = 0` changes nothing (the question keeps its bucket, so there is no bucket 0, as in the official code). As in
      the official code, the on-policy warm-up collects nothing (`exgrpo_collect_during_warmup=True` collects from the
      first batch). In both phases a question with all `G` correct is retired (removed, never buffered again). With
      `exgrpo_exclude_retired` (default) a retired question is not rolled out again: a fresh group the dataset sampler
      draws for it is replaced, before generation, by a non-retired question of `train_dataset`.
    - **Delayed start**: on-policy training until a generation batch's fraction of correct completions is above
      `exgrpo_start_threshold`, then the mixed phase for good (from the next batch on).
    - **Mixed batches**: on each process, `floor(exgrpo_replay_ratio * groups)` prompt groups are replaced by buffered
      questions, drawn with a generator seeded identically on every process: bucket counts ~ multinomial over the
      non-empty buckets' Gaussian weights (`exgrpo_bucket_weighting`, N(k; G/2, 1) by default), overflow
      redistributed, questions without
      replacement. For each, the stored trajectory with the lowest mean token entropy under the current policy is
      chosen; the group is generated normally and its first completion is overwritten by that trajectory before
      scoring, so the group is 1 replayed + G-1 fresh completions and the replayed one takes part in the group mean.
    - **Loss**: replayed tokens use `-A * f(w)`, `f(w) = w / (w + beta)`, unclipped, with `w = exp(logp - recorded)`;
      fresh tokens use TRL's clipped surrogate (unclipped with `exgrpo_unclip_fresh`); then TRL's aggregation for
      `loss_type`.
    - **Sharded training** (DeepSpeed ZeRO-3 or FSDP, detected at construction into `_exgrpo_collective_forwards`):
      every forward gathers the sharded parameters collectively, so every process must run the same no-grad forwards,
      in the same order. The log-probs of the rows to store are then computed over all rows of the local generation
      batch (the same count on every process; skipped on every process when no group of the gathered batch is
      partially solved, or when TRL already computed `old_per_token_logps`) and the stored rows are indexed out of
      them; and every process selects the trajectories of all the replayed questions (the buffer and the draw are
      the same everywhere; single-trajectory entries, identical everywhere, need no forward) and keeps its own. The
      results are those of the default path (per-row log-probs up to the last bits, batching differing). Without
      sharding, only the rows to store and only this process's replays are forwarded.

    Args are those of [`~trl.GRPOTrainer`] (no `rollout_func`); `args` is an [`ExGRPOConfig`].
    """

    _tag_names = ["trl", "exgrpo"]
    _name = "ExGRPO"
    _paper = papers.EXGRPO
    _config_class = ExGRPOConfig
    _default_suffix = "ExGRPO"

    def __init__(self, *args, **kwargs):
        if kwargs.get("rollout_func") is not None:
            raise ValueError(
                "ExGRPOTrainer injects replayed trajectories into TRL's own generation; a custom rollout_func is not "
                "supported. Leave rollout_func=None."
            )
        for name in ("tools", "environment_factory"):
            if kwargs.get(name):
                raise ValueError(
                    f"ExGRPOTrainer does not support {name}: a stored trajectory keeps only its completion tokens, not "
                    "which of them were tool results, so replaying a multi-turn trajectory would train on tool outputs "
                    "as if the model had written them (and its tool calls would be run again). Train ExGRPO without "
                    f"{name}, or use GRPOTrainer / RLZVPTrainer / ERPOTrainer, which support it."
                )
        super().__init__(*args, **kwargs)
        self.exgrpo_buffer = ExperienceBuffer(
            max_prompts=self.args.exgrpo_max_buffer_prompts,
            max_trajectories=self.args.exgrpo_max_trajectories_per_prompt,
        )
        self.exgrpo_phase = ExGRPOPhase(active=self.args.exgrpo_start_threshold is None)
        self._checkpointed_state["exgrpo_buffer"] = self.exgrpo_buffer
        self._checkpointed_state["exgrpo_phase"] = self.exgrpo_phase
        self._exgrpo_dataset_pids = None  # prompt id of every train_dataset row, built at the first retirement
        if self.args.exgrpo_exclude_retired and not (
            hasattr(self.train_dataset, "__len__") and hasattr(self.train_dataset, "__getitem__")
        ):
            raise ValueError(
                "exgrpo_exclude_retired=True replaces retired questions by other train_dataset rows, which needs a "
                f"map-style train_dataset (got {type(self.train_dataset).__name__}). Pass a map-style dataset or set "
                "exgrpo_exclude_retired=False."
            )
        self._exgrpo_injection = None  # {local row: trajectory}, consumed by _generate_single_turn
        # Sharded parameters: every no-grad forward is a collective (same calls on every process, see the docstring).
        self._exgrpo_collective_forwards = self._exgrpo_sharded_parameters()

    def _exgrpo_sharded_parameters(self) -> bool:
        """Whether a forward gathers sharded parameters collectively: DeepSpeed ZeRO stage 3, or FSDP."""
        if getattr(self, "is_fsdp_enabled", False):
            return True
        if getattr(self, "is_deepspeed_enabled", False):
            plugin = self.accelerator.state.deepspeed_plugin or getattr(self.args, "deepspeed_plugin", None)
            return plugin is not None and plugin.zero_stage == 3
        return False

    # ------------------------------------------------------------------ generation side

    def _generate_single_turn(self, prompt_ids, images, multimodal_fields, num_generations, *args, **kwargs):
        completion_ids, logprobs = super()._generate_single_turn(
            prompt_ids, images, multimodal_fields, num_generations, *args, **kwargs
        )
        injection, self._exgrpo_injection = self._exgrpo_injection, None  # first call only (not tool turns)
        if injection:
            completion_ids = list(completion_ids)
            for row, trajectory in injection.items():
                completion_ids[row] = trajectory["ids"].tolist()
                if logprobs is not None:
                    # vLLM did not sample this row: its sampling log-probs are unknown (NaN), which TRL reads as "no
                    # vLLM/trainer mismatch to correct" (ratio 1) and leaves out of its sampling/* metrics. (The
                    # recorded log-probs, used by the replay loss, travel separately as exgrpo_recorded_logps.)
                    logprobs[row] = [float("nan")] * len(trajectory["ids"])
        return completion_ids, logprobs

    def _exgrpo_select_trajectory(self, entry: dict, generator: torch.Generator) -> int:
        """Index of the stored trajectory of `entry` with the lowest mean token entropy under the current policy (one
        no-grad forward of all candidates, at the sampling temperature; ties: the first); a uniform draw with
        `exgrpo_trajectory_selection="random"`."""
        trajectories = entry["trajectories"]
        if len(trajectories) == 1:
            return 0
        if self.args.exgrpo_trajectory_selection == "random":
            return int(torch.randint(len(trajectories), (1,), generator=generator).item())
        device = self.accelerator.device
        pad = self._tokenizer.pad_token_id or 0
        width = max(len(t["ids"]) for t in trajectories)
        completion_ids = torch.full((len(trajectories), width), pad, dtype=torch.long, device=device)
        completion_mask = torch.zeros((len(trajectories), width), dtype=torch.long, device=device)
        for i, t in enumerate(trajectories):
            completion_ids[i, : len(t["ids"])] = torch.as_tensor(t["ids"], dtype=torch.long, device=device)
            completion_mask[i, : len(t["ids"])] = 1
        prompt = torch.as_tensor(entry["prompt_ids"], dtype=torch.long, device=device).expand(len(trajectories), -1)
        input_ids = torch.cat([prompt, completion_ids], dim=1)
        attention_mask = torch.cat([torch.ones_like(prompt), completion_mask], dim=1)
        with torch.no_grad():
            _, entropies, _ = self._get_per_token_logps_and_entropies(
                self.model,
                input_ids,
                attention_mask,
                width,
                batch_size=self.args.per_device_train_batch_size,
                compute_entropy=True,
            )
        return int(torch.argmin(mean_token_entropy(entropies.float(), completion_mask)).item())

    def _exgrpo_plan_replays(self, inputs: list[dict]) -> tuple[list[dict], dict[int, dict], int]:
        """Replaces groups of the local rows by buffered questions. Returns the new rows, {local group: chosen
        trajectory} and the number of replayed groups over all processes."""
        G = self.num_generations
        local_groups = len(inputs) // G
        per_process = int(self.args.exgrpo_replay_ratio * local_groups)
        world = self.accelerator.num_processes
        buckets = self.exgrpo_buffer.buckets()
        if per_process == 0 or not buckets:
            return inputs, {}, 0
        # Identical on every process: same buffer, same seed.
        generator = torch.Generator().manual_seed(self.args.seed * 1_000_003 + self.exgrpo_phase.draws)
        self.exgrpo_phase.draws += 1
        if self.args.exgrpo_question_selection == "random":  # ablation: uniform over the buffered questions
            pool = [pid for k in sorted(buckets) for pid in buckets[k]]
            order = torch.randperm(len(pool), generator=generator)[: per_process * world].tolist()
            chosen = [pool[i] for i in order]
        else:
            probs = exgrpo_bucket_weights(buckets.keys(), G, self.args.exgrpo_bucket_weighting)
            chosen = sample_buffer_prompts(buckets, probs, per_process * world, generator)
        mine = chosen[self.accelerator.process_index :: world]
        entries = self.exgrpo_buffer.entries
        if self._exgrpo_collective_forwards and self.args.exgrpo_trajectory_selection != "random":
            # Sharded parameters: every process runs the selection forwards of all the chosen questions (the same
            # list everywhere, so the same forwards in the same order) and keeps its own. The entropy selection does
            # not use the generator, so the choices are those of the default path.
            picks = [self._exgrpo_select_trajectory(entries[pid], generator) for pid in chosen]
            picks = picks[self.accelerator.process_index :: world]
        else:
            picks = [self._exgrpo_select_trajectory(entries[pid], generator) for pid in mine]
        inputs = list(inputs)
        replays = {}
        for group, (pid, pick) in enumerate(zip(mine, picks, strict=True)):
            entry = entries[pid]
            trajectory = entry["trajectories"][pick]
            for row in range(group * G, (group + 1) * G):
                inputs[row] = dict(entry["row"])
            replays[group] = trajectory
        return inputs, replays, len(chosen)

    def _exgrpo_replace_retired(self, inputs: list[dict]) -> tuple[list[dict], int]:
        """Replaces this process's fresh groups of retired questions by non-retired `train_dataset` rows. The draw is
        seeded by `seed`, the global step and the process index (a resumed run draws the same rows). Returns the rows
        and the number of groups replaced on this process."""
        retired = self.exgrpo_buffer.retired
        if not self.args.exgrpo_exclude_retired or not retired:
            return inputs, 0
        G = self.num_generations
        column = self.args.prompt_id_column
        group_pids = [prompt_id(inputs[g * G], column) for g in range(len(inputs) // G)]
        if not any(pid in retired for pid in group_pids):
            return inputs, 0
        if self._exgrpo_dataset_pids is None:
            self._exgrpo_dataset_pids = dataset_prompt_ids(self.train_dataset, column)
        rng = random.Random(
            f"zvp-exgrpo-fresh-{self.args.seed}-{self.state.global_step}-{self.accelerator.process_index}"
        )
        replacements = replacements_for_retired(group_pids, retired, self._exgrpo_dataset_pids, rng)
        if len(replacements) < sum(pid in retired for pid in group_pids):
            warnings.warn(
                "ExGRPO: fewer non-retired questions are left in train_dataset than retired ones were drawn; the "
                "remaining retired questions are rolled out again.",
                stacklevel=2,
            )
        inputs = list(inputs)
        for group, index in replacements.items():
            row = self.train_dataset[index]
            for r in range(group * G, (group + 1) * G):
                inputs[r] = dict(row)
        return inputs, len(replacements)

    def _generate_and_score_completions(self, inputs):
        if not self.model.training:
            return super()._generate_and_score_completions(inputs)
        G = self.num_generations
        mixed = self.exgrpo_phase.active
        inputs, num_fresh_replaced = self._exgrpo_replace_retired(inputs)
        replays, num_replayed = {}, 0
        if mixed and self.args.exgrpo_replay_ratio > 0:
            inputs, replays, num_replayed = self._exgrpo_plan_replays(inputs)
        self._exgrpo_injection = {group * G: t for group, t in replays.items()} or None
        try:
            output = super()._generate_and_score_completions(inputs)
        finally:
            self._exgrpo_injection = None

        device = self.accelerator.device
        completion_ids = output["completion_ids"]
        B, T = completion_ids.shape
        replay = torch.zeros(B, dtype=torch.bool, device=device)
        recorded = torch.zeros((B, T), dtype=torch.float32, device=device)
        for group, trajectory in replays.items():
            row = group * G
            ids = trajectory["ids"][:T]
            if not torch.equal(completion_ids[row, : len(ids)].cpu(), ids.to(completion_ids.dtype)):
                raise RuntimeError("ExGRPO: the replayed trajectory was not injected into its row.")
            replay[row] = True
            recorded[row, : len(ids)] = trajectory["logps"][:T].to(device=device, dtype=torch.float32)
        output["exgrpo_replay"] = replay
        output["exgrpo_recorded_logps"] = recorded
        output["exgrpo_mixed"] = torch.tensor(float(mixed), device=device)  # 0-dim: copied into every chunk

        # (all processes' rows,) bool: an unscored row (NaN) compares False, so it is never correct.
        correct = self._gathered_scalar_rewards() > self.args.correct_threshold
        collect = mixed or self.args.exgrpo_collect_during_warmup
        self._exgrpo_update_buffer(inputs, output, correct, replay, collect)
        if not self.exgrpo_phase.active and correct.float().mean().item() > self.args.exgrpo_start_threshold:
            self.exgrpo_phase.active = True  # from the next generation batch on, for good

        metrics = self._metrics["train"]
        metrics["exgrpo/active"].append(float(mixed))
        metrics["exgrpo/replay_frac"].append(num_replayed / (correct.numel() // G))
        metrics["exgrpo/buffer_prompts"].append(float(len(self.exgrpo_buffer)))
        metrics["exgrpo/retired"].append(float(len(self.exgrpo_buffer.retired)))
        replaced = torch.tensor(float(num_fresh_replaced), device=device)
        metrics["exgrpo/retired_redrawn"].append(self.accelerator.reduce(replaced, reduction="sum").item())
        sizes = {k: len(v) for k, v in self.exgrpo_buffer.buckets().items()}
        for k in range(G):
            metrics[f"exgrpo/bucket_{k}"].append(float(sizes.get(k, 0)))
        return output

    def _exgrpo_update_buffer(
        self, inputs, output, correct: torch.Tensor, replay: torch.Tensor, collect: bool = True
    ) -> None:
        """Builds this process's updates (one per local group), gathers them in process order and applies them all,
        so every process ends with the same buffer. With `collect=False` (the warm-up) only retirements apply: no
        trajectory is stored, no log-prob is computed and no bucket changes. `collect` is the same on every
        process (the phase is)."""
        G = self.num_generations
        B = output["completion_ids"].size(0)
        local_groups = B // G
        first_group = self.accelerator.process_index * local_groups
        k_all = correct.view(-1, G).sum(dim=1).tolist()
        column = self.args.prompt_id_column
        pids = [prompt_id(inputs[g * G], column) for g in range(local_groups)]
        if not collect:
            retired = [pid for g, pid in enumerate(pids) if k_all[first_group + g] >= G]
            if self.accelerator.num_processes > 1:
                retired = gather_object(retired)
            for pid in retired:
                self.exgrpo_buffer.retire(pid)
            return
        correct_local = self._local_rows(correct, B)
        # Rows worth storing: correct, fresh, in a partially solved group of a non-retired question, non-empty mask.
        lengths = output["completion_mask"].sum(dim=1).tolist()
        store_rows = [
            row
            for row in range(B)
            if 0 < k_all[first_group + row // G] < G
            and pids[row // G] not in self.exgrpo_buffer.retired
            and bool(correct_local[row])
            and not bool(replay[row])
            and lengths[row] > 0
        ]
        logps = None
        index = torch.tensor(store_rows, dtype=torch.long, device=output["completion_ids"].device)
        if output.get("old_per_token_logps") is not None:  # same on every process (TRL's config)
            logps = output["old_per_token_logps"][index] if store_rows else None
        elif self._exgrpo_collective_forwards:
            # Sharded parameters: every process forwards all its B rows (B is the same everywhere), or none when no
            # group of the gathered batch is partially solved (then no process has a row to store), and indexes out
            # the rows to store.
            if any(0 < k < G for k in k_all):
                logps = self._exgrpo_generating_logps(output, None)[index]
        elif store_rows:
            logps = self._exgrpo_generating_logps(output, index)
        by_group: dict[int, list] = {}
        if store_rows:  # one copy to the CPU; each stored row is cloned out (a view would carry the whole batch)
            stored_ids, stored_logps = output["completion_ids"][index].cpu(), logps.float().cpu()
        for i, row in enumerate(store_rows):
            n = int(lengths[row])
            by_group.setdefault(row // G, []).append((stored_ids[i, :n].clone(), stored_logps[i, :n].clone()))
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
        if self.accelerator.num_processes > 1:
            updates = gather_object(updates)
        for u in updates:
            self.exgrpo_buffer.update(u["pid"], u["k"], G, u["row"], u["prompt_ids"], u["trajectories"])

    def _exgrpo_generating_logps(self, output, index: torch.Tensor | None) -> torch.Tensor:
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
            logps, _, _ = self._get_per_token_logps_and_entropies(
                self.model,
                input_ids,
                attention_mask,
                completion_ids.size(1),
                batch_size=self.args.per_device_train_batch_size,
            )
        return logps

    # ------------------------------------------------------------------ loss side

    def _exgrpo_advantages(self, inputs, entropies: torch.Tensor) -> torch.Tensor:
        """Advantages used by the mixed-phase loss, (B,) or (B, T). Hook for combined trainers."""
        return inputs["advantages"]

    def _compute_loss(self, model, inputs):
        # On-policy phase (and eval): TRL's loss, unchanged. The phase is the same on every process, so every process
        # runs the same collectives.
        if "exgrpo_mixed" not in inputs or not bool(inputs["exgrpo_mixed"]):
            return super()._compute_loss(model, inputs)
        self.zvp_step.begin_loss()
        try:
            return self._exgrpo_mixed_loss(model, dict(inputs))
        finally:
            self.zvp_step.end_loss()

    def _exgrpo_mixed_loss(self, model, inputs):
        mode = "train" if self.model.training else "eval"
        prompt_ids, prompt_mask = inputs["prompt_ids"], inputs["prompt_mask"]
        completion_ids, completion_mask = inputs["completion_ids"], inputs["completion_mask"]
        input_ids = torch.cat([prompt_ids, completion_ids], dim=1)
        attention_mask = torch.cat([prompt_mask, completion_mask], dim=1)
        mask = completion_mask if "tool_mask" not in inputs else completion_mask * inputs["tool_mask"]
        per_token_logps, entropies, aux_loss = self._get_per_token_logps_and_entropies(
            model,
            input_ids,
            attention_mask,
            completion_ids.size(1),
            compute_entropy=True,
            compute_aux_loss=self.aux_loss_enabled,
            pixel_values=inputs.get("pixel_values"),
            image_grid_thw=inputs.get("image_grid_thw"),
            num_images=inputs.get("num_images"),
            pixel_attention_mask=inputs.get("pixel_attention_mask"),
            spatial_shapes=inputs.get("spatial_shapes"),
            num_tiles=inputs.get("num_tiles"),
            image_sizes=inputs.get("image_sizes"),
            token_type_ids=inputs.get("token_type_ids"),
            mm_token_type_ids=inputs.get("mm_token_type_ids"),
            image_position_ids=inputs.get("image_position_ids"),
        )
        advantages = self._exgrpo_advantages(inputs, entropies)
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
            loss_type=self.loss_type,
            importance_sampling_level=self.importance_sampling_level,
            epsilon_low=self.epsilon_low,
            epsilon_high=self.epsilon_high,
            delta=self.args.delta,
            unclip_fresh=self.args.exgrpo_unclip_fresh,
            shaping_beta=self.args.exgrpo_shaping_beta,
        )
        fresh = (~replay).unsqueeze(1)
        # TRL's masks, as GRPOTrainer applies them. Off-policy sequence masking acts on fresh rows only: a replayed
        # trajectory is off-policy on purpose (its ratio is shaped instead), and correct, so it would be kept anyway.
        if self.off_policy_mask_threshold is not None:
            sampling = inputs.get("sampling_per_token_logps", old_per_token_logps)
            off_policy_mask = self.get_off_policy_mask(
                advantages=advantages,
                per_token_logps=per_token_logps,
                sampling_per_token_logps=sampling,
                mask=mask,
                off_policy_threshold=self.off_policy_mask_threshold,
            )
            per_token_loss = per_token_loss * torch.where(fresh, off_policy_mask, torch.ones_like(off_policy_mask))
        entropy_mask = None
        if self.top_entropy_quantile < 1.0:  # entropy filtering: every row's highest-entropy tokens
            entropy_mask = self.get_high_entropy_mask(entropies, mask, 1 - self.top_entropy_quantile)
            per_token_loss = per_token_loss * entropy_mask
        if self.use_vllm and self.vllm_importance_sampling_correction:
            # The vLLM/trainer mismatch correction applies to freshly sampled tokens only.
            is_ratio = inputs["importance_sampling_ratio"]
            per_token_loss = per_token_loss * torch.where(fresh, is_ratio, torch.ones_like(is_ratio))
        if self.beta != 0.0:
            ref = inputs["ref_per_token_logps"]
            per_token_kl = torch.exp(ref - per_token_logps) - (ref - per_token_logps) - 1
            if self.args.use_bias_correction_kl:
                per_token_kl = per_token_kl * torch.exp(per_token_logps - old_per_token_logps)
            per_token_loss = per_token_loss + self.beta * per_token_kl

        accumulation = self.current_gradient_accumulation_steps if mode == "train" else 1.0
        if self.loss_type == "grpo":
            loss = ((per_token_loss * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).mean()
        elif self.loss_type == "bnpo":
            loss = (per_token_loss * mask).sum() / mask.sum().clamp(min=1.0)
        elif self.loss_type == "dr_grpo":
            loss = (per_token_loss * mask).sum() / (per_token_loss.size(0) * self.max_completion_length)
        else:  # dapo, cispo: the generation batch's mean tokens per optimizer batch, as TRL
            normalizer = inputs["num_items_in_batch"].clamp(min=1.0) / self.accelerator.num_processes
            if mode == "train":
                normalizer = normalizer * self.current_gradient_accumulation_steps / self.args.steps_per_generation
            loss = (per_token_loss * mask).sum() / normalizer
            accumulation = 1.0  # the normaliser already spans one accumulation window
        policy_loss = loss.detach()
        loss = loss / accumulation

        metrics = self._metrics[mode]
        if self._entropy_bonus_enabled:  # static coefficient only (ExGRPOConfig rejects the adaptive one)
            effective_mask = mask if entropy_mask is None else mask * entropy_mask
            bonus_accumulation = self.current_gradient_accumulation_steps if mode == "train" else 1.0
            entropy_loss = (entropies * effective_mask).sum() / effective_mask.sum().clamp(min=1.0)
            loss = loss - self.entropy_coef * entropy_loss / bonus_accumulation
            metrics["policy_loss"].append(self.accelerator.gather(policy_loss).nanmean().item())
            if mode == "train" and self.accelerator.sync_gradients:
                metrics["entropy_coef"].append(self.entropy_coef)
        if self.aux_loss_enabled:
            aux_accumulation = self.current_gradient_accumulation_steps if mode == "train" else 1.0
            loss = loss + self.router_aux_loss_coef * aux_loss / aux_accumulation
            metrics["aux_loss"].append(self.accelerator.gather_for_metrics(aux_loss).mean().item())
        self._log_mixed_loss_metrics(metrics, mask, replay, entropies, advantages, fresh_ratio, replay_ratio)
        if self.beta != 0.0:
            metrics["kl"].append(self._global_masked_mean(per_token_kl, mask))
        return loss

    def _global_masked_mean(self, x: torch.Tensor, mask: torch.Tensor) -> float:
        """Mean of `x` over the masked tokens of every process (`x` may be `(B, 1)`: one value per sequence)."""
        mask = mask.to(x.dtype)
        if x.size(1) == 1:
            mask = (mask.sum(-1, keepdim=True) > 0).to(x.dtype)
        totals = self.accelerator.reduce(torch.stack([(x * mask).sum(), mask.sum()]).detach(), reduction="sum")
        return (totals[0] / totals[1]).item() if totals[1] > 0 else float("nan")

    def _log_mixed_loss_metrics(self, metrics, mask, replay, entropies, advantages, fresh_ratio, replay_ratio):
        """TRL's loss metrics (entropy; the clip ratios of the fresh tokens: low/high/region means and the per-process
        low_min / high_max, or CISPO's clip ratio), plus `exgrpo/replay_ratio_mean`."""
        mask = mask.to(entropies.dtype)
        fresh_mask = mask * (~replay).unsqueeze(1).to(mask.dtype)
        replay_mask = mask * replay.unsqueeze(1).to(mask.dtype)
        metrics["entropy"].append(self._global_masked_mean(entropies, mask))
        if self.loss_type == "cispo":
            clipped = (fresh_ratio > self.epsilon_high) & (advantages > 0)
            metrics["cispo_clip_ratio"].append(self._global_masked_mean(clipped.float(), fresh_mask))
        else:
            # (B, T), or (B, 1) at sequence level: then one value per sequence, as TRL averages them.
            low = ((fresh_ratio < 1 - self.epsilon_low) & (advantages < 0)).float()
            high = ((fresh_ratio > 1 + self.epsilon_high) & (advantages > 0)).float()
            metrics["clip_ratio/low_mean"].append(self._global_masked_mean(low, fresh_mask))
            metrics["clip_ratio/high_mean"].append(self._global_masked_mean(high, fresh_mask))
            metrics["clip_ratio/region_mean"].append(self._global_masked_mean(((low + high) > 0).float(), fresh_mask))
            # Per-sequence clip fractions of the fresh rows, gathered: the smallest low and the largest high.
            rows = fresh_mask.sum(-1)
            low_seq = torch.where(rows > 0, (low * fresh_mask).sum(-1) / rows.clamp(min=1.0), torch.nan)
            high_seq = torch.where(rows > 0, (high * fresh_mask).sum(-1) / rows.clamp(min=1.0), torch.nan)
            metrics["clip_ratio/low_min"].append(nanmin(self.accelerator.gather(low_seq)).item())
            metrics["clip_ratio/high_max"].append(nanmax(self.accelerator.gather(high_seq)).item())
        metrics["exgrpo/replay_ratio_mean"].append(self._global_masked_mean(replay_ratio.expand_as(mask), replay_mask))


class ExGRPORLZVPTrainer(ExGRPOTrainer, RLZVPTrainer):
    """
    ExGRPO's experience replay with RL-ZVP's entropy-guided advantages for zero-variance groups.

    RL-ZVP shapes the advantages of the fresh rows of zero-variance groups (decided on the whole group's rewards,
    replayed trajectory included); a replayed row keeps its ExGRPO treatment (Dr.GRPO advantage with the shaped,
    unclipped ratio). In the on-policy phase the loss is RL-ZVP's; in the mixed phase it is ExGRPO's mixed loss with
    RL-ZVP's token advantages. `args` is an [`ExGRPORLZVPConfig`]; the model card cites both papers.
    """

    _tag_names = ["trl", "exgrpo", "rl-zvp"]
    _name = "ExGRPO + RL-ZVP"
    _paper = papers.citing_also(papers.EXGRPO, papers.RL_ZVP)
    _config_class = ExGRPORLZVPConfig
    _default_suffix = "ExGRPO-RL-ZVP"

    def _generate_and_score_completions(self, inputs):
        output = super()._generate_and_score_completions(inputs)
        if "exgrpo_replay" in output:
            signs = output["zvp_signs"]
            output["zvp_signs"] = torch.where(output["exgrpo_replay"], torch.zeros_like(signs), signs)
        return output

    def _exgrpo_advantages(self, inputs, entropies: torch.Tensor) -> torch.Tensor:
        return self.part("rl_zvp").token_advantages(self.zvp_step.loss, inputs, entropies)
