# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""The on-disk cache of things the package builds once (the embedded model, the offline SmolLM2 checkpoint)."""

import os
import shutil
from collections.abc import Callable
from pathlib import Path


CACHE_ENV_VAR = "ZVP_TRL_CACHE"


def cache_root() -> Path:
    """`$ZVP_TRL_CACHE`, default `~/.cache/zvp_trl`."""
    return Path(os.environ.get(CACHE_ENV_VAR, Path.home() / ".cache" / "zvp_trl")).expanduser()


def build_once(path: Path, marker: str, build: Callable[[Path], dict]) -> dict | None:
    """Builds the cache entry `path` once: `build(tmp_dir)` writes into a temporary sibling folder (which must end up
    holding the file `marker`), which is then renamed into place, so an interrupted build never leaves a half-written
    entry. Returns `build`'s result, or `None` when the entry already existed (or another process finished the same
    build first)."""
    if (path / marker).is_file():
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        info = build(tmp)
        try:
            tmp.rename(path)
        except OSError:  # another process finished the same build first
            if not (path / marker).is_file():
                raise
            return None
        return info
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
