# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""What every zvp_trl trainer shares on top of TRL's `GRPOTrainer`.

- Rollout accounting: `rollouts/total` (completions generated so far, all processes), `rollouts/kept` (completions
  that reached the loss so far: generated minus those a method dropped, plus any it replayed; counted once even when
  `num_iterations > 1`) and `rollouts/grad_steps` (optimizer steps so far), logged as running totals, so runs can be
  compared at the same rollout budget. `args.max_rollouts` (see `ZVPBaseConfig`) stops training once the budget is
  spent.
- Checkpointed state: objects with `state_dict()` / `load_state_dict()` registered in `self._checkpointed_state` are
  written to `zvp_state.json` in every checkpoint and restored when training resumes from it. An object that also
  has `save(directory)` keeps its bulk data in files of its own (ExGRPO's buffer): `save(checkpoint)` writes them
  before zvp_state.json and returns the small JSON state stored there, and on resume
  `load_state_dict(state, directory=checkpoint)` reads them back.
"""

import dataclasses
import json
import os

import torch
from trl import GRPOConfig, GRPOTrainer
from trl.trainer.utils import RepeatSampler

from ..data.math_datasets import check_prompt_column
from .base_config import GRPOBaselineConfig
from .callbacks import RolloutBudgetCallback
from .checkpoints import STATE_FILE, last_complete_checkpoint


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


class EpochSeededRepeatSampler(RepeatSampler):
    """TRL's `RepeatSampler`, with the shuffle order of epoch `e` a function of `(seed, e)` only.

    TRL's sampler draws each epoch's permutation from one generator that advances across epochs, so a run resumed in
    epoch `e > 0` (a fresh sampler) replays epoch 0's order and sees different prompts than the uninterrupted run.
    The Trainer calls `set_epoch(e)` before iterating each epoch, also when resuming: here it reseeds the generator
    and draws the `e` earlier permutations again, so every epoch's order is exactly the one TRL's sampler gives an
    uninterrupted run, and a resumed run draws the same prompts (which per-prompt state depends on).
    """

    @classmethod
    def from_sampler(cls, sampler: RepeatSampler) -> "EpochSeededRepeatSampler":
        new = cls.__new__(cls)
        new.__dict__.update(sampler.__dict__)
        return new

    def set_epoch(self, epoch: int) -> None:
        if self.shuffle and self.seed is not None:
            self.generator.manual_seed(self.seed)
            for _ in range(epoch):
                torch.randperm(self.num_samples, generator=self.generator)


# GRPOConfig fields every method's model card records next to the method's own fields.
CARD_GRPO_FIELDS = (
    "learning_rate",
    "lr_scheduler_type",
    "num_generations",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "steps_per_generation",
    "num_iterations",
    "max_completion_length",
    "temperature",
    "top_p",
    "epsilon",
    "epsilon_high",
    "loss_type",
    "scale_rewards",
    "beta",
    "seed",
)


def hyperparameters_markdown(trainer_name: str, args) -> str:
    """The model card's "Method hyperparameters" section: the method's own config fields (those its config adds to
    `GRPOConfig`) and the key GRPO fields, with their values in this run."""
    grpo_fields = {f.name for f in dataclasses.fields(GRPOConfig)}
    own = [f.name for f in dataclasses.fields(args) if f.name not in grpo_fields]
    lines = [
        "## Method hyperparameters",
        "",
        f"Trained with zvp_trl's `{trainer_name}` (`{type(args).__name__}`), on top of TRL's `GRPOTrainer`.",
        "",
        "| field | value |",
        "|---|---|",
    ]
    lines += [f"| `{name}` | `{getattr(args, name)!r}` |" for name in [*own, *CARD_GRPO_FIELDS]]
    return "\n".join(lines) + "\n"


class ZVPBaseTrainer(GRPOTrainer):
    """`GRPOTrainer` plus rollout accounting and checkpointed per-run state (see the module docstring)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        check_prompt_column(self.train_dataset)  # a clear error now rather than a KeyError at the first step
        check_prompt_column(self.eval_dataset, "eval_dataset")
        self.rollouts = RolloutCounter()
        self._checkpointed_state = {"rollouts": self.rollouts}
        max_rollouts = getattr(self.args, "max_rollouts", None)
        if max_rollouts is not None:
            stop = getattr(self.args, "max_rollouts_stop", "generation")
            self.add_callback(RolloutBudgetCallback(self.rollouts, max_rollouts, stop))

    def train(self, resume_from_checkpoint: str | bool | None = None, *args, **kwargs):
        """As `Trainer.train`; `resume_from_checkpoint=True` resumes from the last *complete* checkpoint of
        `output_dir` (see `zvp_trl.trainer.checkpoints`), so a run killed while saving resumes from the one before."""
        if resume_from_checkpoint is True:
            checkpoint = last_complete_checkpoint(self.args.output_dir)
            if checkpoint is None:
                raise ValueError(
                    f"resume_from_checkpoint=True, but {self.args.output_dir} holds no complete checkpoint "
                    "(checkpoint-<step> with trainer_state.json and zvp_state.json). Pass a checkpoint path, or None "
                    "to start from scratch."
                )
            resume_from_checkpoint = checkpoint
        return super().train(resume_from_checkpoint, *args, **kwargs)

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
        return sampler

    def _generate_and_score_completions(self, inputs):
        output = super()._generate_and_score_completions(inputs)
        if self.model.training:
            # Every process generated the same number of rows (TRL requires it), so the global count is local * world.
            self.rollouts.total += output["completion_ids"].size(0) * self.accelerator.num_processes
        return output

    def _compute_loss(self, model, inputs):
        if self.model.training:
            # TRL's micro-step counter: a buffered generation batch is used for `num_iterations` passes of
            # `steps_per_generation` micro-batches each; count its rows on the first pass only.
            generate_every = self.args.steps_per_generation * self.num_iterations
            if self._step % generate_every < self.args.steps_per_generation:
                self.rollouts.kept += inputs["completion_ids"].size(0) * self.accelerator.num_processes
        return super()._compute_loss(model, inputs)

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if self.model.training:
            # Running totals: a single value per logging window (TRL averages the lists it logs).
            self._metrics["train"]["rollouts/total"] = [float(self.rollouts.total)]
            self._metrics["train"]["rollouts/kept"] = [float(self.rollouts.kept)]
            self._metrics["train"]["rollouts/grad_steps"] = [float(self.state.global_step)]
        super().log(logs, start_time)

    def _save_optimizer_and_scheduler(self, output_dir):
        # Written here, before transformers writes trainer_state.json last, so that every checkpoint that looks
        # complete also holds this state; tmp file + rename, so a crash never leaves half a file.
        super()._save_optimizer_and_scheduler(output_dir)
        if self.args.should_save:
            # Objects with files of their own write them first (each atomically), so that zvp_state.json, once
            # there, never refers to a file that is not.
            state = {
                name: obj.save(output_dir) if hasattr(obj, "save") else obj.state_dict()
                for name, obj in self._checkpointed_state.items()
            }
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
    the baseline is compared with the other methods on the same terms. `args` is a [`GRPOBaselineConfig`]."""

    def __init__(self, model, reward_funcs=None, args: GRPOBaselineConfig | None = None, *pargs, **kwargs):
        if args is None:
            model_name = model if isinstance(model, str) else model.config._name_or_path
            args = GRPOBaselineConfig(f"{model_name.split('/')[-1]}-GRPO")
        super().__init__(model, reward_funcs, args, *pargs, **kwargs)
