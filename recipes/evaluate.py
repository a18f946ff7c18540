# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""Acc@k / Pass@k of a model on the math benchmarks: `python recipes/evaluate.py --model_name_or_path MODEL`.

Usage and options: `python recipes/evaluate.py --help` (the entry point is `zvp_trl/scripts/evaluate.py`).
"""

from zvp_trl.scripts.evaluate import cli, main  # noqa: F401 (main: the entry point without the usage-error wrapper)


if __name__ == "__main__":
    cli()
