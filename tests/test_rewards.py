# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
import logging
import pickle
import threading
import time

import pytest
import trl.rewards
from math_verify import parse, verify

from zvp_trl.data import rewards
from zvp_trl.data.math_verify_worker import wall_clock_limit
from zvp_trl.data.rewards import (
    accuracy_reward,
    batch_math_verify_accuracy,
    boxed_format_reward,
    completion_text,
    extract_boxed_answer,
    get_soft_overlong_punishment,
    make_accuracy_reward,
    math_verify_accuracy,
    shutdown_math_verify_worker,
)


# math-verify/sympy does not finish comparing this with 5 within 20 s: 10**(10**10) has ten billion digits. In the main
# thread math-verify's signal-based timeout would catch it, but not in other threads, where it hangs.
SLOW_ANSWER = r"The answer is \boxed{10^{10^{10}}}."


def run_in_thread(function, *args, **kwargs):
    results = []
    thread = threading.Thread(target=lambda: results.append(function(*args, **kwargs)))
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive()
    return results[0]


# ---------------------------------------------------------------------------------------------------------------------
# Text helpers
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.unit
@pytest.mark.parametrize(
    "text, expected",
    [
        (r"The answer is \boxed{42}.", "42"),
        (r"\boxed{\frac{\sqrt{2}}{2}}", r"\frac{\sqrt{2}}{2}"),  # nested braces
        (r"\boxed{ {a}{b}{c} }", "{a}{b}{c}"),
        (r"First \boxed{1}, then \boxed{2}", "2"),  # the last one wins
        (r"\boxed{\{1,2,3\}}", r"\{1,2,3\}"),  # escaped braces
        (r"\boxed{\left\{ x \right.}", r"\left\{ x \right."),  # unbalanced escaped braces are not structural
        (r"\fbox{7}", "7"),
        (r"\boxed {7}", "7"),
        (r"so \boxed 5$.", "5"),  # brace-less form: the next token
        (r"\boxed \pi", r"\pi"),
        (r"\boxed{}", ""),
        ("no answer here", None),
        (r"\boxed{\frac{1}{", None),  # truncated
        (r"\boxed{1} and finally \boxed{\frac{1}{", None),  # the last one is malformed
        (r"\boxed", None),
        (r"\boxedfoo{1}", None),  # not the \boxed command
    ],
)
def test_extract_boxed_answer(text, expected):
    assert extract_boxed_answer(text) == expected


@pytest.mark.unit
def test_completion_text():
    assert completion_text("plain") == "plain"
    assert completion_text([{"role": "assistant", "content": "hello"}]) == "hello"
    assert completion_text([{"content": "no role"}]) == "no role"
    parts = [{"type": "text", "text": "a"}, {"type": "image"}, {"type": "text", "text": "b"}]
    assert completion_text([{"role": "assistant", "content": parts}]) == "a\nb"
    multi_turn = [
        {"role": "assistant", "content": None, "tool_calls": [{"name": "calculator"}]},
        {"role": "tool", "content": r"\boxed{3}"},
        {"role": "assistant", "content": r"\boxed{4}"},
    ]
    assert completion_text(multi_turn) == r"\boxed{4}"


