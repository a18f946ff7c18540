# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""The trainer-config values the CPU trainer tests share (imported as `cpu_config`: pytest puts tests/ on sys.path)."""

# One logged, unsaved, seeded step on the CPU in float32, 8 rows per device. Each test file adds its own group shape
# (num_generations, max_completion_length) and method values.
CPU_CONFIG = dict(
    use_cpu=True,
    bf16=False,
    gradient_checkpointing=False,
    report_to="none",
    per_device_train_batch_size=8,
    max_steps=1,
    logging_steps=1,
    save_strategy="no",
    seed=0,
)


def cpu_config_kwargs(tmp_path, **overrides):
    """Config keyword arguments: output_dir=tmp_path and CPU_CONFIG, with the caller's overrides winning."""
    return {"output_dir": str(tmp_path), **CPU_CONFIG, **overrides}
