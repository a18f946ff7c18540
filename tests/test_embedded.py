# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
import dataclasses
import json
import math
import random

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from zvp_trl.data.embedded import (
    VLLM_EMBEDDED_SPEC,
    EmbeddedModelSpec,
    build_embedded_model,
    build_tokenizer,
    generate_problems,
    get_embedded_model_path,
    make_dataset,
    sample_problem,
)
from zvp_trl.data.embedded import model as embedded_model
from zvp_trl.data.embedded.model import (
    BUILD_NUM_THREADS,
    BUILD_VERSION,
    build_platform,
    built_weights_checksum,
    cpu_model,
    shipped_model_path,
    weights_checksum,
)
from zvp_trl.data.embedded.task import ArithmeticProblem, make_split, num_ops_weights
from zvp_trl.data.rewards import accuracy_reward
from zvp_trl.evaluation.accuracy import evaluate_accuracy
from zvp_trl.scripts.build_embedded_model import compare_builds, compare_with_shipped


TINY = EmbeddedModelSpec(hidden_size=16, intermediate_size=32, num_hidden_layers=1, warmup_steps=3, batch_size=4)


@pytest.mark.unit
def test_reference_completion_is_left_to_right_and_boxed():
    problem = ArithmeticProblem(expression="12+7-3+10", answer=26, num_ops=3)
    assert problem.prompt == "Q: 12+7-3+10=?\nA:"
    assert problem.reference_completion == " 12+7=19 19-3=16 16+10=26 \\boxed{26}"


@pytest.mark.unit
def test_slips_forget_a_carry_or_borrow_and_continue_consistently():
    problem = ArithmeticProblem(expression="18+7-9+15+1", answer=32, num_ops=4)
    # 18+7 carries, 25-9 borrows, 16+15 carries, 31+1 needs neither: with slip_rate=1 every carry/borrow is lost.
    assert problem.solution_with_slips(random.Random(0), 1.0) == " 18+7=15 15-9=16 16+15=21 21+1=22 \\boxed{22}"
    assert problem.solution_with_slips(random.Random(0), 0.0) == problem.reference_completion
    # 3-0 needs no borrow; 3+9 carries and loses it.
    small = ArithmeticProblem(expression="3-0+9", answer=12, num_ops=2)
    assert small.solution_with_slips(random.Random(0), 1.0) == " 3-0=3 3+9=2 \\boxed{2}"
    rates = [
        sum(p.solution_with_slips(random.Random(i), 0.3) != p.reference_completion for i in range(400)) / 400
        for p in [ArithmeticProblem(expression="18+7", answer=25, num_ops=1)]
    ]
    assert 0.22 < rates[0] < 0.38  # one carry step: wrong with probability 0.3


@pytest.mark.unit
def test_problems_are_deterministic_non_negative_and_correct():
    first = generate_problems(200, seed=7, max_ops=6)
    assert first == generate_problems(200, seed=7, max_ops=6)
    assert first != generate_problems(200, seed=8, max_ops=6)
    for problem in first:
        assert eval(problem.expression) == problem.answer  # left-to-right +/- is Python's evaluation order
        steps = problem.reference_completion.split()[:-1]
        assert len(steps) == problem.num_ops
        assert all(int(step.split("=")[1]) >= 0 for step in steps)
        assert accuracy_reward([problem.reference_completion], [str(problem.answer)]) == [1.0]


@pytest.mark.unit
def test_difficulty_knob_tilts_chain_lengths():
    assert num_ops_weights(0.5, 4) == pytest.approx([0.25] * 4)
    easy, hard = num_ops_weights(0.0, 4), num_ops_weights(1.0, 4)
    assert easy[0] > easy[-1] and hard[-1] > hard[0]
    assert sum(easy) == pytest.approx(1.0)
    mean_easy = sum(p.num_ops for p in generate_problems(500, 0, difficulty=0.1, max_ops=5)) / 500
    mean_hard = sum(p.num_ops for p in generate_problems(500, 0, difficulty=0.9, max_ops=5)) / 500
    assert mean_easy < 2.5 < mean_hard
    with pytest.raises(ValueError, match="difficulty"):
        num_ops_weights(1.5, 4)
    with pytest.raises(ValueError, match="num_ops"):
        sample_problem(random.Random(0), 0)


