# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""Training data and rewards:

- `math_datasets`: the registered math datasets, their prompt template and column checks;
- `rewards`: the verifiable math rewards (boxed answer + math-verify), with `math_verify_worker` the helper process
  that bounds math-verify's time;
- `embedded`: the offline arithmetic task, its tokenizer and the tiny model the default run trains.
"""
