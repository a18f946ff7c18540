# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""Every number a page quotes from a results file is read from that file: each results table of benchmarks/README.md
against the JSON its script wrote (cell by cell, at the table's precision), and the results other pages quote."""

import json
import re
import statistics
from pathlib import Path

import pytest


pytestmark = pytest.mark.unit


REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks"
PAGE = (BENCH / "README.md").read_text()
NUMBER = re.compile(r"(?<![\w.@])[-+]?\d[\d,]*(?:\.\d+)?%?(?![\w@])")


def _json(name: str):
    return json.loads((BENCH / name).read_text())


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip()[1:-1])]


def _table(anchor: str, text: str = PAGE) -> dict[str, list[str]]:
    """The first markdown table after `anchor` in `text`, as {first cell: the row's cells}."""
    assert anchor in text, f"not on the page: {anchor!r}"
    start = text.rfind("\n", 0, text.index(anchor)) + 1  # the anchor's line: a table's header may be the anchor
    block = re.search(r"((?:^\|.*\|[ \t]*\n)+)", text[start:], flags=re.MULTILINE).group(1)
    rows = [_cells(line) for line in block.strip().splitlines()[2:]]
    return {row[0].strip("*`"): row for row in rows}


def _row(table: dict[str, list[str]], start: str) -> list[str]:
    (row,) = [cells for key, cells in table.items() if key.replace("`", "").startswith(start.replace("`", ""))]
    return row


def _numbers(text: str) -> list[str]:
    """The numbers written in `text`, outside parentheses (a remark), as written."""
    return NUMBER.findall(re.sub(r"(\d)[MGKx]\b", r"\1", re.sub(r"\([^)]*\)", "", text)))  # 32.8M, 1.09x


def _agrees(written: str, value: float) -> bool:
    """`written` is `value` at the precision it is written with (`0.516`, `+0.009`, `1,531`, `15.0%`)."""
    text = written.replace(",", "").rstrip("%")
    decimals = len(text.split(".", 1)[1]) if "." in text else 0
    scale = 100.0 if written.endswith("%") else 1.0
    return abs(float(text) - scale * value) <= 0.5 * 10**-decimals + 1e-9


def _check(cell: str, *values: float) -> None:
    written = _numbers(cell)
    assert len(written) == len(values), f"{cell!r}: {len(written)} numbers, the file gives {len(values)}"
    for number, value in zip(written, values):
        assert _agrees(number, value), f"{cell!r}: {number} is not {value} from the results file"


def _within(cell: str, source: str) -> None:
    """The numbers of a cell are among those of the script's own rendering of the cell, in order."""
    rest = iter(_numbers(source))
    assert all(number in rest for number in _numbers(cell)), f"{cell!r} is not in the file's {source!r}"


def _folded(text: str) -> str:
    return " ".join(text.split())


def _paragraph(anchor: str, page: str = PAGE) -> str:
    """The text from `anchor` to the end of its paragraph, its whitespace folded to single spaces."""
    assert anchor in page, f"not on the page: {anchor!r}"
    return _folded(page.split(anchor, 1)[1].split("\n\n", 1)[0])


def _quoted(pattern: str, text: str, expected: list[float]) -> None:
    """`text` says what `pattern`'s groups capture, and each is the expected value at the precision written."""
    match = re.search(pattern, text)
    assert match, f"not quoted as expected: {pattern!r}"
    written = match.groups()
    assert len(written) == len(expected) and all(map(_agrees, written, expected)), (written, expected)


def test_number_reading_by_hand():
    assert _numbers("0.243 -> 0.502 (at T up to 1.4)") == ["0.243", "0.502"]
    assert _numbers("+0.009 [-0.052, +0.071]") == ["+0.009", "-0.052", "+0.071"]
    assert _numbers("harder Acc@8 0.558 ± 0.011") == ["0.558", "0.011"]
    assert _numbers("32.8M, 1.09x, 10000x2048") == ["32.8", "1.09"] and _numbers("33% -> 37%") == ["33%", "37%"]
    assert _agrees("0.516", 0.51611328125) and not _agrees("0.517", 0.51611328125)
    assert _agrees("15.0%", 0.150390625) and _agrees("1,531", 1531.2) and not _agrees("157", 0.0)
    table = _table("x", "x\n\n| a | b |\n|---|---|\n| `grpo` | 1 \\| 2 |\n\n| c |\n")
    assert table == {"grpo": ["`grpo`", "1 \\| 2"]}
    _quoted(r"rose to ([\d.]+) from ([\d.]+)", "It rose to 0.52 from 0.3 here.", [0.516, 0.3])
    for wrong in ([0.514, 0.3], [0.516]):
        with pytest.raises(AssertionError):
            _quoted(r"rose to ([\d.]+) from ([\d.]+)", "It rose to 0.52 from 0.3 here.", wrong)
    with pytest.raises(AssertionError, match="not quoted"):
        _quoted(r"fell to ([\d.]+)", "It rose to 0.52.", [0.52])
    assert _paragraph("b", "a b  c\nd\n\ne") == "c d"