@pytest.mark.unit
def test_dataset_columns():
    dataset = make_dataset(10, seed=3)
    assert dataset.column_names == ["prompt", "solution", "num_ops"]
    assert dataset[0]["prompt"].startswith("Q: ") and dataset[0]["prompt"].endswith("=?\nA:")
    assert int(dataset[0]["solution"]) == eval(dataset[0]["prompt"][3:-5])


@pytest.mark.unit
def test_default_splits_are_fixed_and_disjoint_streams():
    from zvp_trl.data.embedded import make_split

    train, heldout = make_split("train"), make_split("heldout")
    assert (len(train), len(heldout)) == (2048, 256)
    assert train["prompt"] == make_dataset(2048, seed=1, difficulty=0.4, max_ops=9)["prompt"]
    assert heldout["prompt"] == make_dataset(256, seed=2, difficulty=0.4, max_ops=9)["prompt"]
    assert max(heldout["num_ops"]) == 9
    with pytest.raises(ValueError, match="split"):
        make_split("validation")


@pytest.mark.unit
def test_min_ops_keeps_only_long_chains_and_leaves_the_default_stream_alone():
    from zvp_trl.data.embedded import make_split

    assert make_split("train", 300, min_ops=1)["prompt"] == make_split("train", 300)["prompt"]
    only_ten = make_split("train", 200, max_ops=10, min_ops=10)
    assert set(only_ten["num_ops"]) == {10}
    assert all(p.count("+") + p.count("-") == 10 for p in only_ten["prompt"])
    # restricted weights keep their ratios: with difficulty 1 (ratio 4 per operation) 9 is a quarter as likely as 10
    lengths = [p.num_ops for p in generate_problems(4000, seed=3, difficulty=1.0, max_ops=10, min_ops=9)]
    assert set(lengths) == {9, 10} and 0.15 < lengths.count(9) / len(lengths) < 0.25
    assert make_split("train", 300, max_operand=20)["prompt"] == make_split("train", 300)["prompt"]
    with pytest.raises(ValueError, match="max_operand must be >= 1"):
        make_split("train", 3, max_operand=0)
    for bad in (0, 11):
        with pytest.raises(ValueError, match="min_ops must be in"):
            generate_problems(5, seed=0, max_ops=10, min_ops=bad)


@pytest.mark.unit
def test_tokenizer_round_trip_and_special_tokens():
    tokenizer = build_tokenizer()
    for problem in generate_problems(50, seed=1, max_ops=9):
        text = problem.prompt + problem.reference_completion
        ids = tokenizer(text)["input_ids"]
        assert tokenizer.decode(ids) == text
        assert len(ids) == len(text) - len("\\boxed{") + 1  # one token per character, \boxed{ is one token
    assert tokenizer.convert_ids_to_tokens(tokenizer("\\boxed{")["input_ids"]) == ["\\boxed{"]
    assert tokenizer.eos_token_id == 1 and tokenizer.pad_token_id == 0
    ids = tokenizer("Q: 1+1=?")["input_ids"] + [tokenizer.eos_token_id, tokenizer.pad_token_id]
    assert tokenizer.decode(ids, skip_special_tokens=True) == "Q: 1+1=?"


@pytest.mark.trainer
def test_build_is_deterministic_and_saves_model_and_tokenizer(tmp_path):
    info_a = build_embedded_model(TINY, tmp_path / "a")
    build_embedded_model(TINY, tmp_path / "b")
    model_a = AutoModelForCausalLM.from_pretrained(tmp_path / "a")
    model_b = AutoModelForCausalLM.from_pretrained(tmp_path / "b")
    assert model_a.config.model_type == "qwen3"
    for (name, p_a), p_b in zip(model_a.named_parameters(), model_b.parameters()):
        assert torch.equal(p_a, p_b), name
    assert info_a["num_parameters"] == sum(p.numel() for p in model_a.parameters())
    assert len(info_a["warm_start_losses"]) == 3
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "a")
    assert tokenizer.decode(tokenizer("Q: 3-1=?")["input_ids"]) == "Q: 3-1=?"


