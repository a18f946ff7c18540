# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""Usage errors on the command line: a bad argument, value, data set column or reward function found while a script
sets up prints one line saying what is wrong and how to fix it, and exits with status 2 (as command-line tools do).
A failure after set-up (in training, probing or evaluating) keeps its traceback; so does any error with
`ZVP_TRL_TRACEBACK=1` in the environment."""

import contextlib
import os
import sys


# What set-up raises for input that is wrong: config validation and unknown names (ValueError), missing data set
# columns (KeyError, ValueError), a reward function or module that cannot be imported (ImportError, AttributeError),
# a missing file (FileNotFoundError).
USAGE_ERRORS = (ValueError, KeyError, ImportError, AttributeError, FileNotFoundError)


class SetupPhase:
    """Whether the running script is still setting up (its failures are usage errors) or has started its work."""

    def __init__(self):
        self.running = False

    def done(self) -> None:
        self.running = True

    def reset(self) -> None:
        self.running = False


SETUP = SetupPhase()


def one_line(error: BaseException) -> str:
    message = error.args[0] if isinstance(error, KeyError) and error.args else str(error)
    text = " ".join(str(message).split())
    return f"{type(error).__name__}: {text}" if isinstance(error, (ImportError, AttributeError)) else text


@contextlib.contextmanager
def usage_errors(program: str):
    """Runs a script's `main`: a `USAGE_ERRORS` exception raised before `SETUP.done()` becomes `program: error: ...`
    on stderr and exit status 2."""
    SETUP.reset()
    try:
        yield
    except USAGE_ERRORS as error:
        if SETUP.running or os.environ.get("ZVP_TRL_TRACEBACK") == "1":
            raise
        print(f"{program}: error: {one_line(error)} (ZVP_TRL_TRACEBACK=1 shows the traceback)", file=sys.stderr)
        sys.stderr.flush()
        raise SystemExit(2) from None