def test_learning_table_is_learning_json():
    data = _json("learning.json")
    table = _table("| method | Acc@8 | Pass@8 | Acc@8 per seed")
    # One machine per table: the file holds the table's rows, all of one day on one kind of CPU.
    assert set(table) == set(data["table"]) == set(data["runs"])
    assert {result["date"] for result in data["table"].values()} == {"2026-11-27"}
    assert "Intel, AVX-512" in data["machine_kind"]
    assert "Intel with AVX-512" in PAGE.split("| method | Acc@8 | Pass@8 | Acc@8 per seed")[0].rsplit("\n\n", 2)[-2]
    for method, row in table.items():
        result = data["table"][method]
        _check(row[1], *result["acc_at_8"])
        _check(row[2], *result["pass_at_8"])
        _check(row[3], *(run["heldout_after"]["acc@8"] for run in data["runs"][method]))
        _check(row[4], result["grad_steps"][0])
        _check(row[5], result["rollouts_per_step"][0])
        _check(row[6], result["frac_with_signal"][0])
        _check(row[7], result["frac_zero_variance"][0])
    first = data["runs"]["grpo"][0]["heldout_before"]
    _check("base model 0.447 / 0.793", first["acc@8"], first["pass@8"])
    # What the text says of the three methods of the fidelity table, measured on another kind of CPU.
    others = _json("learning_fidelity_after.json")
    means = [result["acc_at_8"][0] for result in others["table"].values()]
    steps = [run["global_steps"] for method in ("grpo_ds", "greso") for run in others["runs"][method]]
    grpo = data["table"]["grpo"]["acc_at_8"]
    spreads = [result["acc_at_8"][1] for result in others["table"].values()]
    ratio = max((grpo[0] - result["acc_at_8"][0]) / result["acc_at_8"][1] for result in others["table"].values())
    expected = [min(means), max(means), min(steps), max(steps), grpo[0], grpo[0] - max(means), grpo[0] - min(means)]
    expected += [ratio, min(spreads), max(spreads)]
    _quoted(r"end at ([\d.]+)-([\d.]+); GRPO-DS and GRESO spend the budget on fewer optimizer steps \((\d+)-(\d+) instead "
            r"of 80\)\. Compared with GRPO's ([\d.]+) here they are ([\d.]+)-([\d.]+) lower, at most ([\d.]+) times their "
            r"own seed-to-seed standard deviation \(([\d.]+)-([\d.]+)\)",
            _folded(PAGE.split("The three other methods, measured on the other kind of CPU", 1)[1]), expected)  # fmt: skip
    assert (
        f"Budget {data['rollout_budget']} completions" in PAGE and f"held-out {data['eval_prompts']} prompts" in PAGE
    )


def test_the_fidelity_table_is_its_two_files():
    before, after = _json("learning_fidelity_before.json"), _json("learning_fidelity_after.json")
    table = _table("| method | before, seed 42")
    assert set(table) == set(after["table"]) == set(before["table"])
    for method, row in table.items():
        old, new = before["table"][method], after["table"][method]
        _check(row[1], old["acc_at_8"][0], old["pass_at_8"][0], old["grad_steps"][0])
        seed_42 = after["runs"][method][0]
        _check(row[2], seed_42["heldout_after"]["acc@8"], seed_42["heldout_after"]["pass@8"], seed_42["global_steps"])
        _check(row[3], *new["acc_at_8"])
        _check(row[4], *new["pass_at_8"])
        _check(row[5], new["frac_with_signal"][0])
        _check(row[6], new["frac_zero_variance"][0])
    # The same runs made on 2026-11-26 on a machine of unrecorded kind: which came out the same to the bit, as the page
    # says, and the values it quotes for those that parted.
    runs = {}
    for when, old_file, new_runs in (
        ("before", "learning_fidelity_before_2026-11-26.json", before["runs"]),
        ("after", "learning_fidelity_after_2026-11-26.json", after["runs"]),
    ):
        for method, old_runs in _json(old_file)["runs"].items():
            for seed, old_run, new_run in zip((42, 43, 44), old_runs, new_runs[method]):
                fields = ("curve", "heldout_after", "global_steps", "rollouts")
                same = all(old_run[field] == new_run[field] for field in fields)
                runs[(method, when, seed)] = (
                    same,
                    old_run["heldout_after"]["acc@8"],
                    new_run["heldout_after"]["acc@8"],
                )
    paragraph = _paragraph("The same runs were first made on 2026-11-26")
    same = sorted(key for key, (identical, _, _) in runs.items() if identical)
    assert len(runs) == 12 and f"{len(same)} of the 12 runs came out the same to the bit" in paragraph, same
    parted = {key: values for key, (identical, *values) in runs.items() if not identical}
    assert set(parted) == {
        ("grpo_ds", "after", 43),
        ("exgrpo", "after", 43),
        ("exgrpo", "after", 44),
        ("exgrpo", "before", 42),
    }
    expected = [*parted[("grpo_ds", "after", 43)], parted[("exgrpo", "after", 43)][0]]
    expected += [parted[("exgrpo", "after", 44)][0], parted[("exgrpo", "before", 42)][0]]
    _quoted(r"GRPO-DS after at seed 43 \(([\d.]+) there, ([\d.]+) here\), ExGRPO after at seeds 43 and 44 \(([\d.]+) and "
            r"([\d.]+) there\) and ExGRPO before \(([\d.]+) there\)", paragraph, expected)  # fmt: skip
    # Both files from one machine, the one the section names.
    section = PAGE.split("### Faithful to the official code", 1)[1].split("\n| method |", 1)[0]
    assert before["machine"] == after["machine"] and after["machine"]["kind"] == "AMD EPYC, AVX-512, 2 cores"
    assert before["code"] == "deab865" and "`deab865`" in section
    assert f"`learning.py`, {after['date']}, 2-core AMD EPYC with AVX-512" in section
    # What the text under the table says.
    greso = [run["heldout_after"]["acc@8"] for run in after["runs"]["greso"]]
    exgrpo_before, exgrpo_after = before["runs"]["exgrpo"][0], after["runs"]["exgrpo"][0]
    expected = [greso[0] - before["runs"]["greso"][0]["heldout_after"]["acc@8"], min(greso), max(greso)]
    expected += [exgrpo_after["heldout_after"]["acc@8"], exgrpo_before["heldout_after"]["acc@8"]]
    expected += [100 * after["table"]["exgrpo"]["frac_with_signal"][0]]
    _quoted(r"moved by ([+-][\d.]+), inside the spread of its three seeds \(([\d.]+)-([\d.]+)\).*?where it was \(([\d.]+) "
            r"vs ([\d.]+) at seed 42\) and keeps a signal in (\d+)% of", _paragraph("which is the control. GRESO's"),
            expected)  # fmt: skip
    grpo_ds_before, grpo_ds_after = before["runs"]["grpo_ds"][0], after["runs"]["grpo_ds"][0]
    assert all(
        grpo_ds_before[key] == grpo_ds_after[key] for key in ("curve", "heldout_after", "global_steps", "rollouts")
    )


def test_the_earlier_build_numbers_are_its_file():
    data = _json("learning_earlier_build.json")
    paragraph = PAGE.split("**An earlier build**", 1)[1].split("\n\n", 1)[0]
    base = data["runs"]["grpo"][0]["heldout_before"]
    _check(re.search(r"started at [\d.]+ / [\d.]+", paragraph).group(0), base["acc@8"], base["pass@8"])
    _check(re.search(r"RL-ZVP highest \([^)]*\)", paragraph).group(0).replace("(", "").replace(")", ""),
           *data["table"]["rl_zvp"]["acc_at_8"], *data["table"]["grpo"]["acc_at_8"])  # fmt: skip


