# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
import os

import pytest


os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory):
    """A tiny Qwen3 model + tokenizer of the embedded task (3 warm-start steps), built once per session."""
    from zvp_trl.embedded import EmbeddedModelSpec, build_embedded_model

    path = tmp_path_factory.mktemp("tiny_model")
    spec = EmbeddedModelSpec(hidden_size=16, intermediate_size=32, num_hidden_layers=1, warmup_steps=3, batch_size=4)
    build_embedded_model(spec, path)
    return str(path)
