# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
r"""
Verifiable math rewards for [`~trl.GRPOTrainer`].

The accuracy reward compares the content of the last `\boxed{...}` of a completion with a gold answer using
[math-verify](https://github.com/huggingface/Math-Verify). math-verify relies on `signal.alarm()` for its timeouts,
which only works in the main thread, and sympy can take arbitrarily long on adversarial inputs (e.g. `10^{10^{10}}`).
To get a hard time bound that also holds when rewards are computed from a worker thread, parsing and verification
run in a persistent helper process that is killed (and lazily restarted) when an item exceeds its time budget
(`zvp_trl.data.math_verify_worker`). Pairs of plain integers are compared in-process and never reach the helper
process.
"""

import atexit
import logging
import os
import re
from collections.abc import Callable, Sequence
from typing import Any

from trl.rewards import get_soft_overlong_punishment

from .math_verify_worker import MathVerifyWorker


__all__ = [
    "DEFAULT_TIMEOUT",
    "accuracy_reward",
    "batch_math_verify_accuracy",
    "boxed_format_reward",
    "completion_text",
    "extract_boxed_answer",
    "get_soft_overlong_punishment",
    "make_accuracy_reward",
    "math_verify_accuracy",
    "shutdown_math_verify_worker",
]

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 5.0
"""Default time budget, in seconds, to parse and verify one (gold, prediction) pair."""

_BOXED_COMMAND = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")
_BOXED_TOKEN = re.compile(r"\s+(\\[A-Za-z]+|[^\s${}\\]+)")  # argument of `\boxed 5` / `\boxed \pi`
_INTEGER = re.compile(r"[+-]?[0-9]+")
_LATEX_DELIMITERS = ("$", "\\(", "\\[")


# ---------------------------------------------------------------------------------------------------------------------
# Text helpers
# ---------------------------------------------------------------------------------------------------------------------


def _boxed_argument(text: str, end: int) -> str | None:
    """Returns the argument of the boxed command ending at `text[end]`, or `None` if it is missing or unbalanced."""
    position = end
    while position < len(text) and text[position].isspace():
        position += 1
    if position < len(text) and text[position] == "{":
        depth = 0
        index = position
        while index < len(text):
            char = text[index]
            if char == "\\":  # escaped characters such as `\{`, `\}` or `\\` are not structural braces
                index += 2
                continue
            if char == "{":
                depth += 1
            elif char == "}":
                depth -= 1
                if depth == 0:
                    return text[position + 1 : index].strip()
            index += 1
        return None
    # `\boxed 5` form: the argument is the following token
    match = _BOXED_TOKEN.match(text, end)
    return match.group(1) if match else None


def extract_boxed_answer(text: str) -> str | None:
    r"""
    Extracts the content of the last `\boxed{...}` (or `\fbox{...}`) of a text.

    Nested braces are matched (escaped braces `\{`, `\}` are ignored), and the brace-less form `\boxed 5` is accepted,
    in which case the answer is the following token.

    Args:
        text (`str`):
            Text to search, typically a model completion.

    Returns:
        `str | None`:
            The stripped content of the last boxed expression, or `None` if there is none or if the last one is
            unbalanced (e.g. a truncated completion ending in `\boxed{\frac{1}{`).

    Example:
    ```python
    >>> extract_boxed_answer(r"First \boxed{1}, finally \boxed{\frac{1}{2}}.")
    '\\frac{1}{2}'
    ```
    """
    matches = list(_BOXED_COMMAND.finditer(text))
    if not matches:
        return None
    return _boxed_argument(text, matches[-1].end())


def completion_text(completion: str | dict[str, Any] | list[dict[str, Any]]) -> str:
    r"""
    Returns the text of a completion as passed by TRL to reward functions.

    Args:
        completion (`str`, `dict` or `list[dict]`):
            Either a plain string (standard format) or a list of messages (conversational format), e.g.
            `[{"role": "assistant", "content": "..."}]`. The content of a message may also be a list of parts such as
            `{"type": "text", "text": "..."}`.

    Returns:
        `str`:
            The text itself, or the assistant contents (messages without a role count as assistant messages) joined
            with newlines. Non-text parts and other roles (e.g. tool results) are ignored.
    """
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        completion = [completion]
    texts = []
    for message in completion:
        if message.get("role", "assistant") != "assistant":
            continue
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif content is not None:
            texts.extend(part.get("text", "") for part in content if part.get("type") == "text")
    return "\n".join(texts)


# This interpreter's helper process: started on first use, stopped at exit, forgotten (not killed) by forked children.
_WORKER = MathVerifyWorker()
atexit.register(_WORKER.shutdown)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_WORKER._after_fork_in_child)


def math_verify_timeouts() -> int:
    """Answers this process's math-verify helper scored 0.0 because they ran out of time (their CPU-time budget, or
    the wall-clock safety net for a helper that stopped answering), since the process started. The trainers log the
    count per generation batch as `rewards/math_verify_timeouts`."""
    return _WORKER.timeouts