def _evidence_runs(name: str) -> dict[str, list[dict]]:
    runs: dict[str, list[dict]] = {}
    for run in sorted(_json(name)["runs"], key=lambda run: run["seed"]):
        runs.setdefault(run["method"], []).append(run)
    return runs


def _script_rows(name: str) -> dict[str, list[str]]:
    """{first cell: cells} of the markdown table a script rendered into its JSON (`table`: header, rule, rows)."""
    return _rendered_rows(_json(name)["table"])


def _rendered_rows(table: list[str]) -> dict[str, list[str]]:
    return {cells[0]: cells for cells in map(_cells, (line for line in table[2:] if line.startswith("|")))}


def test_the_cold_start_table_is_cold_start_json():
    rows, runs = _script_rows("cold_start.json"), _evidence_runs("cold_start.json")
    table = _table("| method | seeds | held-out Acc@8 before -> after | Pass@8 after | optimizer steps")
    assert set(table) == set(rows)
    for method, row in table.items():
        for column in (1, 2, 3, 4, 6, 7, 8, 9):
            _within(row[column], rows[method][column])
        _check(row[5], *(run["groups_with_signal"] for run in runs[method]))
        firsts = [str(run["first_step_with_mixed_group"] or "-") for run in runs[method]]
        assert row[6].split(", ") == firsts, method


def test_the_saturation_table_is_saturation_json():
    rows = _script_rows("saturation.json")
    table = _table("| method | seeds | held-out Acc@8 (1 op) before -> after")
    assert set(table) == set(rows)
    for method, row in table.items():
        for column, source in ((1, 1), (2, 2), (3, 3), (4, 10), (5, 5), (6, 8), (7, 9)):
            _within(row[column], rows[method][source])


DOSE_SETTINGS = {"grpo": "grpo", "alpha 0": "rl_zvp_alpha0.0", "alpha 0.1 (default)": "rl_zvp_alpha0.1"}


def test_the_dose_response_table_is_dose_response_json():
    rows, runs = _script_rows("dose_response.json"), _evidence_runs("dose_response.json")
    table = _table("| setting | seeds | held-out Acc@8 after")
    for setting, row in table.items():
        name = DOSE_SETTINGS.get(setting) or "rl_zvp_" + setting.replace(", target ", "").replace(" ", "")
        for column, source in ((1, 1), (2, 2), (3, 3), (6, 8), (7, 9)):
            _within(row[column], rows[name][source])
        if name == "grpo":
            assert row[4] == row[5] == "-"
            continue
        _check(row[4], statistics.mean(run["alpha_mean"] for run in runs[name]))
        _check(row[5], statistics.mean(run["adv_abs_ratio_mean"] for run in runs[name]))
    assert len(table) == len(rows)
    seed_44 = next(run for run in runs["rl_zvp_alpha0.1"] if run["seed"] == 44)
    _check(PAGE.split("\\* Seed 44 ended at", 1)[1].split()[0], seed_44["acc@8_after"])


@pytest.mark.parametrize("name", ["cold_start", "saturation", "dose_response"])
def test_the_paired_differences_quoted_are_the_files(name):
    """`rl_zvp Acc@8 +0.004 [-0.009, +0.016]`-style statements of each evidence section, from `paired_vs_grpo`."""
    paired = _json(f"{name}.json")["paired_vs_grpo"]
    heading = {"cold_start": "### Results 1", "saturation": "### Results 2", "dose_response": "### Results 3"}[name]
    section = PAGE.split(heading, 1)[1].split("\n### ", 1)[0].split("\n## ", 1)[0]
    paragraph = _paragraph("Paired differences to GRPO", section)
    quoted = re.findall(r"([+-]\d\.\d{3}) \[([+-]\d\.\d{3}), ([+-]\d\.\d{3})\]", paragraph)
    assert len(quoted) >= 3
    candidates = [(result["mean"], *result["ci95"]) for method in paired.values() for result in method.values()]
    for triple in quoted:
        assert any(all(_agrees(w, v) for w, v in zip(triple, values)) for values in candidates), triple


