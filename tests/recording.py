# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""Recording what a trainer's generation batches hold (imported as `recording`: pytest puts tests/ on sys.path)."""


def record_generations(trainer, take):
    """Wraps `trainer._generate_and_score_completions` so that every generation batch (or dynamic-sampling batch) also
    appends `take(output)` to the returned list; train afterwards and read the list."""
    generate = trainer._generate_and_score_completions
    taken = []

    def record(inputs):
        output = generate(inputs)
        taken.append(take(output))
        return output

    trainer._generate_and_score_completions = record
    return taken


def cloned(*keys):
    """`take` for `record_generations`: the named outputs, cloned (tensors) or as they are."""
    return lambda output: {k: output[k].clone() if hasattr(output[k], "clone") else output[k] for k in keys}