@pytest.mark.trainer
def test_build_does_not_depend_on_the_callers_thread_count(tmp_path):
    # The warm start's float sums depend on how the CPU kernels split work between threads, and the model that comes
    # out of 800 steps depends on those last bits. A build started under `accelerate launch` (one thread) or on a
    # 16-core machine must give the same weights as one started on 2 cores.
    spec = EmbeddedModelSpec(warmup_steps=4)  # the default's sizes: kernels large enough to be split between threads
    threads = torch.get_num_threads()
    infos = {}
    try:
        for count in (1, 3):
            torch.set_num_threads(count)
            infos[count] = build_embedded_model(spec, tmp_path / str(count))
            assert torch.get_num_threads() == count  # the caller's setting is given back
    finally:
        torch.set_num_threads(threads)
    assert infos[1]["weights_sha256"] == infos[3]["weights_sha256"]
    assert infos[1]["warm_start_losses"] == infos[3]["warm_start_losses"]
    info = json.loads((tmp_path / "1" / "build_info.json").read_text())
    assert info["num_threads"] == BUILD_NUM_THREADS and info["torch_version"] == torch.__version__
    assert info["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert info["cpu_model"] == cpu_model()
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "1")
    assert weights_checksum(model.state_dict()) == info["weights_sha256"]  # the recorded checksum is the saved model's
    assert built_weights_checksum(tmp_path / "1") == info["weights_sha256"]
    assert built_weights_checksum(tmp_path) is None  # not a model the package built


@pytest.mark.trainer
def test_cache_is_keyed_by_spec_and_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("ZVP_TRL_CACHE", str(tmp_path))
    path = get_embedded_model_path(TINY)
    assert path.parent == tmp_path / "embedded" and path.name == TINY.cache_key()
    info = json.loads((path / "build_info.json").read_text())
    assert info["spec"]["warmup_steps"] == 3
    stamp = (path / "build_info.json").stat().st_mtime_ns
    assert get_embedded_model_path(TINY) == path  # reused, not rebuilt
    assert (path / "build_info.json").stat().st_mtime_ns == stamp
    other = EmbeddedModelSpec(**{**TINY.__dict__, "seed": 1})
    assert other.cache_key() != TINY.cache_key()
    assert not list(tmp_path.glob("embedded/.*tmp*"))  # no half-written build left behind


# ----- the shipped builds of the default models


SHIPPED_SPECS = [EmbeddedModelSpec(), VLLM_EMBEDDED_SPEC]


@pytest.mark.trainer
@pytest.mark.parametrize("spec", SHIPPED_SPECS, ids=["default", "vllm"])
def test_the_default_models_ship_and_are_copied_into_the_cache_without_a_build(spec, tmp_path, monkeypatch):
    shipped = shipped_model_path(spec)
    assert shipped is not None, f"no shipped copy of {spec}"
    info = json.loads((shipped / "build_info.json").read_text())
    assert info["spec"] == dataclasses.asdict(spec) and info["build_version"] == BUILD_VERSION
    assert weights_checksum(AutoModelForCausalLM.from_pretrained(shipped).state_dict()) == info["weights_sha256"]
    monkeypatch.setenv("ZVP_TRL_CACHE", str(tmp_path))

    def no_build(*args, **kwargs):
        raise AssertionError("the shipped model was built again")

    monkeypatch.setattr(embedded_model, "build_embedded_model", no_build)
    path = get_embedded_model_path(spec)
    assert path == tmp_path / "embedded" / spec.cache_key()
    assert built_weights_checksum(path) == info["weights_sha256"]
    model = AutoModelForCausalLM.from_pretrained(path)
    assert weights_checksum(model.state_dict()) == info["weights_sha256"]
    assert AutoTokenizer.from_pretrained(path).get_vocab() == build_tokenizer().get_vocab()


@pytest.mark.trainer
def test_a_damaged_shipped_copy_is_refused(tmp_path, monkeypatch):
    import shutil

    shipped = tmp_path / "shipped"
    shutil.copytree(shipped_model_path(EmbeddedModelSpec()).parent, shipped)
    weights = shipped / EmbeddedModelSpec().cache_key() / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # one bit pattern of the last weight
    weights.write_bytes(bytes(data))
    monkeypatch.setattr(embedded_model, "SHIPPED_DIR", shipped)
    monkeypatch.setenv("ZVP_TRL_CACHE", str(tmp_path / "cache"))
    with pytest.raises(RuntimeError, match="does not match its recorded checksum.*Reinstall zvp_trl"):
        get_embedded_model_path()
    assert not (tmp_path / "cache" / "embedded" / EmbeddedModelSpec().cache_key()).exists()