def shutdown_math_verify_worker() -> None:
    """Stops the math-verify helper process, if running. It is restarted on demand and stopped at interpreter exit."""
    _WORKER.shutdown()


# ---------------------------------------------------------------------------------------------------------------------
# Accuracy
# ---------------------------------------------------------------------------------------------------------------------


def _gold_answer(gold: Any) -> str | None:
    """Normalizes a gold value from a dataset column: numbers become strings and a full solution containing
    `\\boxed{}` is reduced to its last boxed content. Returns `None` for a missing answer."""
    if gold is None:
        return None
    gold = str(gold).strip()
    boxed = extract_boxed_answer(gold)
    if boxed is not None:
        gold = boxed
    return gold or None


def batch_math_verify_accuracy(
    golds: Sequence[Any], prediction_texts: Sequence[str], *, timeout: float = DEFAULT_TIMEOUT
) -> list[float | None]:
    r"""
    Batched version of [`math_verify_accuracy`]: all pairs that need math-verify are sent to the helper process in a
    single round-trip, and each pair gets its own time budget, so that one slow pair only costs its own `timeout`.

    Args:
        golds (`Sequence`):
            Gold answers (strings, or numbers). See [`math_verify_accuracy`].
        prediction_texts (`Sequence[str]`):
            Texts whose last boxed answer is compared with the gold answer of the same index.
        timeout (`float`, *optional*, defaults to `5.0`):
            Time budget, in seconds, for each pair (excluding the one-off start of the helper process).

    Returns:
        `list[float | None]`:
            One score per pair, as returned by [`math_verify_accuracy`].
    """
    if timeout <= 0:
        raise ValueError(f"`timeout` must be positive, got {timeout}.")
    results: list[float | None] = [None] * len(golds)
    pending: list[tuple[int, str, str | None]] = []  # (index, gold LaTeX, prediction LaTeX or None)
    for index, (gold, text) in enumerate(zip(golds, prediction_texts, strict=True)):
        gold = _gold_answer(gold)
        if gold is None:
            continue
        prediction = extract_boxed_answer(text)
        if _INTEGER.fullmatch(gold) and (prediction is None or _INTEGER.fullmatch(prediction)):
            # Fast path, equivalent to math-verify for integers. Only surrounding whitespace is tolerated: math-verify
            # reads `1 000` as `1*000`.
            results[index] = float(prediction is not None and int(gold) == int(prediction))
            continue
        gold_latex = gold if gold.startswith(_LATEX_DELIMITERS) else f"${gold}$"
        # Without a prediction, the pair is still sent to check that the gold answer is parseable (otherwise `None`).
        pending.append((index, gold_latex, None if prediction is None else f"${prediction}$"))
    if pending:
        scores = _WORKER.score([(gold, prediction) for _, gold, prediction in pending], timeout)
        for (index, _, _), score in zip(pending, scores, strict=True):
            results[index] = score
    return results


def math_verify_accuracy(gold: Any, prediction_text: str, *, timeout: float = DEFAULT_TIMEOUT) -> float | None:
    r"""
    Checks whether the last boxed answer of a text is mathematically equivalent to a gold answer, using math-verify.

    The gold answer is wrapped in `$...$` unless it already starts with a LaTeX math delimiter (`$`, `\(` or `\[`); if
    it contains a `\boxed{}` (e.g. a full reference solution), its last boxed content is used instead. The prediction
    is the content of the last `\boxed{...}` of `prediction_text` (see [`extract_boxed_answer`]). Pairs of plain
    integers are compared directly; everything else is parsed and verified by math-verify in a helper process with a
    hard time limit, so this function is safe to call from any thread and never hangs.

    Args:
        gold (`str` or number):
            Gold answer, e.g. `"\frac{1}{2}"`, `"[1,3)"`, `"\text{Evelyn}"` or `42`.
        prediction_text (`str`):
            Text containing the predicted answer in a `\boxed{...}`, typically a model completion.
        timeout (`float`, *optional*, defaults to `5.0`):
            Time budget in seconds. When exceeded, the helper process is killed (and later restarted) and the
            prediction scores 0.0.

    Returns:
        `float | None`:
            1.0 if the prediction is equivalent to the gold answer, 0.0 if it is not, has no (well-formed) boxed
            answer, cannot be parsed or times out, and `None` if the gold answer is missing or cannot be parsed (TRL
            treats `None` as "unscorable").

    Raises:
        `RuntimeError`:
            If the helper process cannot be started (e.g. math-verify is not installed).

    Example:
    ```python
    >>> math_verify_accuracy(r"\frac{1}{2}", r"So the answer is \boxed{0.5}.")
    1.0
    ```
    """
    return batch_math_verify_accuracy([gold], [prediction_text], timeout=timeout)[0]