# ---------------------------------------------------------------------------------------------------------------------
# Accuracy
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.trainer
@pytest.mark.parametrize(
    "gold, prediction, expected",
    [
        (r"\frac{1}{2}", "0.5", 1.0),
        ("0.5", r"\frac{1}{2}", 1.0),
        ("1/2", r"\frac12", 1.0),
        (r"\frac12", "1/2", 1.0),
        (r"\dfrac{3}{4}", "0.75", 1.0),
        (r"\frac{1}{2}", r"\frac{1}{3}", 0.0),
        # Decimals are compared after rounding to 6 digits...
        (r"\frac13", "0.333333", 1.0),
        (r"\frac13", "0.33", 0.0),
        # ...but a decimal gold is taken at face value: 0.333 is not 1/3.
        ("0.333", r"\frac13", 0.0),
        ("27.0", "27", 1.0),
        ("27", "27.0", 1.0),
        ("[1,3)", "[1,3)", 1.0),
        ("[1,3)", "(1,3)", 0.0),
        (r"\{1,2,3\}", r"\{3,2,1\}", 1.0),
        (r"\{1,2,3\}", r"\{1,2\}", 0.0),
        (r"\text{Evelyn}", "Evelyn", 1.0),  # `Evelyn` parses as the product E*v*e*l*y*n, matched letter by letter
        (r"\text{Evelyn}", r"\text{Evelyn}", 1.0),
        (r"\text{Evelyn}", r"\text{Bob}", 0.0),
        (r"\sqrt{2}/2", r"\frac{\sqrt2}{2}", 1.0),
        (r"\frac{1}{\sqrt{2}}", r"\frac{\sqrt{2}}{2}", 1.0),
        ("x^2+1", "1+x^2", 1.0),
        ("x=5", "5", 1.0),
        ("1,000", "1000", 1.0),
        (r"10\%", "0.1", 1.0),
        # math-verify is lenient with percentages: 5% is accepted for a gold of 5.
        ("5", r"5\%", 1.0),
        ("5", r"5 \text{ cm}", 1.0),  # units are dropped
        # math-verify reads `1 000` as `1*000` = 0, hence the fast path only tolerates surrounding whitespace.
        ("1000", "1 000", 0.0),
        ("42", "41", 0.0),
    ],
)
def test_math_verify_accuracy(gold, prediction, expected):
    assert math_verify_accuracy(gold, rf"The final answer is \boxed{{{prediction}}}.") == expected


@pytest.mark.trainer
@pytest.mark.parametrize(
    "gold, text, expected",
    [
        (r"\frac{1}{2}", "The answer is 0.5.", 0.0),  # no boxed answer
        (r"\frac{1}{2}", r"\boxed{\frac{1}{", 0.0),  # truncated, malformed LaTeX
        (r"\frac{1}{2}", r"\boxed{\frac{1}{2", 0.0),
        (r"\frac{1}{2}", r"\boxed{\frac{}{}}", 0.0),
        (r"\frac{1}{2}", r"\boxed{)(}", 0.0),
        (r"\frac{1}{2}", r"\boxed{}", 0.0),
        (r"\frac{1}{2}", r"I first thought \boxed{1/3} but it is \fbox{1/2}", 1.0),  # last boxed wins
        (r"\frac{1}{2}", r"\boxed{1/2} no wait, \boxed{1/3}", 0.0),
        (r"\frac{\sqrt{3}}{2}", r"\boxed{\frac{\sqrt{3}}{2}}", 1.0),  # nested braces
        (r"$\frac{1}{2}$", r"\boxed{0.5}", 1.0),  # already-delimited gold
        (r"\[\frac{1}{2}\]", r"\boxed{0.5}", 1.0),
        (r"Hence $x = \frac12$, i.e. \boxed{\frac{1}{2}}.", r"\boxed{0.5}", 1.0),  # full solution as gold
        (r"Hence \boxed{1/2}", r"\boxed{\frac12}", 1.0),
    ],
)
def test_math_verify_accuracy_predictions(gold, text, expected):
    assert math_verify_accuracy(gold, text) == expected


@pytest.mark.trainer
@pytest.mark.parametrize("gold", [r"\frac{1}{", "", "   ", None, r"\boxed{}"])
def test_unparseable_gold_is_unscorable(gold):
    assert math_verify_accuracy(gold, r"\boxed{1}") is None
    assert math_verify_accuracy(gold, "no boxed answer") is None  # even without a prediction


