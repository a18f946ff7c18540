# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""Probe a data set before training: the share of prompts a model always solves, never solves or sometimes solves.

python recipes/probe.py                                   # embedded model and task
accelerate launch recipes/probe.py --config recipes/<recipe>.yaml --output_dir outputs/probe
python recipes/probe.py --help                            # every option (the entry point is zvp_trl/scripts/probe.py)
"""

from zvp_trl.scripts.probe import cli


if __name__ == "__main__":
    cli()
