# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
import math
from dataclasses import dataclass, field

from .base_config import ZVPBaseConfig


# Loss types whose per-token loss is linear in a (B, T) advantage, so token-level advantages are well defined.
RL_ZVP_LOSS_TYPES = ("grpo", "bnpo", "dr_grpo", "dapo", "cispo", "sapo", "luspo", "vespo")


@dataclass
class RLZVPConfig(ZVPBaseConfig):
    r"""
    Configuration class for [`RLZVPTrainer`].

    This class includes only the parameters that are specific to RL-ZVP training. For a full list of training
    arguments, please refer to [`~trl.GRPOConfig`]; this class inherits every parameter from it.

    Parameters:
        > Parameters that control the zero-variance advantages

        zvp_alpha (`float`, *optional*, defaults to `0.1`):
            Scale of the entropy-guided advantage of zero-variance groups (the paper's alpha; 0.1 was its best value).
        zvp_use_positive (`bool`, *optional*, defaults to `True`):
            Give all-correct groups the advantage `alpha * H_t`. When `False`, they keep GRPO's zero advantage.
        zvp_use_negative (`bool`, *optional*, defaults to `True`):
            Give all-wrong groups the advantage `-alpha * (max_k H_k - H_t)`. When `False`, they keep GRPO's zero.
        zvp_entropy_scaling (`bool`, *optional*, defaults to `True`):
            When `False`, zero-variance rows get the constant `+zvp_constant_advantage` / `-zvp_constant_advantage` on
            every token instead of the entropy-scaled value (the paper's "w/o entropy scaling" ablation).
        zvp_constant_advantage (`float`, *optional*, defaults to `1.0`):
            Magnitude of the constant advantage used when `zvp_entropy_scaling=False`.
    """

    zvp_alpha: float = field(
        default=0.1,
        metadata={"help": "Scale of the entropy-guided advantage of zero-variance groups (the paper's alpha)."},
    )
    zvp_use_positive: bool = field(
        default=True,
        metadata={"help": "Give all-correct groups the advantage alpha * H_t (False: they keep GRPO's zero)."},
    )
    zvp_use_negative: bool = field(
        default=True,
        metadata={"help": "Give all-wrong groups the advantage -alpha * (max_k H_k - H_t) (False: GRPO's zero)."},
    )
    zvp_entropy_scaling: bool = field(
        default=True,
        metadata={
            "help": "False: zero-variance rows get the constant +/- zvp_constant_advantage instead (the paper's "
            "'w/o entropy scaling' ablation)."
        },
    )
    zvp_constant_advantage: float = field(
        default=1.0, metadata={"help": "Magnitude of the constant advantage used when zvp_entropy_scaling=False."}
    )

    def __post_init__(self):
        # Finite too: an infinite scale times a zero entropy (or a padded position) is NaN in the loss.
        if not (self.zvp_alpha > 0 and math.isfinite(self.zvp_alpha)):
            raise ValueError(f"zvp_alpha must be > 0 and finite, got {self.zvp_alpha}. The paper uses 0.1.")
        if not (self.zvp_constant_advantage > 0 and math.isfinite(self.zvp_constant_advantage)):
            raise ValueError(
                f"zvp_constant_advantage must be > 0 and finite, got {self.zvp_constant_advantage}. The default "
                "is 1.0."
            )
        if self.loss_type not in RL_ZVP_LOSS_TYPES:
            raise ValueError(
                f"loss_type={self.loss_type!r} is not supported by RL-ZVP: its weighting is defined per sequence, so "
                f"token-level advantages are ill-defined. Use one of {', '.join(RL_ZVP_LOSS_TYPES)} (the paper uses "
                "'dapo', token-level)."
            )
        super().__post_init__()
