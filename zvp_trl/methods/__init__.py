# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""The methods of this package, one folder each (`<name>/`: its pure `algorithm`, its `config`, its `part`, and its
one registration in `__init__.py`). Importing this package registers them, in this order (the order `--help` and
`zvp_trl.ALGORITHMS` list them in). Methods of other packages register through the entry-point group
`zvp_trl.methods` (docs/adding_a_method.md)."""

from . import rl_zvp  # noqa: I001 (registration order)
from . import erpo
from . import grpo_ds
from . import greso
from . import exgrpo


__all__ = ["erpo", "exgrpo", "greso", "grpo_ds", "rl_zvp"]
