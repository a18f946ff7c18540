# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""The math-verify helper process: its main loop (`_worker_main`) and the thread-safe client that starts it, sends it
`(gold_latex, prediction_latex | None)` pairs and kills it when an item exceeds its time budget (`MathVerifyWorker`).

math-verify relies on `signal.alarm()` for its timeouts, which only works in the main thread, and sympy can take
arbitrarily long on adversarial inputs; a separate process that can be killed gives a hard time bound from any thread.

The per-answer budget is **CPU time** of the helper process, not wall-clock time: on a loaded machine (other jobs, a
training step on the same cores) the helper gets fewer cycles per second, and a wall-clock budget would then score a
correct answer 0.0; a CPU-time budget does not depend on load. Two CPU-time limits enforce it: `ITIMER_PROF` interrupts
Python code at the budget (the helper reports the answer as over budget and goes on), and `RLIMIT_CPU` (whole seconds,
rounded up) lets the kernel end the helper when native code (a huge integer power inside sympy) does not return to
Python; the client then counts the answer as over budget and starts a fresh helper. A wall-clock limit stays as a safety
net only, far above the budget (`wall_clock_limit`), for a helper that stops answering without using CPU.

This file is also executed on its own (loaded by path) inside the helper process, so that only math-verify and sympy
get imported there: it must import nothing from the `zvp_trl` package and use no relative imports.
"""

import logging
import os
import subprocess
import sys
import threading
from collections.abc import Sequence
from multiprocessing.connection import Connection


logger = logging.getLogger(__name__)

_WORKER_START_TIMEOUT = 120.0  # importing sympy can be slow on a busy machine; this is not part of the item budget
CPU_TIMEOUT = "cpu-timeout"  # the helper's reply for an answer that used up its CPU-time budget


def wall_clock_limit(cpu_budget: float) -> float:
    """Seconds of wall-clock time the client waits for one answer before it declares the helper stuck and kills it:
    far above the CPU budget (and its whole-second kernel limit), so that no realistic load makes an answer that fits
    its budget reach it."""
    return max(300.0, 60.0 * cpu_budget)


class CPUBudgetExceeded(Exception):
    """Raised inside the helper when the current answer used up its CPU-time budget."""


class cpu_budget:  # noqa: N801 (a context manager used like a function)
    """Raises `CPUBudgetExceeded` in the block once this process has spent `seconds` of CPU time in it (SIGPROF from
    `ITIMER_PROF`, which counts user and system time of the process: time spent waiting for a core does not count).
    Main thread only (signals)."""

    def __init__(self, seconds: float):
        self.seconds = float(seconds)

    def __enter__(self):
        import math
        import resource
        import signal

        def expired(signum, frame):
            raise CPUBudgetExceeded

        self._previous = signal.signal(signal.SIGPROF, expired)
        signal.setitimer(signal.ITIMER_PROF, self.seconds)
        # The kernel's limit, for native code that never returns to Python: SIGXCPU ends the process once its total
        # CPU time reaches the soft limit (whole seconds, at least the budget from now).
        usage = resource.getrusage(resource.RUSAGE_SELF)
        self._limits = resource.getrlimit(resource.RLIMIT_CPU)
        soft = math.ceil(usage.ru_utime + usage.ru_stime + self.seconds)
        if self._limits[1] == resource.RLIM_INFINITY or soft <= self._limits[1]:
            resource.setrlimit(resource.RLIMIT_CPU, (soft, self._limits[1]))
        return self

    def __exit__(self, *exc):
        import resource
        import signal

        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, self._previous)
        resource.setrlimit(resource.RLIMIT_CPU, self._limits)
        return False


# Run by the helper process: loads this file without importing the `zvp_trl` package (or the training script), so
# that only math-verify and sympy get imported there.
_WORKER_BOOTSTRAP = """\
import importlib.util, sys
spec = importlib.util.spec_from_file_location("_zvp_trl_math_verify_worker", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
module._worker_main(int(sys.argv[2]), int(sys.argv[3]))
"""


def _worker_main(read_fd: int, write_fd: int) -> None:
    """Main loop of the helper process: receives `(cpu_budget_seconds, pairs)` with a list of `(gold_latex,
    prediction_latex | None)` pairs and replies with one score per pair as soon as it is computed, or `CPU_TIMEOUT`
    for a pair that used up its CPU-time budget."""
    import functools

    # Budgets are enforced here (CPU time) and, as a safety net, by the parent process; silence math-verify's warnings.
    import resource

    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # SIGXCPU ends the process: no core file
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    from math_verify import parse, verify

    @functools.lru_cache(maxsize=4096)  # each gold answer is shared by a whole group of completions
    def parse_latex(latex: str) -> list:
        return parse(latex, fallback_mode="no_fallback", parsing_timeout=None)

    def score(gold: str, prediction: str | None) -> float | None:
        gold_parsed = parse_latex(gold)
        if not gold_parsed:
            return None
        if prediction is None:
            return 0.0
        prediction_parsed = parse_latex(prediction)
        if not prediction_parsed:
            return 0.0
        return float(verify(gold_parsed, prediction_parsed, timeout_seconds=None))

    requests = Connection(read_fd, writable=False)
    replies = Connection(write_fd, readable=False)
    replies.send("ready")
    while True:
        try:
            budget, batch = requests.recv()
        except EOFError:  # the parent closed the pipe or died
            return
        for gold, prediction in batch:
            try:
                with cpu_budget(budget):
                    result = score(gold, prediction)
            except CPUBudgetExceeded:
                result = CPU_TIMEOUT
            except Exception:  # math-verify catches its own errors; this is a last line of defense
                result = 0.0
            replies.send(result)


class MathVerifyWorker:
    """Thread-safe client of the math-verify helper process, which is started lazily and restarted after a timeout."""

    def __init__(self):
        self._lock = threading.Lock()
        self._process: subprocess.Popen | None = None
        self._requests: Connection | None = None
        self._replies: Connection | None = None
        self._owner_pid = os.getpid()
        self._warned = False
        self.num_starts = 0  # number of helper processes that started and were ready (for tests and debugging)
        self.cpu_timeouts = 0  # answers over their CPU-time budget (scored 0.0)
        self.stuck = 0  # answers the helper never replied to within the wall-clock safety net (scored 0.0)

    @property
    def pid(self) -> int | None:
        """Process id of the running helper process, or `None` if there is none."""
        if self._process is None or self._process.poll() is not None:
            return None
        return self._process.pid

    def _start(self) -> None:
        parent_read, child_write = os.pipe()
        child_read, parent_write = os.pipe()
        bootstrap = [sys.executable, "-c", _WORKER_BOOTSTRAP, os.path.abspath(__file__)]
        command = bootstrap + [str(child_read), str(child_write)]
        try:
            self._process = subprocess.Popen(command, pass_fds=(child_read, child_write), stdin=subprocess.DEVNULL)
        except BaseException:
            os.close(parent_read)
            os.close(parent_write)
            raise
        finally:
            os.close(child_read)
            os.close(child_write)
        self._requests = Connection(parent_write, readable=False)
        self._replies = Connection(parent_read, writable=False)
        self._owner_pid = os.getpid()
        try:
            ready = self._replies.poll(_WORKER_START_TIMEOUT) and self._replies.recv() == "ready"
        except (EOFError, OSError):
            ready = False
        if not ready:
            self._stop()
            raise RuntimeError("The math-verify helper process failed to start (see its error output above).")
        self.num_starts += 1

    def _stop(self) -> None:
        for connection in (self._requests, self._replies):
            if connection is not None:
                connection.close()
        if self._process is not None:
            self._process.kill()
            self._process.wait()
        self._process = self._requests = self._replies = None

    def _after_fork_in_child(self) -> None:
        # The helper process belongs to the parent: forget it without killing it.
        self._lock = threading.Lock()
        self._process = self._requests = self._replies = None
        self._owner_pid = os.getpid()

    def shutdown(self) -> None:
        """Stops the helper process, if any. A later call to `score` starts a new one."""
        with self._lock:
            if self._owner_pid == os.getpid():
                self._stop()

    @property
    def timeouts(self) -> int:
        """Answers scored 0.0 because they ran out of time (CPU budget or the wall-clock safety net), so far."""
        return self.cpu_timeouts + self.stuck

    def score(self, pairs: Sequence[tuple[str, str | None]], timeout: float) -> list[float | None]:
        """Scores `(gold_latex, prediction_latex | None)` pairs, giving each pair `timeout` seconds of CPU time.

        A pair over its CPU budget scores 0.0 and the helper goes on with the next one (`cpu_timeouts`). A helper that
        does not answer within `wall_clock_limit(timeout)` is killed, the pair scores 0.0 (`stuck`) and the remaining
        pairs go to a fresh one. If the helper process dies while it scores a pair (killed from outside, out of
        memory), that pair is scored again on a fresh helper process; only a pair that kills a fresh helper process too
        scores 0.0.
        """
        results: list[float | None] = []
        crashed_on: int | None = None  # index of the pair the helper process last died on
        with self._lock:
            while len(results) < len(pairs):
                if self.pid is None:
                    self._stop()
                    self._start()
                pending = pairs[len(results) :]
                try:
                    self._requests.send((timeout, list(pending)))
                except OSError:  # the helper process died since the last call: restart it once
                    self._stop()
                    self._start()
                    self._requests.send((timeout, list(pending)))
                limit = wall_clock_limit(timeout)
                for _ in pending:
                    try:
                        reply = self._replies.recv() if self._replies.poll(limit) else TimeoutError()
                    except (EOFError, OSError) as error:  # the helper process died (killed, out of memory)
                        reply = CPU_TIMEOUT if self._ended_by_cpu_limit() else error
                        if reply == CPU_TIMEOUT:
                            self._stop()  # the kernel ended it at its CPU-time limit: a fresh one for the rest
                    if reply == CPU_TIMEOUT:
                        self.cpu_timeouts += 1
                        self._warn(reply, timeout)
                        results.append(0.0)
                        if self.pid is None:
                            break  # send the remaining pairs to a fresh helper
                        continue
                    if isinstance(reply, BaseException):
                        self._stop()
                        if isinstance(reply, TimeoutError) or crashed_on == len(results):
                            self.stuck += isinstance(reply, TimeoutError)
                            self._warn(reply, limit)
                            results.append(0.0)
                        else:  # score this pair again on a fresh helper process
                            crashed_on = len(results)
                            logger.warning(
                                "The math-verify helper process died (killed or out of memory); restarting it and "
                                "scoring the answer it was working on again."
                            )
                        break
                    results.append(reply)
        return results

    def _ended_by_cpu_limit(self) -> bool:
        """Whether the helper process ended on SIGXCPU (its CPU-time limit), waiting briefly for its exit status."""
        import signal

        if self._process is None or not hasattr(signal, "SIGXCPU"):
            return False
        try:
            code = self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            return False
        return code == -signal.SIGXCPU

    def _warn(self, error, timeout: float) -> None:
        if error == CPU_TIMEOUT:
            message = f"math-verify used more than {timeout} s of CPU time on one answer, which gets a reward of 0.0."
        else:
            reason = (
                f"did not answer within {timeout} s" if isinstance(error, TimeoutError)
                else "crashed the helper process twice (on a fresh one too)"
            )  # fmt: skip
            message = f"math-verify {reason} on one answer, which gets a reward of 0.0; restarting the helper process."
        if self._warned:
            logger.debug(message)
        else:
            logger.warning(message + " (This warning is only shown once.)")
            self._warned = True
