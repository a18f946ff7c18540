# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""One-time conversion of the offline SmolLM2-135M-Instruct: `python recipes/prepare_smollm2.py`.

Usage and options: `python recipes/prepare_smollm2.py --help` (the entry point is
`zvp_trl/scripts/prepare_smollm2.py`).
"""

from zvp_trl.scripts.prepare_smollm2 import main


if __name__ == "__main__":
    main()