def accuracy_reward(
    completions: list[str] | list[list[dict[str, Any]]], solution: list[Any] | None = None, **kwargs
) -> list[float | None]:
    r"""
    Reward function that checks whether the last boxed answer of each completion matches the gold answer of the
    `solution` column (see [`math_verify_accuracy`]).

    Args:
        completions (`list[str]` or `list[list[dict]]`):
            Completions, in standard or conversational format.
        solution (`list`):
            Gold answers, or full reference solutions containing a `\boxed{}` answer.
        **kwargs:
            Additional keyword arguments passed by [`~trl.GRPOTrainer`] (other dataset columns, `trainer_state`, ...).
            Unused.

    Returns:
        `list[float | None]`:
            1.0 for a correct answer, 0.0 otherwise, `None` when the gold answer is unparseable.

    Raises:
        `KeyError`:
            If the dataset has no `solution` column (naming the columns it has).

    Example:
    ```python
    >>> completions = [[{"role": "assistant", "content": r"\boxed{\frac{1}{3}}"}], r"\boxed{0.5}"]
    >>> accuracy_reward(completions, solution=[r"\frac{1}{3}", r"\frac{1}{3}"])
    [1.0, 0.0]
    ```
    """
    if solution is None:
        raise _missing_answer_column("accuracy_reward", "solution", kwargs)
    return batch_math_verify_accuracy(solution, [completion_text(completion) for completion in completions])


def _missing_answer_column(name: str, column: str, kwargs: dict[str, Any]) -> KeyError:
    # TRL passes every dataset column as a keyword argument, next to its own ones.
    trl_arguments = {"prompts", "completion_ids", "trainer_state", "log_extra", "log_metric"}
    return KeyError(
        f"The reward function '{name}' reads gold answers from the '{column}' column, which the dataset does not have "
        f"(its columns: {sorted(set(kwargs) - trl_arguments)}). Add a '{column}' column (`load_math_dataset` writes "
        "one), or use `make_accuracy_reward(answer_column=...)` to read another column."
    )


class _AccuracyReward:
    # Callable class rather than a closure so that the reward stays picklable (as TRL's own parametrized rewards).
    def __init__(self, answer_column: str, timeout: float, name: str):
        self.answer_column = answer_column
        self.timeout = timeout
        self.__name__ = name

    def __call__(self, completions: list[str] | list[list[dict[str, Any]]], **kwargs) -> list[float | None]:
        if self.answer_column not in kwargs:
            raise _missing_answer_column(self.__name__, self.answer_column, kwargs)
        texts = [completion_text(completion) for completion in completions]
        return batch_math_verify_accuracy(kwargs[self.answer_column], texts, timeout=self.timeout)


def make_accuracy_reward(
    answer_column: str = "solution", timeout: float = DEFAULT_TIMEOUT, name: str = "accuracy"
) -> Callable[..., list[float | None]]:
    r"""
    Creates an accuracy reward function, like [`accuracy_reward`], that reads gold answers from a given dataset
    column.

    Args:
        answer_column (`str`, *optional*, defaults to `"solution"`):
            Dataset column holding the gold answers (or full solutions containing a `\boxed{}` answer).
        timeout (`float`, *optional*, defaults to `5.0`):
            Time budget in seconds for each completion (see [`math_verify_accuracy`]).
        name (`str`, *optional*, defaults to `"accuracy"`):
            Value of the function's `__name__`, used by TRL in metric names (e.g. `rewards/accuracy/mean`).

    Returns:
        `Callable`:
            A picklable reward function `(completions, **kwargs) -> list[float | None]`.

    Example:
    ```python
    >>> reward = make_accuracy_reward("answer")
    >>> reward(completions=[r"\boxed{27}", r"\boxed{26}"], answer=["27.0", "27.0"])
    [1.0, 0.0]
    ```
    """
    if timeout <= 0:
        raise ValueError(f"`timeout` must be positive, got {timeout}.")
    return _AccuracyReward(answer_column, timeout, name)


# ---------------------------------------------------------------------------------------------------------------------
# Format
# ---------------------------------------------------------------------------------------------------------------------


def boxed_format_reward(completions: list[str] | list[list[dict[str, Any]]], **kwargs) -> list[float]:
    r"""
    Reward function that checks that a completion gives exactly one boxed answer.

    A completion is rewarded 1.0 if it contains exactly one `\boxed` or `\fbox` command and its argument is balanced
    and non-empty (`\boxed{...}` or `\boxed 5`), and 0.0 otherwise: no box, several boxes (including nested ones), an
    empty box, or an unbalanced box such as a truncated `\boxed{\frac{1}{`. The answer's correctness is not checked.

    Args:
        completions (`list[str]` or `list[list[dict]]`):
            Completions, in standard or conversational format.
        **kwargs:
            Additional keyword arguments passed by [`~trl.GRPOTrainer`]. Unused.

    Returns:
        `list[float]`:
            1.0 or 0.0 for each completion.

    Example:
    ```python
    >>> boxed_format_reward([r"\boxed{1}", r"\boxed{1} or \boxed{2}", r"\boxed{\frac{1}{"])
    [1.0, 0.0, 0.0]
    ```
    """
    rewards = []
    for completion in completions:
        text = completion_text(completion)
        matches = list(_BOXED_COMMAND.finditer(text))
        well_formed = len(matches) == 1 and bool(_boxed_argument(text, matches[0].end()))
        rewards.append(float(well_formed))
    return rewards