def test_the_real_model_tables_are_its_files():
    folder = BENCH / "real_model"
    summary = json.loads((folder / "real_model_summary.json").read_text())
    rendered = _rendered_rows(summary["table"])
    header = _cells(summary["table"][0])
    table = _table("| metric | base | GRPO (mean ± sd, n)")
    names = {"held-out Acc@8 (primary)": "held-out Acc@8"}
    keys = ["heldout/acc@8", "heldout/pass@8", "heldout/never_solved", "ood/acc@8", "ood/pass@8", "ood/never_solved"]
    assert len(table) == len(keys)
    for (metric, row), key in zip(table.items(), keys):
        source = rendered[names.get(metric, metric)]
        _within(row[1], source[1])
        _within(row[2], source[header.index("grpo (mean ± sd, n)")])
        _within(row[3], source[header.index("rl_zvp (mean ± sd, n)")])
        difference = summary["paired_vs_grpo"]["rl_zvp"][key]
        _check(row[4], difference["mean"], *difference["ci95"])
    runs = {p.stem: json.loads(p.read_text()) for p in (folder / "runs").glob("*.json")}
    per_seed = _table("| seed | GRPO held-out Acc@8 / Pass@8")
    assert sorted(per_seed) == [str(seed) for seed in range(42, 48)]
    for seed, row in per_seed.items():
        grpo, zvp = runs[f"grpo_seed{seed}"]["eval"], runs[f"rl_zvp_seed{seed}"]["eval"]
        _check(row[1], grpo["heldout"]["acc@8"], grpo["heldout"]["pass@8"])
        _check(row[2], zvp["heldout"]["acc@8"], zvp["heldout"]["pass@8"])
        _check(row[3], grpo["ood"]["acc@8"], grpo["ood"]["pass@8"])
        _check(row[4], zvp["ood"]["acc@8"], zvp["ood"]["pass@8"])
        last = [
            statistics.mean(step["entropy"] for step in runs[f"{name}_seed{seed}"]["steps"][-3:])
            for name in ("grpo", "rl_zvp")
        ]
        _check(row[5], *last)
    # The text around the tables: the level probe, the base model, the zero-variance share, the runs' times, the
    # interval's width and the entropy of the last steps.
    section = _folded(PAGE.split("## Real-model evidence", 1)[1].split("## Evidence where the methods differ", 1)[0])
    level, base = (
        json.loads((folder / "level.json").read_text()),
        json.loads((folder / "base.json").read_text())["eval"],
    )
    main = [runs[f"{name}_seed{seed}"] for name in ("grpo", "rl_zvp") for seed in range(42, 48)]
    minutes = [
        (run["train_seconds_with_start_up"] + run["eval"]["heldout"]["seconds"] + run["eval"]["ood"]["seconds"]) / 60
        for run in main
    ]
    entropy = {
        name: [
            statistics.mean(step["entropy"] for step in runs[f"{name}_seed{seed}"]["steps"][-3:])
            for seed in range(42, 48)
        ]
        for name in ("grpo", "rl_zvp")
    }
    interval = summary["paired_vs_grpo"]["rl_zvp"]["heldout/acc@8"]["ci95"]
    patterns_and_values = [
        (r"at one operation was ([\d.]+) \((\d+)% all correct, (\d+)% all wrong\)",
         [level["zero_variance_share"], 100 * level["probe_level_1"]["frac_all_correct"], 100 * level["probe_level_1"]["frac_all_wrong"]]),
        (r"the base model scores held-out Acc@8 ([\d.]+), Pass@8 ([\d.]+), (\d+)% of the prompts never solved",
         [base["heldout"]["acc@8"], base["heldout"]["pass@8"], 100 * base["heldout"]["never_solved"]]),
        (r"during training, (\d+)% of the groups had zero variance on average",
         [100 * statistics.mean(step["frac_reward_zero_std"] for run in main for step in run["steps"])]),
        (r"A run took ([\d.]+) to ([\d.]+) minutes", [min(minutes), max(minutes)]),
        (r"The interval on held-out Acc@8 is ±([\d.]+) wide",
         [(interval[1] - interval[0]) / 2]),
        (r"Over the last 3 steps it averages ([\d.]+) \(RL-ZVP\) against ([\d.]+) \(GRPO\), lower on (\d) of 6 seeds",
         [statistics.mean(entropy["rl_zvp"]), statistics.mean(entropy["grpo"]), sum(z < g for z, g in zip(entropy["rl_zvp"], entropy["grpo"]))]),
    ]  # fmt: skip
    for pattern, values in patterns_and_values:
        _quoted(pattern, section, values)
    # "the same rewards and entropies at step 1 in all six pairs"
    assert "at step 1 in all six pairs" in section
    for seed in range(42, 48):
        first = [runs[f"{name}_seed{seed}"]["steps"][0] for name in ("grpo", "rl_zvp")]
        assert (first[0]["reward"], first[0]["entropy"]) == (first[1]["reward"], first[1]["entropy"]), seed
    # One machine, the one the heading names, for every run, the level probe and the base model.
    assert {run["machine"] for run in main} | {level["machine"]} == {"AMD EPYC, AVX-512, 2 cores"}
    assert json.loads((folder / "base.json").read_text())["machine"] == "AMD EPYC, AVX-512, 2 cores"
    assert "### Results (2026-12-07, 2-core AMD EPYC with AVX-512" in PAGE
    # The earlier machine's runs (kind not recorded): its summary quoted in a sentence, its ablations in their table.
    earlier_folder = BENCH / "real_model_2026-11-26"
    earlier = {p.stem: json.loads(p.read_text()) for p in (earlier_folder / "runs").glob("*.json")}
    assert {run["machine"] for run in earlier.values()} == {"x86_64 CPU, 2 cores"}  # written before the kind was
    earlier_paired = json.loads((earlier_folder / "real_model_summary.json").read_text())["paired_vs_grpo"]["rl_zvp"]
    earlier_base = json.loads((earlier_folder / "base.json").read_text())["eval"]["heldout"]
    _quoted(
        r"The base model scored held-out Acc@8 ([\d.]+) there; RL-ZVP - GRPO was ([+-][\d.]+) \[([+-][\d.]+), ([+-][\d.]+)\] "
        r"on held-out Acc@8 and ([+-][\d.]+) \[([+-][\d.]+), ([+-][\d.]+)\] on OOD Acc@8.*?seed 42's first-step training "
        r"reward: ([\d.]+) there, ([\d.]+) here",
        section,
        [
            earlier_base["acc@8"], earlier_paired["heldout/acc@8"]["mean"], *earlier_paired["heldout/acc@8"]["ci95"],
            earlier_paired["ood/acc@8"]["mean"], *earlier_paired["ood/acc@8"]["ci95"],
            earlier["grpo_seed42"]["steps"][0]["reward"], runs["grpo_seed42"]["steps"][0]["reward"],
        ],
    )  # fmt: skip
    # The commands are as anyone reads them back: repository files relative to its root, run folders under <work_dir>.
    for name, run in [*runs.items(), *earlier.items()]:
        assert run["command"][:3] == ["recipes/train.py", "--config", "recipes/smollm2_cpu_rl_zvp.yaml"], name
        assert not [word for word in run["command"] if word.startswith("/")], name
    ablations = PAGE.split("**Ablations (in part", 1)[1]
    rows = re.findall(r"^\| (rl_zvp_\w+|erpo_rl_zvp) \| (\d+) \|(.*)$", ablations, flags=re.MULTILINE)
    assert len(rows) == 5
    for method, seed, rest in rows:
        cells = _cells("|" + rest)
        run, grpo, zvp = (earlier[f"{name}_seed{seed}"]["eval"] for name in (method, "grpo", "rl_zvp"))
        _check(cells[0], run["heldout"]["acc@8"], run["heldout"]["pass@8"])
        _check(cells[1], run["ood"]["acc@8"], run["ood"]["pass@8"])
        _check(cells[2], grpo["heldout"]["acc@8"])
        _check(cells[3], zvp["heldout"]["acc@8"])