@pytest.mark.slow
@pytest.mark.trainer
def test_a_build_from_nothing_reproduces_the_shipped_default_model(tmp_path):
    """The shipped weights are the build's own, not a model from elsewhere: building the default spec from nothing here
    gives them bit for bit on the torch version, instruction set and CPU they were built on; on another CPU (the
    kernels' last bits differ) the same warm start, checked by its loss curve, and a model that solves the held-out
    prompts as well as the shipped one (about 4 minutes)."""
    shipped = shipped_model_path(EmbeddedModelSpec())
    reference = json.loads((shipped / "build_info.json").read_text())
    info = build_embedded_model(EmbeddedModelSpec(), tmp_path)
    result = compare_builds(info, reference)
    if result["identical"]:
        assert compare_with_shipped(EmbeddedModelSpec(), info).startswith("identical to the shipped copy")
        return
    assert not result["same_platform"], "same torch, instruction set and CPU, other weights: the build has changed"
    assert result["same_kind"], result
    assert "a model of the same kind" in compare_with_shipped(EmbeddedModelSpec(), info)
    heldout = make_split("heldout")
    scores = {}
    for name, path in (("built", tmp_path), ("shipped", shipped)):
        model, tokenizer = AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)
        prompts, solutions = list(heldout["prompt"]), list(heldout["solution"])
        scores[name] = evaluate_accuracy(
            model, tokenizer, prompts, solutions, accuracy_reward, k=8, temperature=1.0, max_new_tokens=96, seed=0
        )["acc@8"]
    # A build gone wrong solves next to nothing; one of the same kind is within a few points of the shipped model.
    assert scores["shipped"] > 0.4 and abs(scores["built"] - scores["shipped"]) < 0.1, scores


@pytest.mark.unit
def test_compare_builds_by_hand():
    losses = [4.0, 2.0, 1.0, 0.5]
    reference = {"warm_start_losses": losses, "final_warm_start_loss": 0.5, "weights_sha256": "a"}
    reference |= {"torch_version": "2.13.0+cpu", "cpu_capability": "AVX512", "cpu_model": "GenuineIntel X"}
    same = compare_builds(dict(reference), reference)
    assert same["identical"] and same["same_platform"] and same["same_kind"] and same["curve_mean_abs_log_ratio"] == 0
    other_cpu = {**reference, "weights_sha256": "b", "cpu_model": "AuthenticAMD Y"}
    # losses 4, 2, 1.1, 0.55 and final 0.55: |log| ratios 0, 0, log 1.1, log 1.1 -> mean log(1.1) / 2
    other_cpu |= {"warm_start_losses": [4.0, 2.0, 1.1, 0.55], "final_warm_start_loss": 0.55}
    result = compare_builds(other_cpu, reference)
    assert not result["identical"] and not result["same_platform"] and result["same_kind"]
    assert result["curve_mean_abs_log_ratio"] == pytest.approx(math.log(1.1) / 2)
    assert result["final_loss_ratio"] == pytest.approx(1.1)
    assert not compare_builds({**other_cpu, "warm_start_losses": [4.001, 2.0, 1.1, 0.55]}, reference)["same_kind"]
    assert not compare_builds({**other_cpu, "final_warm_start_loss": 1.2}, reference)["same_kind"]
    # a reference that never recorded its CPU is never "the same platform"
    unrecorded = {k: v for k, v in reference.items() if k != "cpu_model"}
    assert not compare_builds({**reference, "weights_sha256": "b"}, unrecorded)["same_platform"]
    with pytest.raises(ValueError, match="not the same spec"):
        compare_builds({**reference, "warm_start_losses": losses[:2]}, reference)


@pytest.mark.unit
def test_the_build_records_the_cpu_it_ran_on():
    assert cpu_model() and cpu_model() != "unknown"
    assert build_platform() == {
        "torch_version": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_model": cpu_model(),
    }