@pytest.mark.unit
def test_integer_fast_path_skips_worker():
    shutdown_math_verify_worker()
    num_starts = rewards._WORKER.num_starts
    completions = [r"\boxed{42}", r"\boxed{ 42 }", r"\boxed{+42}", r"\boxed{042}", r"\boxed{41}", "no answer"]
    assert accuracy_reward(completions, solution=["42"] * 5 + [" 42 "]) == [1.0, 1.0, 1.0, 1.0, 0.0, 0.0]
    assert accuracy_reward([r"\boxed{-0}", r"\boxed{-7}"], solution=[0, 7]) == [1.0, 0.0]  # int-typed column
    assert rewards._WORKER.pid is None
    assert rewards._WORKER.num_starts == num_starts


@pytest.mark.unit
@pytest.mark.parametrize(
    "gold, prediction",
    [
        ("42", "42"),
        ("+5", "5"),
        ("007", "7"),
        ("-0", "0"),
        ("-5", "5"),
        ("10", "010"),
        # Exact for big integers, whereas a float comparison would accept them.
        ("12345678901234567890", "12345678901234567891"),
        ("12345678901234567890", "12345678901234567890"),
    ],
)
def test_integer_fast_path_agrees_with_math_verify(gold, prediction):
    expected = float(verify(parse(f"${gold}$"), parse(f"${prediction}$")))  # in-process, in the main thread
    assert math_verify_accuracy(gold, rf"\boxed{{{prediction}}}") == expected


@pytest.mark.trainer
def test_batch_matches_single_calls():
    golds = [r"\frac12", "3", r"\frac{1}{", "[1,3)", r"\text{Evelyn}"]
    texts = [r"\boxed{0.5}", r"\boxed{4}", r"\boxed{1}", r"\boxed{(1,3)}", "Evelyn"]
    expected = [1.0, 0.0, None, 0.0, 0.0]
    assert batch_math_verify_accuracy(golds, texts) == expected
    assert [math_verify_accuracy(gold, text) for gold, text in zip(golds, texts)] == expected
    with pytest.raises(ValueError):
        batch_math_verify_accuracy(golds, texts[:-1])


@pytest.mark.unit
def test_invalid_timeout():
    with pytest.raises(ValueError):
        math_verify_accuracy("1", r"\boxed{1}", timeout=0)
    with pytest.raises(ValueError):
        make_accuracy_reward(timeout=-1.0)


@pytest.mark.trainer
def test_call_from_thread():
    assert run_in_thread(math_verify_accuracy, r"\{1,2,3\}", r"\boxed{\{3,2,1\}}") == 1.0
    assert run_in_thread(math_verify_accuracy, r"\sqrt{2}/2", r"\boxed{\frac{\sqrt2}{3}}") == 0.0
    assert run_in_thread(accuracy_reward, [r"\boxed{0.5}"], solution=[r"\frac12"]) == [1.0]


