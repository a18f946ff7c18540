# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""Train with any zvp_trl algorithm.

accelerate launch recipes/train.py                       # embedded CPU task, default algorithm
accelerate launch recipes/train.py --algorithm grpo --max_steps 20
accelerate launch recipes/train.py --config recipes/<recipe>.yaml
python recipes/train.py --algorithm grpo --help          # that algorithm's fields
"""

from zvp_trl.scripts.train import cli, main  # noqa: F401 (main: the entry point without the usage-error wrapper)


if __name__ == "__main__":
    cli()
