# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""The trainers and their configs (one `<method>_config.py` and one `<method>_trainer.py` per method, on
`base.py` / `base_config.py`), the registry of algorithm names (`registry`), and what only trainers use: per-row
temperatures (`per_row_temperature`), checkpoint selection (`checkpoints`), callbacks (`callbacks`), FSDP on CPU
processes (`cpu_fsdp`) and vLLM on CPU (`vllm_cpu`)."""
