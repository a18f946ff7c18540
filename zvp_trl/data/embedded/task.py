# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""An arithmetic-reasoning task generated offline, for runs that need no download.

A problem is a chain of additions and subtractions evaluated left to right, e.g. ``"Q: 37+8-15=?\\nA:"``. The reference
completion writes one equation per step and ends with the boxed result::

    " 37+8=45 45-15=30 \\boxed{30}"

The warm start imitates solutions with a systematic slip (a forgotten carry or borrow, at a fixed rate), so the base
model has a bad habit that RL can remove. The number of operations is the difficulty knob: longer chains give the
model more chances to make a mistake, so a mix of lengths produces prompts that a partly trained model solves always
(all-correct groups), never (all-wrong groups) or sometimes (mixed groups) -- the zero-variance situation the package
is about.
"""

import random
from dataclasses import dataclass

from datasets import Dataset


PROMPT_FORMAT = "Q: {expression}=?\nA:"


def prompt_as_question(prompt: str) -> str:
    """An embedded prompt (`"Q: 3+4=?\nA:"`) as the question a prompt template takes (`"What is 3+4?"`): how
    `recipes/train.py` and `recipes/evaluate.py` ask the embedded problems with a template or as chat messages."""
    prefix, suffix = PROMPT_FORMAT.split("{expression}")
    return f"What is {prompt.removeprefix(prefix).removesuffix(suffix)}?"


# The RL task of the default run: chains of 1..MAX_OPS operations mixed at DIFFICULTY; training and held-out prompts
# come from fixed seeds, so every script that scores "the held-out set" scores the same prompts.
DIFFICULTY = 0.4
MAX_OPS = 9
MAX_OPERAND = 20
SPLIT_SEEDS = {"train": 1, "heldout": 2}
SPLIT_SIZES = {"train": 2048, "heldout": 256}


@dataclass(frozen=True)
class ArithmeticProblem:
    expression: str
    answer: int
    num_ops: int

    @property
    def prompt(self) -> str:
        return PROMPT_FORMAT.format(expression=self.expression)

    @property
    def reference_completion(self) -> str:
        """The correct step-by-step solution (leading space, boxed final answer)."""
        return self.solution_with_slips(random.Random(0), slip_rate=0.0)

    def solution_with_slips(self, rng: random.Random, slip_rate: float) -> str:
        """A step-by-step solution in which each step that needs a carry (addition) or a borrow (subtraction) forgets
        it with probability `slip_rate`: the step's result is then off by 10, and the rest of the chain continues
        consistently from the wrong value. `slip_rate=0` gives the correct solution."""
        terms = self.expression.replace("-", " -").replace("+", " +").split()
        value = int(terms[0])
        steps = []
        for term in terms[1:]:
            op, operand = term[0], int(term[1:])
            if op == "+":
                new_value = value + operand
                slipped = new_value - 10 if value % 10 + operand % 10 >= 10 else None
            else:
                new_value = value - operand
                slipped = new_value + 10 if value % 10 < operand % 10 else None
            if slipped is not None and slip_rate > 0 and rng.random() < slip_rate:  # slips never go below 0
                new_value = slipped
            steps.append(f"{value}{op}{operand}={new_value}")
            value = new_value
        return " " + " ".join(steps) + " \\boxed{" + str(value) + "}"


def sample_problem(rng: random.Random, num_ops: int, max_operand: int = 20) -> ArithmeticProblem:
    """Draws one chain of `num_ops` operations on operands in `[0, max_operand]`.

    A subtraction that would go below zero becomes an addition, so every intermediate value is non-negative.
    """
    if num_ops < 1:
        raise ValueError(f"num_ops must be >= 1, got {num_ops}.")
    value = rng.randint(0, max_operand)
    expression = str(value)
    for _ in range(num_ops):
        operand = rng.randint(0, max_operand)
        op = "-" if rng.random() < 0.5 and operand <= value else "+"
        value = value + operand if op == "+" else value - operand
        expression += f"{op}{operand}"
    return ArithmeticProblem(expression=expression, answer=value, num_ops=num_ops)


def num_ops_weights(difficulty: float, max_ops: int) -> list[float]:
    """Probability of each chain length 1..max_ops.

    `difficulty` in [0, 1] tilts the mix: 0 favours one-operation problems, 1 favours the longest chains, 0.5 is
    uniform. The weights are geometric in the chain length, so every length keeps some mass.
    """
    if not 0.0 <= difficulty <= 1.0:
        raise ValueError(f"difficulty must be in [0, 1], got {difficulty}.")
    ratio = 4.0 ** (2.0 * difficulty - 1.0)  # 0.25 .. 4
    weights = [ratio**k for k in range(max_ops)]
    total = sum(weights)
    return [w / total for w in weights]


def generate_problems(
    num_problems: int,
    seed: int,
    difficulty: float = 0.5,
    max_ops: int = 4,
    max_operand: int = 20,
    min_ops: int = 1,
) -> list[ArithmeticProblem]:
    """`num_problems` problems, deterministic for `seed`. Chain lengths run from `min_ops` to `max_ops` with the
    weights of `num_ops_weights` (restricted to that range); `min_ops=1` is the full range."""
    if not 1 <= min_ops <= max_ops:
        raise ValueError(f"min_ops must be in [1, max_ops={max_ops}], got {min_ops}.")
    rng = random.Random(seed)
    weights = num_ops_weights(difficulty, max_ops)[min_ops - 1 :]
    lengths = rng.choices(range(min_ops, max_ops + 1), weights=weights, k=num_problems)
    return [sample_problem(rng, num_ops, max_operand) for num_ops in lengths]


def make_dataset(
    num_problems: int, seed: int, difficulty: float = 0.5, max_ops: int = 4, max_operand: int = 20, min_ops: int = 1
) -> Dataset:
    """A TRL-ready dataset: `prompt` (plain string), `solution` (the integer answer as text), `num_ops`."""
    problems = generate_problems(num_problems, seed, difficulty, max_ops, max_operand, min_ops)
    return Dataset.from_dict(
        {
            "prompt": [p.prompt for p in problems],
            "solution": [str(p.answer) for p in problems],
            "num_ops": [p.num_ops for p in problems],
        }
    )


def make_split(
    split: str,
    num_problems: int | None = None,
    difficulty: float = DIFFICULTY,
    max_ops: int = MAX_OPS,
    min_ops: int = 1,
    max_operand: int = MAX_OPERAND,
) -> Dataset:
    """The default run's `"train"` or `"heldout"` prompts (`num_problems` defaults to the split's size); `min_ops`
    keeps only chains of at least that many operations and `max_operand` draws operands from `[0, max_operand]` (the
    same seed stream: their defaults give the default split)."""
    if split not in SPLIT_SEEDS:
        raise ValueError(f"split must be one of {list(SPLIT_SEEDS)}, got {split!r}.")
    if max_operand < 1:
        raise ValueError(f"max_operand must be >= 1, got {max_operand}.")
    return make_dataset(
        num_problems or SPLIT_SIZES[split], SPLIT_SEEDS[split], difficulty, max_ops, max_operand, min_ops=min_ops
    )