def test_the_earlier_state_writer_is_its_file():
    """The earlier writer's run (a machine of unrecorded kind) is quoted in a sentence, with what the library costs."""
    earlier = _json("state_scale_2026-11-26.json")["buffer"]["10000x2048"]["tensors"]
    now = _json("state_scale.json")["buffer"]["10000x2048"]["tensors"]
    expected = [earlier["peak_fill_save_bytes"] / 1e9, earlier["peak_load_bytes"] / 1e9, earlier["save_s"]]
    expected += [earlier["load_s"], (now["peak_fill_save_bytes"] - earlier["peak_fill_save_bytes"]) / 1e9]
    _quoted(r"peaked at ([\d.]+) GB saving and ([\d.]+) GB loading and took ([\d.]+) s to save and ([\d.]+) s to load .*? "
            r"The library's code costs ([\d.]+) GB more on the saving process",
            _paragraph("The earlier hand-written writer and"), expected)  # fmt: skip
    assert _json("state_scale_2026-11-26.json")["machine_kind"] == "CPU kind not recorded"


def test_the_state_scale_tables_are_state_scale_json():
    data = _json("state_scale.json")
    lines = PAGE.split("| case (prompts x 8 x tokens) | layout", 1)[1].split("\n\n", 1)[0].splitlines()[2:]
    assert len(lines) == 10
    for row in map(_cells, lines):
        case, layout = row[0].strip("*").split(" ")[0], row[1].strip("*")
        result = data["buffer"][case]["tensors" if layout.startswith("after") else "lists"]
        assert ("extrapolated" in layout) == ("draw_s" not in result), row
        gb = 1e9
        _check(row[2], result["stored_tokens"] / 1e6)
        _check(row[3].strip("*"), result["buffer_memory_bytes"] / gb)
        _check(row[4], result["peak_fill_save_bytes"] / gb, result["peak_load_bytes"] / gb)
        _check(row[5], result["checkpoint_bytes"] / gb)
        _check(row[6].strip("*"), result["save_s"])
        _check(row[7], result["load_s"])
        if "draw_s" in result:
            _check(row[8], result["draw_s"] * 1e3, result["select_s"] * 1e3, result["collect_s"] * 1e3)
    state = data["per_prompt_state"]
    table = _table("| per-prompt state at 1,000,000 prompts")
    names = {"ERPO history": "erpo_history", "GRESO traces": "greso", "DS prompt sampler": "ds_sampler"}
    names["ExGRPO retired ids (in the buffer file)"] = "exgrpo_retired"
    assert set(table) == set(names)
    for label, row in table.items():
        result = state[names[label]]
        _check(row[1], result["memory_bytes"] / 1e6)
        _check(row[2], result["checkpoint_bytes"] / 1e6)
        _check(row[3], result["save_s"])
        _check(row[4], result["load_s"])
    target = data["buffer"]["10000x2048"]["tensors"]
    targets = _paragraph("Targets at 10,000 x 8 x 2,048 tokens:")
    _check(
        re.search(r"\*\*holds\*\* \(([\d.]+) GB after filling", targets).group(1), target["buffer_memory_bytes"] / 1e9
    )
    _check(re.search(r"([\d.]+) GB after a resume", targets).group(1), target["loaded_memory_bytes"] / 1e9)
    _check(re.search(r"\*\*holds\*\* \(([\d.]+) s for a", targets).group(1), target["save_s"])


def test_the_vllm_cpu_table_is_vllm_cpu_json():
    data = _json("vllm_cpu.json")
    summary, ratios = data["summary"], data["ratios_vllm_over_transformers"]
    table = _table("| | transformers | vLLM colocate | vLLM / transformers |")
    _check(table["completions / s"][1], summary["transformers"]["completions_per_second"])
    _check(table["completions / s"][2], summary["vllm"]["completions_per_second"])
    _check(table["completions / s"][3], ratios["completions_per_second"])
    _check(table["generated tokens / s"][1], summary["transformers"]["tokens_per_second"])
    _check(table["generated tokens / s"][2], summary["vllm"]["tokens_per_second"])
    _check(table["generated tokens / s"][3], ratios["tokens_per_second"])
    _check(table["engine start-up"][1], summary["transformers"]["setup_seconds"])
    _check(table["engine start-up"][2], summary["vllm"]["setup_seconds"])
    step = _row(table, "training step (s")
    _check(step[1], summary["transformers"]["train_step_seconds"])
    _check(step[2].split("(")[0], summary["vllm"]["train_step_seconds"])
    no_is = _row(table, "training step, `vllm_importance")
    _check(no_is[2].split("(")[0], summary["vllm_no_is"]["train_step_seconds"])
    _check(step[3], summary["vllm"]["train_step_seconds"] / summary["transformers"]["train_step_seconds"])
    # The steps in parentheses: each variant's measured steps after the first.
    steps = {name: runs[0]["step_times"][1:] for name, runs in data["raw"]["training"].items()}
    _check(step[1].split("(")[1], *steps["transformers"])
    _check(step[2].split("(")[1], *steps["vllm"])
    _check(no_is[2].split("(")[1], *steps["vllm_no_is"])
    assert data["machine"]["kind"] == "AMD EPYC, AVX-512, 2 cores"
    # The earlier run, on a machine of unrecorded kind, is quoted in a sentence.
    earlier = _json("vllm_cpu_2026-11-26.json")
    assert earlier["machine_kind"] == "CPU kind not recorded"
    old_ratios, old_summary = earlier["ratios_vllm_over_transformers"], earlier["summary"]
    sentence = " ".join(
        PAGE.split("`vllm_cpu_2026-11-26.json`, on a 2-core machine whose CPU kind was not", 1)[1].split()
    )
    sentence = sentence.split("start-up.", 1)[0]
    expected = [
        old_ratios["completions_per_second"], old_summary["transformers"]["completions_per_second"],
        old_summary["vllm"]["completions_per_second"], old_ratios["train_step_time"],
        old_ratios["train_step_time_without_is_correction"], old_summary["vllm"]["setup_seconds"],
    ]  # fmt: skip
    written = _numbers(sentence)
    assert len(written) == len(expected) and all(map(_agrees, written, expected)), (written, expected)
    # The text under the table.
    text = _folded(PAGE.split("| training step, `vllm_importance_sampling_correction false` |", 1)[1])
    calls = {name: [t for run in runs for t in run["seconds"]] for name, runs in data["raw"]["generation"].items()}
    quoted = re.search(r"vLLM generates ([\d.]+)x faster here \(each timed call within (\d+)% of the others for vLLM, "
                       r"within (\d+)% for transformers\).*?vLLM costs (\d+) s to start", text).groups()  # fmt: skip
    expected = [
        ratios["completions_per_second"],
        *(100 * (max(c) / min(c) - 1) for c in (calls["vllm"], calls["transformers"])),
    ]
    expected += [summary["vllm"]["setup_seconds"]]
    assert all(
        _agrees(w, v) or (i in (1, 2) and v <= float(w) <= v + 1) for i, (w, v) in enumerate(zip(quoted, expected))
    ), (
        quoted,
        expected,
    )
    # docs/vllm.md quotes both runs.
    vllm_page = _folded((REPO / "docs" / "vllm.md").read_text())
    now, then = re.search(
        r"vLLM generates ([\d.]+)x faster than transformers `generate` \(([\d.]+)x in an earlier", vllm_page
    ).groups()
    assert _agrees(now, ratios["completions_per_second"]) and _agrees(then, old_ratios["completions_per_second"])
    _check(no_is[3], summary["vllm_no_is"]["train_step_seconds"] / summary["transformers"]["train_step_seconds"])


