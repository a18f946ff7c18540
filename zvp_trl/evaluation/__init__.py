# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""Evaluation:

- `accuracy`: sampling-based Acc@k / Pass@k and zero-variance statistics of a model on a prompt set;
- `math_benchmarks`: the papers' evaluation benchmarks (where each lives, how to read it);
- `benchmark_eval`: Acc@k / Pass@k on those benchmarks, the papers' Table 1 way, resumable;
- `dynamics`: the training-dynamics figure drawn from a run's log history.
"""
