# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""ERPO's per-prompt temperature rule and history (pure; no trainer inside).

ERPO ("Explore Data Left Behind in Reinforcement Learning for Reasoning Language Models", arXiv 2511.04800) keeps a
history per prompt and samples a prompt whose group last came back all-correct (a *residual* prompt) at a higher
temperature the next time it is drawn, raised step by step up to a cap, so that it yields incorrect completions and a
learning signal again. The paper does not publish the exact rule; every choice below is an option (see
`ERPOConfig`), with documented defaults: additive step 0.1, cap 1.5, base = the config's `temperature`, trigger =
all-correct only, a mixed group holds the raised temperature.
"""

from collections.abc import Iterable


TRIGGERS = ("all_correct", "all_correct_or_all_wrong")
ON_MIXED = ("hold", "reset", "decay")


def erpo_next_temperature(
    current: float,
    num_correct: int | None,
    num_generations: int,
    *,
    base: float,
    step: float,
    max_temperature: float,
    trigger: str = "all_correct",
    on_mixed: str = "hold",
) -> float:
    """The temperature a prompt is sampled at next time, given the group it just produced.

    Args:
        current (`float`):
            Temperature the group was sampled at.
        num_correct (`int` or `None`):
            Number of correct completions in the group, `0 <= num_correct <= num_generations`. `None` for a group with
            an unscored completion (every reward function returned `None`/NaN for it): it counts as a mixed group, as
            in the zero-variance rules of the other methods, so it never raises the temperature.
        num_generations (`int`):
            Group size G.
        base (`float`):
            Base temperature (the floor; prompts start there).
        step (`float`):
            Additive increase after a triggering group (and decrease per mixed group with `on_mixed="decay"`).
        max_temperature (`float`):
            Cap; the result never exceeds it.
        trigger (`str`, *optional*, defaults to `"all_correct"`):
            Which groups raise the temperature: `"all_correct"` (the paper) or `"all_correct_or_all_wrong"`.
        on_mixed (`str`, *optional*, defaults to `"hold"`):
            What a mixed group (`0 < num_correct < G`) does: `"hold"` keeps the temperature, `"reset"` returns to
            `base`, `"decay"` lowers it by `step` (not below `base`).

    Returns:
        `float` in `[base, max_temperature]`. An all-wrong group under the `"all_correct"` trigger leaves the
        temperature unchanged.
    """
    if trigger not in TRIGGERS:
        raise ValueError(f"trigger must be one of {TRIGGERS}, got {trigger!r}.")
    if on_mixed not in ON_MIXED:
        raise ValueError(f"on_mixed must be one of {ON_MIXED}, got {on_mixed!r}.")
    if num_correct is not None and not 0 <= num_correct <= num_generations:
        raise ValueError(f"num_correct={num_correct} is outside [0, num_generations={num_generations}].")
    if max_temperature < base:
        raise ValueError(f"max_temperature={max_temperature} is below base={base}.")
    all_correct = num_correct == num_generations
    all_wrong = num_correct == 0
    if all_correct or (all_wrong and trigger == "all_correct_or_all_wrong"):
        new = current + step
    elif all_wrong:
        new = current
    elif on_mixed == "reset":
        new = base
    elif on_mixed == "decay":
        new = current - step
    else:
        new = current
    # Rounded to 10 decimals so that repeated additive steps land on the same floats on every process and after a
    # JSON round trip (0.1 + 0.1 + 0.1 != 0.3 otherwise).
    return round(min(max(new, base), max_temperature), 10)


class PromptTemperatureHistory:
    """Per-prompt sampling temperatures for ERPO, with `state_dict()` / `load_state_dict()` for checkpoints.

    Prompts are identified by stable string ids (see `zvp_trl.core.prompt_ids`). A prompt never seen, or back at `base`,
    is not stored, so the state holds only the elevated prompts plus counters. Every process applies the same
    updates (from gathered ids and rewards), so the history is identical everywhere.
    """

    def __init__(
        self,
        base: float,
        step: float,
        max_temperature: float,
        trigger: str = "all_correct",
        on_mixed: str = "hold",
    ):
        # Validated once here, so a bad option fails at construction rather than at the first update.
        erpo_next_temperature(
            base, 0, 1, base=base, step=step, max_temperature=max_temperature, trigger=trigger, on_mixed=on_mixed
        )
        self.base = float(base)
        self.step = float(step)
        self.max_temperature = float(max_temperature)
        self.trigger = trigger
        self.on_mixed = on_mixed
        self.temperatures: dict[str, float] = {}
        self.num_updates: dict[str, int] = {}  # groups seen per prompt

    def temperature(self, prompt_id: str) -> float:
        return self.temperatures.get(prompt_id, self.base)

    def update(
        self, prompt_ids: Iterable[str], num_correct: Iterable[int | None], num_generations: int
    ) -> list[float]:
        """Records one group per prompt id (in order) and returns the temperatures they were sampled at.

        A prompt id that appears twice in one call is updated twice, in order. A `None` count (a group with an
        unscored completion) is a mixed group (see [`erpo_next_temperature`]).
        """
        previous = []
        for pid, k in zip(prompt_ids, num_correct, strict=True):
            current = self.temperature(pid)
            previous.append(current)
            new = erpo_next_temperature(
                current,
                None if k is None else int(k),
                num_generations,
                base=self.base,
                step=self.step,
                max_temperature=self.max_temperature,
                trigger=self.trigger,
                on_mixed=self.on_mixed,
            )
            if new > self.base:
                self.temperatures[pid] = new
            else:
                self.temperatures.pop(pid, None)
            self.num_updates[pid] = self.num_updates.get(pid, 0) + 1
        return previous

    def state_dict(self) -> dict:
        return {
            "base": self.base,
            "step": self.step,
            "max_temperature": self.max_temperature,
            "trigger": self.trigger,
            "on_mixed": self.on_mixed,
            "temperatures": dict(self.temperatures),
            "num_updates": dict(self.num_updates),
        }

    def load_state_dict(self, state: dict) -> None:
        # The rule options come from the current config (a resumed run may change them on purpose); temperatures are
        # clipped into the current [base, max] range so they stay valid.
        self.temperatures = {
            pid: min(max(float(t), self.base), self.max_temperature)
            for pid, t in state["temperatures"].items()
            if min(float(t), self.max_temperature) > self.base
        }
        self.num_updates = {pid: int(n) for pid, n in state["num_updates"].items()}
