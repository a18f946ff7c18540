# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""What every zvp_trl trainer shares on top of TRL's `GRPOTrainer`.

- Rollout accounting: `rollouts/total` (completions generated so far, all processes) and `rollouts/grad_steps`
  (optimizer steps so far), logged as running totals, so runs can be compared at the same rollout budget.
- Checkpointed state: objects with `state_dict()` / `load_state_dict()` registered in `self._checkpointed_state` are
  written to `zvp_state.json` in every checkpoint and restored when training resumes from it.
"""

import json
import os

from trl import GRPOTrainer


STATE_FILE = "zvp_state.json"


class RolloutCounter:
    """Running count of generated completions (all processes), restored on resume."""

    def __init__(self):
        self.total = 0

    def state_dict(self) -> dict:
        return {"total": self.total}

    def load_state_dict(self, state: dict) -> None:
        self.total = int(state["total"])


class ZVPBaseTrainer(GRPOTrainer):
    """`GRPOTrainer` plus rollout accounting and checkpointed per-run state (see the module docstring)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.rollouts = RolloutCounter()
        self._checkpointed_state = {"rollouts": self.rollouts}

    def _generate_and_score_completions(self, inputs):
        output = super()._generate_and_score_completions(inputs)
        if self.model.training:
            # Every process generated the same number of rows (TRL requires it), so the global count is local * world.
            self.rollouts.total += output["completion_ids"].size(0) * self.accelerator.num_processes
        return output

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if self.model.training:
            # Running totals: a single value per logging window (TRL averages the lists it logs).
            self._metrics["train"]["rollouts/total"] = [float(self.rollouts.total)]
            self._metrics["train"]["rollouts/grad_steps"] = [float(self.state.global_step)]
        super().log(logs, start_time)

    def _save_optimizer_and_scheduler(self, output_dir):
        # Written here, before transformers writes trainer_state.json last, so that every checkpoint that looks
        # complete also holds this state; tmp file + rename, so a crash never leaves half a file.
        super()._save_optimizer_and_scheduler(output_dir)
        if self.args.should_save:
            state = {name: obj.state_dict() for name, obj in self._checkpointed_state.items()}
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
        for name, obj in self._checkpointed_state.items():
            if name in state:
                obj.load_state_dict(state[name])