def test_the_probe_vllm_table_is_probe_vllm_json():
    data = _json("probe_vllm.json")
    table = _table("| probe batch | offline vLLM")
    for key, result in (("64 prompts", data), ("8 prompts", data["batches_of_8_prompts"])):
        row = _row(table, key)
        _check(row[1], result["offline_tokens_per_s"])
        _check(row[2], result["probe_generation_tokens_per_s"])
        _check(row[3], result["generation_ratio"])
        _check(row[4], result["probe_end_to_end_tokens_per_s"])
        _check(row[5], result["end_to_end_ratio"])
    probe_page = (REPO / "docs" / "probe.md").read_text()
    quoted = " ".join(probe_page.split("vLLM's own offline speed", 1)[1].split()[:24])
    first, second, third, fourth = re.findall(r"(\d\.\d\d)x", quoted)[:4]
    assert _agrees(first, data["generation_ratio"]) and _agrees(
        second, data["batches_of_8_prompts"]["generation_ratio"]
    )
    assert _agrees(third, data["end_to_end_ratio"]) and _agrees(
        fourth, data["batches_of_8_prompts"]["end_to_end_ratio"]
    )


def test_the_gpu_throughput_table_is_its_json():
    data = _json("gpu_throughput.json")
    table = _table("| trainer | median step (s) | step time / TRL | completion tokens / s")
    results = {result["trainer"]: result for result in data["results"]}
    assert set(table) == set(results)
    keys = ("median_step_s", "step_time_ratio", "completion_tokens_per_s", "peak_memory_gib", "peak_memory_ratio")
    for trainer, row in table.items():
        for cell, key in zip(row[1:], keys):
            _check(cell, results[trainer][key])


def test_what_other_pages_quote_from_the_learning_and_evidence_files():
    """README's one-line summary and docs/rl_zvp.md's alpha paragraph."""
    learning = _json("learning.json")
    readme = _folded((REPO / "README.md").read_text())
    low, high = re.search(r"from 0\.447 to (\d\.\d\d)-(\d\.\d\d) at the same rollout budget", readme).groups()
    fidelity = _json("learning_fidelity_after.json")  # every method: the other three are the fidelity table's
    means = [result["acc_at_8"][0] for data in (learning, fidelity) for result in data["table"].values()]
    assert len(means) == 7
    assert _agrees("0.447", learning["runs"]["grpo"][0]["heldout_before"]["acc@8"])
    assert float(low) <= min(means) and max(means) <= float(high) + 0.005, (low, high, means)
    rl_zvp = " ".join(
        (REPO / "docs" / "rl_zvp.md").read_text().split("Choosing alpha:", 1)[1].split("\n\n")[0].split()
    )
    dose = _evidence_runs("dose_response.json")
    paired = _json("dose_response.json")["paired_vs_grpo"]
    ratio = statistics.mean(run["adv_abs_ratio_mean"] / 1.0 for run in dose["rl_zvp_alpha1.0"])
    _check(re.search(r"about ([\d.]+) alpha", rl_zvp).group(1), ratio)
    _check(
        re.search(r"alpha 1\.0 lost ([\d.]+) Acc@8", rl_zvp).group(1),
        -paired["rl_zvp_alpha1.0"]["acc@8_after"]["mean"],
    )
    held = re.search(r"it held ([\d.]+) and ([\d.]+) exactly", rl_zvp).groups()
    for written, name in zip(held, ("rl_zvp_relative0.1", "rl_zvp_relative0.3")):
        _check(written, statistics.mean(run["adv_abs_ratio_mean"] for run in dose[name]))
    saturation = _evidence_runs("saturation.json")
    _check(re.search(r"gives a ratio of only ([\d.]+)", rl_zvp).group(1),
           statistics.mean(run["adv_abs_ratio_mean"] for run in saturation["rl_zvp"]))  # fmt: skip


def test_the_reproduction_table_is_its_three_files():
    """RL-ZVP alpha 0.1 seed 44 on three kinds of CPU: the learning table's run (Intel AVX-512), the dose-response's
    (AMD AVX2) and the AMD AVX-512 rerun, and where the rerun's training curve parts from the learning table's."""
    table = _table("| CPU kind | date | held-out Acc@8 after 80 steps")
    intel = _json("learning.json")["runs"]["rl_zvp"][2]
    amd_avx2 = next(run for run in _evidence_runs("dose_response.json")["rl_zvp_alpha0.1"] if run["seed"] == 44)
    rerun = _json("learning_seed44_amd_avx512.json")
    amd_avx512 = rerun["runs"]["rl_zvp"][0]
    assert rerun["machine"]["cpu_vendor"] == "AMD" and rerun["machine"]["instruction_set"] == "AVX-512"
    # The same base model: the shipped build the page names (the learning runs of 2026-11-27 predate the field).
    shipped = re.search(r"SHA-256 `([0-9a-f]{16})\.\.\.`", PAGE).group(1)
    assert (
        amd_avx512["base_model_sha256"].startswith(shipped) and amd_avx512["heldout_before"] == intel["heldout_before"]
    )
    _check(_row(table, "Intel, AVX-512")[2], intel["heldout_after"]["acc@8"])
    _check(_row(table, "AMD EPYC, AVX2")[2], amd_avx2["acc@8_after"])
    _check(_row(table, "AMD EPYC, AVX-512")[2], amd_avx512["heldout_after"]["acc@8"])
    same = next(i for i, (a, b) in enumerate(zip(amd_avx512["curve"], intel["curve"])) if a != b)
    _check(_row(table, "AMD EPYC, AVX-512")[3], same, amd_avx512["curve"][same - 1][0])


