# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
import math
from dataclasses import dataclass, field

from ...core.config import ZVPBaseConfig


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
            0 gives zero-variance groups no advantage: plain GRPO. Used when `zvp_alpha_rule="fixed"`.
        zvp_alpha_rule (`str`, *optional*, defaults to `"fixed"`):
            How alpha is set. `"fixed"`: `zvp_alpha`. `"relative"` (a scale-free alpha, the paper's future work):
            every loss micro-batch, the alpha that makes the zero-variance tokens' mean |advantage|
            `zvp_alpha_relative_target` times the mixed groups' tokens' mean |advantage|, capped at `zvp_alpha_max`
            (`zvp_trl.methods.rl_zvp.algorithm.relative_alpha`). Logged as `zvp/alpha` either way.
        zvp_alpha_relative_target (`float`, *optional*, defaults to `0.1`):
            With `zvp_alpha_rule="relative"`: the wanted ratio of mean |advantage|, zero-variance tokens to mixed tokens.
        zvp_alpha_max (`float`, *optional*, defaults to `10.0`):
            With `zvp_alpha_rule="relative"`: the largest alpha it may set.
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
    zvp_alpha_rule: str = field(
        default="fixed",
        metadata={
            "help": "How alpha is set: 'fixed' (zvp_alpha) or 'relative' (each micro-batch, the alpha making the "
            "zero-variance tokens' mean |advantage| zvp_alpha_relative_target times the mixed tokens').",
            "choices": ["fixed", "relative"],
        },
    )
    zvp_alpha_relative_target: float = field(
        default=0.1,
        metadata={"help": "zvp_alpha_rule='relative': ratio of mean |advantage|, zero-variance to mixed tokens."},
    )
    zvp_alpha_max: float = field(
        default=10.0, metadata={"help": "zvp_alpha_rule='relative': the largest alpha it may set."}
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
        if not (self.zvp_alpha >= 0 and math.isfinite(self.zvp_alpha)):
            raise ValueError(
                f"zvp_alpha must be >= 0 and finite, got {self.zvp_alpha}. The paper uses 0.1 (0 is plain GRPO)."
            )
        if self.zvp_alpha_rule not in ("fixed", "relative"):
            raise ValueError(f"zvp_alpha_rule must be 'fixed' or 'relative', got {self.zvp_alpha_rule!r}.")
        if not (self.zvp_alpha_relative_target > 0 and math.isfinite(self.zvp_alpha_relative_target)):
            raise ValueError(
                f"zvp_alpha_relative_target must be > 0 and finite, got {self.zvp_alpha_relative_target}. The "
                "default is 0.1."
            )
        if not (self.zvp_alpha_max > 0 and math.isfinite(self.zvp_alpha_max)):
            raise ValueError(f"zvp_alpha_max must be > 0 and finite, got {self.zvp_alpha_max}. The default is 10.")
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