@pytest.mark.trainer
def test_concurrent_calls_from_threads():
    results = {}

    def score(i):
        golds = [r"\frac12", r"\frac13", f"{i}.0"] * 5
        texts = [r"\boxed{0.5}", r"\boxed{0.5}", rf"\boxed{{{i}}}"] * 5
        results[i] = batch_math_verify_accuracy(golds, texts)

    threads = [threading.Thread(target=score, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert results == {i: [1.0, 0.0, 1.0] * 5 for i in range(6)}


@pytest.mark.trainer
def test_pathological_input_is_bounded_and_worker_restarts():
    assert math_verify_accuracy(r"\frac12", r"\boxed{0.5}") == 1.0  # make sure the worker runs: no start-up cost below
    pid = rewards._WORKER.pid
    assert pid is not None

    timeout = 1.0
    timeouts = rewards.math_verify_timeouts()
    start = time.perf_counter()
    assert math_verify_accuracy("5", SLOW_ANSWER, timeout=timeout) == 0.0
    elapsed = time.perf_counter() - start
    # The budget is CPU time, enforced in whole seconds by the kernel for native code (a huge integer power): at
    # least the budget, at most one second more of CPU, plus the helper's exit; far below the wall-clock safety net.
    assert timeout <= elapsed < timeout + 10.0 < wall_clock_limit(timeout)
    assert rewards.math_verify_timeouts() == timeouts + 1  # counted
    assert rewards._WORKER.pid is None  # ended by its CPU-time limit, restarted on demand

    assert math_verify_accuracy(r"\frac12", r"\boxed{0.5}") == 1.0
    assert rewards._WORKER.pid not in (None, pid)


CPU_BUDGET_PROBE = """
import importlib.util, sys, time
spec = importlib.util.spec_from_file_location("worker", sys.argv[1])
worker = importlib.util.module_from_spec(spec)
spec.loader.exec_module(worker)
with worker.cpu_budget(0.2):
    time.sleep(0.6)  # three times the budget of wall-clock time, no CPU: within budget
print("slept", flush=True)
try:
    with worker.cpu_budget(0.2):
        while True:  # Python code: interrupted at the budget
            pass
except worker.CPUBudgetExceeded:
    print("interrupted", flush=True)
import hashlib
with worker.cpu_budget(0.5):
    hashlib.pbkdf2_hmac("sha256", b"x", b"y", 2**31 - 1)  # native code that does not return to Python: the kernel ends it
print("unreachable", flush=True)
"""


@pytest.mark.distributed
def test_the_budget_is_cpu_time_not_wall_clock_time(tmp_path):
    """What a loaded machine does to a wall-clock budget, shown with a sleep: wall-clock time passes without CPU time,
    and the answer is not cut. CPU time spent in Python is interrupted at the budget (the helper goes on); CPU time
    spent in native code ends the process by the kernel's CPU limit (SIGXCPU)."""
    import signal
    import subprocess
    import sys

    from zvp_trl.data import math_verify_worker

    result = subprocess.run(
        [sys.executable, "-c", CPU_BUDGET_PROBE, math_verify_worker.__file__], capture_output=True, text=True, timeout=120
    )
    assert result.stdout.split() == ["slept", "interrupted"]
    assert result.returncode == -signal.SIGXCPU


@pytest.mark.trainer
def test_a_killed_helper_process_is_restarted_and_scores_correctly():
    """The helper process killed from outside (out of memory, an operator's kill) between reward calls: the next call
    starts a fresh one, and known-correct answers still score 1 (not a silent 0)."""
    import os
    import signal

    assert math_verify_accuracy(r"\frac12", r"\boxed{0.5}") == 1.0
    pid, starts = rewards._WORKER.pid, rewards._WORKER.num_starts
    os.kill(pid, signal.SIGKILL)
    time.sleep(0.2)
    golds, texts = [r"\frac12", r"\frac13", "7"], [r"\boxed{0.5}", r"\boxed{\frac{2}{6}}", r"\boxed{7.0}"]
    assert batch_math_verify_accuracy(golds, texts) == [1.0, 1.0, 1.0]
    assert rewards._WORKER.num_starts == starts + 1 and rewards._WORKER.pid not in (None, pid)


def _kill_helper_when_busy(starts_before: int, kills: int, delay: float = 0.3) -> threading.Thread:
    """Kills the math-verify helper process `kills` times: each time a new one is ready (`num_starts` grew), `delay`
    seconds later, while it is scoring the batch sent to it."""
    import os
    import signal

    def killer():
        for k in range(1, kills + 1):
            deadline = time.monotonic() + 120
            while rewards._WORKER.num_starts < starts_before + k and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(delay)
            pid = rewards._WORKER.pid
            if pid is not None:
                os.kill(pid, signal.SIGKILL)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    return thread


@pytest.mark.trainer
def test_a_helper_killed_while_scoring_scores_the_answer_again(caplog):
    """The helper process killed from outside while it scores a batch: the answer it was working on is scored again
    on a fresh helper, so every known-correct answer still scores 1 (a kill mid-batch costs no reward)."""
    assert math_verify_accuracy(r"\frac12", r"\boxed{0.5}") == 1.0
    starts = rewards._WORKER.num_starts
    # Distinct fractions (plain integers never reach the helper), each written differently from its gold answer;
    # enough of them that scoring takes several seconds, so the kill lands mid-batch.
    golds = [rf"\frac{{{i}}}{{{i + 1}}}" for i in range(1, 1501)]
    texts = [rf"\boxed{{\frac{{{2 * i}}}{{{2 * i + 2}}}}}" for i in range(1, 1501)]
    killer = _kill_helper_when_busy(starts - 1, kills=1)  # the current helper is already ready
    with caplog.at_level(logging.WARNING, logger="zvp_trl.data.math_verify_worker"):
        scores = batch_math_verify_accuracy(golds, texts, timeout=60)
    killer.join(timeout=5)
    assert rewards._WORKER.num_starts == starts + 1  # it was killed mid-batch and restarted once
    assert scores == [1.0] * len(golds)
    assert any("scoring the answer it was working on again" in record.message for record in caplog.records)


@pytest.mark.trainer
def test_an_answer_that_kills_a_fresh_helper_too_scores_zero_with_a_warning(caplog):
    """If the helper process dies twice on the same answer (the second time on a fresh one), that answer scores 0.0
    with a warning and the rest of the batch is scored correctly."""
    assert math_verify_accuracy(r"\frac12", r"\boxed{0.5}") == 1.0
    starts = rewards._WORKER.num_starts
    rewards._WORKER._warned = False
    killer = _kill_helper_when_busy(starts - 1, kills=2)
    golds, texts = ["5", r"\frac13"], [SLOW_ANSWER, r"\boxed{\frac{2}{6}}"]
    with caplog.at_level(logging.WARNING, logger="zvp_trl.data.math_verify_worker"):
        scores = batch_math_verify_accuracy(golds, texts, timeout=60)
    killer.join(timeout=5)
    assert scores == [0.0, 1.0]
    assert rewards._WORKER.num_starts == starts + 2
    assert any("crashed the helper process twice" in record.message for record in caplog.records)


@pytest.mark.trainer
def test_pathological_input_in_thread():
    start = time.perf_counter()
    score = run_in_thread(math_verify_accuracy, "5", r"\boxed{2^{2^{2^{2^{2^{2}}}}}}", timeout=0.5)
    assert score == 0.0
    assert time.perf_counter() - start < 0.5 + 5.0  # slack for a possible start of the worker


@pytest.mark.trainer
def test_slow_item_only_costs_its_own_budget():
    math_verify_accuracy(r"\frac12", r"\boxed{0.5}")  # warm up
    num_starts = rewards._WORKER.num_starts
    golds = ["5", r"\frac12", "5", r"\frac13"]
    texts = [SLOW_ANSWER, r"\boxed{0.5}", SLOW_ANSWER, r"\boxed{\frac{2}{6}}"]
    assert batch_math_verify_accuracy(golds, texts, timeout=0.5) == [0.0, 1.0, 0.0, 1.0]
    assert rewards._WORKER.num_starts == num_starts + 2  # one restart after each slow item


# ---------------------------------------------------------------------------------------------------------------------
# Reward functions
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.trainer
def test_accuracy_reward_as_called_by_trl():
    completions = [
        [{"role": "assistant", "content": r"So the answer is $\boxed{\frac{1}{3}}$."}],
        [{"role": "assistant", "content": r"So the answer is $\boxed{\frac{1}{2}}$."}],
        [{"role": "assistant", "content": "I don't know."}],
        [{"role": "assistant", "content": r"\boxed{1}"}],
    ]
    logged = []
    rewards_ = accuracy_reward(
        prompts=[[{"role": "user", "content": "?"}]] * 4,
        completions=completions,
        completion_ids=[[1, 2]] * 4,
        solution=[r"\frac{1}{3}", r"\frac{1}{3}", r"\frac{1}{3}", r"\frac{1}{"],
        problem=["?"] * 4,
        trainer_state=None,
        log_extra=lambda column, values: logged.append(column),
        log_metric=lambda name, value: logged.append(name),
    )
    assert rewards_ == [1.0, 0.0, 0.0, None]


@pytest.mark.trainer
def test_make_accuracy_reward():
    reward = make_accuracy_reward("answer", timeout=2.0)
    assert reward.__name__ == "accuracy"
    completions = [r"\boxed{27}", r"\boxed{26}", [{"role": "assistant", "content": r"\boxed{\frac{54}{2}}"}]]
    assert reward(completions=completions, answer=["27.0"] * 3, solution=["0"] * 3) == [1.0, 0.0, 1.0]
    assert make_accuracy_reward(name="acc").__name__ == "acc"

    restored = pickle.loads(pickle.dumps(reward))  # TRL may send reward functions to a spawned process
    assert restored.__name__ == "accuracy"
    assert restored(completions=[r"\boxed{27}"], answer=[27]) == [1.0]

    with pytest.raises(KeyError, match="answer"):
        reward(completions=[r"\boxed{1}"], solution=["1"])


@pytest.mark.unit
@pytest.mark.parametrize(
    "completion, expected",
    [
        (r"The answer is \boxed{42}.", 1.0),
        (r"\boxed{\frac{1}{2}}", 1.0),
        (r"\fbox{1}", 1.0),
        (r"so \boxed 5", 1.0),
        ([{"role": "assistant", "content": r"\boxed{x^{2}}"}], 1.0),
        ("The answer is 42.", 0.0),
        (r"\boxed{1} or \boxed{2}", 0.0),
        (r"\boxed{\boxed{1}}", 0.0),
        (r"\boxed{}", 0.0),
        (r"\boxed{ }", 0.0),
        (r"\boxed{\frac{1}{", 0.0),
    ],
)
def test_boxed_format_reward(completion, expected):
    assert boxed_format_reward([completion], solution=["1"]) == [expected]


@pytest.mark.unit
def test_soft_overlong_punishment_is_trl_one():
    assert get_soft_overlong_punishment is trl.rewards.get_soft_overlong_punishment
    reward = get_soft_overlong_punishment(max_completion_len=100, soft_punish_cache=20)
    assert reward(completion_ids=[[1] * 80, [1] * 90, [1] * 101]) == [0.0, -0.5, -1.0]


@pytest.mark.trainer
def test_timeouts_are_logged_per_generation_batch(tiny_model_path, tmp_path, monkeypatch):
    """`rewards/math_verify_timeouts`: the answers scored 0.0 for running out of budget in each generation batch (the
    helper's counter before and after TRL scores the batch), in the logs of every trainer."""
    from cpu_config import cpu_config_kwargs
    from datasets import Dataset

    import zvp_trl.core.adapter as adapter
    from zvp_trl import GRPOBaselineConfig, GRPOBaselineTrainer

    readings = iter([0, 0, 5, 7])  # batch 1: none; batch 2: two answers timed out
    monkeypatch.setattr(adapter, "math_verify_timeouts", lambda: next(readings))
    config = GRPOBaselineConfig(
        **cpu_config_kwargs(tmp_path, num_generations=4, max_completion_length=4, per_device_train_batch_size=4),
    )
    config.max_steps = 2
    trainer = GRPOBaselineTrainer(
        model=tiny_model_path,
        reward_funcs=lambda completions, **kwargs: [float(i % 2) for i in range(len(completions))],
        args=config,
        train_dataset=Dataset.from_dict({"prompt": ["Q: 1+1=?\nA:", "Q: 2+1=?\nA:"]}),
    )
    trainer.train()
    logged = [entry["rewards/math_verify_timeouts"] for entry in trainer.state.log_history if "loss" in entry]
    assert logged == [0.0, 2.0]