def test_the_overhead_table_is_overhead_json():
    data = _json("overhead.json")
    table = _table("| trainer | median step (s) | step time / TRL")
    results = {result["trainer"]: result for result in data["results"]}
    assert set(table) == set(results)
    for trainer, row in table.items():
        result = results[trainer]
        _check(row[1], result["median_step_s"])
        if trainer == "trl_grpo":
            _check(row[2], 1.0)
        else:
            ratios = row[2].replace("(", "").replace(")", "").replace("-", " ")
            _check(ratios, result["step_time_ratio"], result["step_time_ratio_min"], result["step_time_ratio_max"])
        _check(row[3], result["completions_per_step"])
        _check(row[4], result["time_per_completion_ratio"])
        _check(row[5], result["peak_memory_ratio"])
    rl_zvp = (REPO / "docs" / "rl_zvp.md").read_text()
    _check(re.search(r"measured step time is ([\d.]+)x TRL's", rl_zvp).group(1), results["rl_zvp"]["step_time_ratio"])
    _check(
        re.search(r"The CPU benchmark \(`overhead.py`\) measures ([\d.]+)\.", PAGE).group(1),
        results["rl_zvp"]["step_time_ratio"],
    )


def test_the_server_temperatures_table_and_the_earlier_run_are_their_files():
    data = _json("vllm_server_temperatures.json")
    table = _table("2026-12-07, 2-core AMD EPYC with AVX-512 (`vllm_server_temperatures.json`)")
    rows = {row["setting"]: row for row in data["rows"]}
    assert set(table) == set(rows)
    for setting, row in rows.items():
        _check(table[setting][1], row["median_s"])
        _check(table[setting][2], *row["runs_s"])
        _check(table[setting][3], row["ratio"])
    # The earlier run, on a machine of unrecorded kind, is quoted in a sentence, not tabulated beside this one.
    earlier = {row["setting"]: row for row in _json("vllm_server_temperatures_2026-12-02.json")["rows"]}
    sentence = re.search(
        r"`vllm_server_temperatures_2026-12-02.json`\) was on a 2-core x86_64\s+machine whose CPU kind was not "
        r"recorded, so it is not tabulated beside this one: one request took ([\d.]+) s there, 6\s+temperatures "
        r"([\d.]+)x that when concurrent and ([\d.]+)x when sequential \(3 temperatures: ([\d.]+)x and ([\d.]+)x\)",
        PAGE,
    )
    assert sentence, "the earlier server-temperature run is not quoted as expected"
    expected = [earlier["one request, T = 1"]["median_s"]] + [
        earlier[f"{n} temperatures, {how}"]["ratio"] for n in (6, 3) for how in ("concurrent", "sequential")
    ]
    assert all(_agrees(written, value) for written, value in zip(sentence.groups(), expected, strict=True))
    now, before = _json("vllm_server_temperatures.json"), _json("vllm_server_temperatures_2026-12-02.json")
    ratios = [{row["setting"]: row["ratio"] for row in data["rows"]} for data in (now, before)]
    expected = [ratios[0]["6 temperatures, concurrent"], ratios[1]["6 temperatures, concurrent"]]
    expected += [ratios[0]["6 temperatures, sequential"], ratios[1]["6 temperatures, sequential"]]
    _quoted(r"6 temperatures cost ([\d.]+)x one request on one machine and ([\d.]+)x on another, against ([\d.]+)x and "
            r"([\d.]+)x", _folded((REPO / "docs" / "erpo.md").read_text()), expected)  # fmt: skip


def test_the_step_profile_table_and_the_earlier_profile_are_their_files():
    results = _json("vllm_step_profile.json")["results"]
    vllm, plain = results["vllm"]["blocks"], results["transformers"]["blocks"]
    table = _table("2026-12-07, 2-core AMD EPYC with AVX-512 (`vllm_step_profile.json`)")
    pairs = {
        "`_prepare_inputs`": (vllm["_prepare_inputs"], plain["_prepare_inputs"]),
        "of which generation": (vllm["vLLM.generate"], plain["transformers.generate"]),
        "of which weight sync": (vllm["sync_weights"], 0),
        "`_get_per_token_logps_and_entropies`": (
            vllm["_get_per_token_logps_and_entropies"],
            plain["_get_per_token_logps_and_entropies"],
        ),
        "`compute_loss`": (vllm["compute_loss"], plain["compute_loss"]),
        "backward": (vllm["backward"], plain["backward"]),
        "optimizer step": (vllm["optimizer step"], plain["optimizer step"]),
        "whole `training_step`": (vllm["training_step (whole)"], plain["training_step (whole)"]),
    }
    for start, (with_vllm, without) in pairs.items():
        cells = _row(table, start)
        _check(cells[1].lstrip("~"), with_vllm)
        _check(cells[2], without)
    rest = vllm["_prepare_inputs"] - vllm["vLLM.generate"] - vllm["sync_weights"]
    _check(_row(table, "of which TRL's importance-sampling")[1].lstrip("~"), rest)
    assert len(table) == len(pairs) + 1
    # The text under the table: the measured steps and the blocks' ratios.
    steps = {name: results[name]["step_times"][1:] for name in ("vllm", "transformers")}
    step_ratio = _json("vllm_cpu.json")["ratios_vllm_over_transformers"]["train_step_time"]
    expected = [*steps["vllm"], *steps["transformers"], vllm["training_step (whole)"], plain["training_step (whole)"]]
    expected += [vllm["training_step (whole)"] / plain["training_step (whole)"], step_ratio]
    expected += [plain["transformers.generate"] - vllm["vLLM.generate"], rest]
    expected += [vllm["compute_loss"] / plain["compute_loss"], vllm["backward"] / plain["backward"]]
    _quoted(r"took ([\d.]+) and ([\d.]+) s with vLLM, ([\d.]+) and ([\d.]+) s without: medians ([\d.]+) and ([\d.]+) s, "
            r"([\d.]+)x.*?\(([\d.]+)x there.*?generation is ([\d.]+) s faster with vLLM, while the importance-sampling "
            r"forward takes ([\d.]+) s and the loss forward and the backward take ([\d.]+)x and ([\d.]+)x as long",
            _folded(PAGE.split("| whole `training_step` (= TRL's `step_time`) | 136.7", 1)[1]), expected)  # fmt: skip
    assert steps["vllm"][1] < steps["transformers"][1]  # "the third step with vLLM was faster than without it"
    # The earlier profile, on a machine of unrecorded kind, is quoted in a sentence, not tabulated beside this one.
    earlier = _json("vllm_step_profile_2026-12-02.json")["results"]
    vllm, plain = earlier["vllm"]["blocks"], earlier["transformers"]["blocks"]
    sentence = " ".join(
        PAGE.split("An earlier profile (2026-12-02, `vllm_step_profile_2026-12-02.json`", 1)[1].split()
    )
    sentence = sentence.split("\n\n")[0].split(" s. ", 1)[0]
    expected = [
        vllm["training_step (whole)"], plain["training_step (whole)"], vllm["vLLM.generate"],
        plain["transformers.generate"], vllm["_prepare_inputs"] - vllm["vLLM.generate"] - vllm["sync_weights"],
        vllm["compute_loss"], plain["compute_loss"], vllm["backward"], plain["backward"],
    ]  # fmt: skip
    written = _numbers(sentence.split("recorded)", 1)[1])
    assert len(written) == len(expected) and all(map(_agrees, written, expected)), (written, expected)


