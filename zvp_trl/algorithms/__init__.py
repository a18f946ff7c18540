# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""The algorithms as pure functions and small state objects, with no trainer inside (the trainers in
`zvp_trl.trainer` wire them into TRL's `GRPOTrainer`):

- `rl_zvp`: zero-variance detection and RL-ZVP's entropy-guided token advantages;
- `erpo`: ERPO's per-prompt temperature rule and history;
- `greso`: GRESO's skip probabilities, traces and adaptive round sizes;
- `exgrpo`: ExGRPO's bucket weights, replay sampling, trajectory selection, policy shaping and mixed-policy objective;
- `exgrpo_buffer`: ExGRPO's experience buffer and its checkpoint file;
- `dynamic_sampling`: DAPO dynamic sampling's prompt order and batch assembly (shared by GRPO-DS, GRESO, ERPO-DS);
- `prompt_ids`: stable prompt identity for per-prompt state.
"""