def test_the_sample_report_of_docs_probe_is_what_the_probe_prints():
    """docs/probe.md shows a report of 24 prompts (6 always, 7 never, 11 sometimes solved): its lines are what
    `report_text` prints for such rows, so the sample follows the report's format and numbers."""
    from zvp_trl.probing.report import report_text, summarize

    def row(correct: int) -> dict:
        kind = {8: "all_correct", 0: "all_wrong"}.get(correct, "mixed")
        return {"num_correct": correct, "num_generations": 8, "kind": kind, "completion_length_mean": 31.9}

    rows = [row(8)] * 6 + [row(0)] * 7 + [row(3)] * 7 + [row(2)] * 4  # 48 + 29 = 77 correct of 192
    settings = {"num_generations": 8, "model": "...", "dataset": "embedded-arithmetic"}
    printed = report_text(summarize(rows, settings), Path("out")).splitlines()
    sample = (REPO / "docs" / "probe.md").read_text().split("## Reading the report", 1)[1]
    sample = sample.split("```text\n", 1)[1].split("```", 1)[0].splitlines()
    assert sample[:4] == printed[:4]
    assert printed[4].startswith(sample[4].split("...")[0].rstrip())


def _minutes_seconds(text: str) -> float:
    minutes, seconds = re.fullmatch(r"(\d+) min (\d+) s", text).groups()
    return 60 * int(minutes) + int(seconds)


def test_the_first_commands_and_the_embedded_model_are_their_files():
    """The default run's and the default probe's numbers (benchmarks/README.md's table, the README's set-up path) and
    the embedded model's table, from first_commands.json and embedded_task.json."""
    first, model = _json("first_commands.json"), _json("embedded_task.json")
    train, probe = first["train"], first["probe"]
    summary = train["summary"]
    assert summary["base_model_sha256"] == model["shipped"]["weights_sha256"]  # the run started from the shipped model
    table = _table("| model | seconds | weights SHA-256 |")
    for key, label in (("shipped", "shipped"), ("fresh_build", "built here")):
        row, result = _row(table, label), model[key]
        _check(row[1], result.get("build_seconds", result.get("seconds_to_cache")))
        assert row[2].strip("`").removesuffix("...") == result["weights_sha256"][:16]
        for column, name in enumerate(("frac_all_correct", "frac_all_wrong", "frac_mixed", "acc@8", "pass@8"), 3):
            _check(row[column], result[name])
    runs = _table("| the default run, from an empty cache |")
    assert abs(_minutes_seconds(_row(runs, "the default run")[1]) - train["wall_seconds"]) < 1
    _check(_row(runs, "of which RL")[1].removesuffix(" s"), summary["train_seconds"])
    before, after = summary["heldout_before"], summary["heldout_after"]
    _check(_row(runs, "held-out Acc@8")[1], before["acc@8"], after["acc@8"], before["pass@8"], after["pass@8"])
    zero_variance = summary["train_zero_variance_fraction"]
    _check(_row(runs, "zero-variance groups")[1], zero_variance["first_logged"], zero_variance["last_logged"])
    _check(_row(runs, "the default probe")[1].removesuffix(" s"), probe["wall_seconds"])
    split = probe["summary"]
    _check(_row(runs, "its split")[1], split["all_correct"], split["all_wrong"], split["mixed"])
    readme = _folded((REPO / "README.md").read_text())
    run = re.search(r"(\d+ min \d+ s) with an empty cache, held-out Acc@8 ([\d.]+) -> ([\d.]+)", readme).groups()
    assert abs(_minutes_seconds(run[0]) - train["wall_seconds"]) < 1
    main_job = re.search(r"Run the main job \([^)]*; about (\d+) minutes\)", readme).group(1)
    assert int(main_job) == round(train["wall_seconds"] / 60)
    _check(run[1], before["acc@8"])
    _check(run[2], after["acc@8"])
    probed = re.search(r"x 8\) in (\d+) s; it finds ([\d.]+%) of them zero-variance", readme).groups()
    _check(probed[0], probe["wall_seconds"])
    _check(probed[1], split["zero_gradient_rollout_share"])
    assert split["num_prompts"] == 2048 and "2,048 training prompts x 8" in readme
    embedded = (REPO / "docs" / "embedded_task.md").read_text()
    assert f"`{model['fresh_build']['weights_sha256'][:8]}...`" in embedded


def test_the_build_time_the_pages_quote_is_the_measured_one():
    """ "its build from nothing, about 2 minutes": the build of embedded_task.json, in whole minutes."""
    seconds = _json("embedded_task.json")["fresh_build"]["build_seconds"]
    quoted = set()
    for page in (REPO / "README.md", REPO / "docs" / "embedded_task.md"):
        text = _folded(page.read_text())
        quoted |= set(
            re.findall(r"(?:build from nothing|chains of up to 7 operations)[ ,(]+about (\d+) minutes", text)
        )
    assert quoted == {str(round(seconds / 60))}, (quoted, seconds)
