# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""Methods combined by name: `compose("erpo+exgrpo+rl_zvp")` builds a trainer that runs every named method's part
and a config that holds every named method's fields (`recipes/train.py --algorithm erpo+exgrpo+rl_zvp`).

Names are the single methods' algorithm names (`rl_zvp`, `erpo`, `exgrpo`, `grpo_ds`, `greso`) or the combined
trainers' (`erpo_rl_zvp`, `exgrpo_rl_zvp`, `erpo_ds`), joined by `+`, in any order. A combination that is a registered
trainer (`erpo+rl_zvp`, `rl_zvp+exgrpo`, `grpo_ds+erpo`) is that trainer. Combinations whose parts contradict each
other are refused with both names and the reason (`INCOMPATIBLE`; docs/training.md has the table).

The composed config subclasses the registered configs the combination covers (the largest ones first, so pair checks
such as ERPO + RL-ZVP's apply), with the Dr.GRPO defaults of ExGRPO first where ExGRPO is named. The composed trainer
is the base trainer with the named parts; its model card names every method and cites every paper.
"""

import dataclasses
import functools
import itertools

from . import papers
from .adapter import ZVPBaseTrainer
from .parts import parts_of
from .registry import ALGORITHMS, Algorithm


# The single methods, by part name; their registered algorithms hold the part, the config and the paper.
METHODS = ("exgrpo", "greso", "grpo_ds", "erpo", "rl_zvp")  # the order their configs' defaults win in
PAPERS = {
    "rl_zvp": papers.RL_ZVP,
    "erpo": papers.ERPO,
    "exgrpo": papers.EXGRPO,
    "grpo_ds": papers.DAPO,
    "greso": papers.GRESO,
}
DISPLAY = {"rl_zvp": "RL-ZVP", "erpo": "ERPO", "exgrpo": "ExGRPO", "grpo_ds": "GRPO-DS", "greso": "GRESO"}
CLASS_NAMES = {"rl_zvp": "RLZVP", "erpo": "ERPO", "exgrpo": "ExGRPO", "grpo_ds": "GRPODS", "greso": "GRESO"}
# The combined trainers registered under a name of their own.
ALIASES = {"erpo_rl_zvp": ("erpo", "rl_zvp"), "exgrpo_rl_zvp": ("exgrpo", "rl_zvp"), "erpo_ds": ("erpo", "grpo_ds")}

_DS = "drops zero-variance groups after rollout and rolls out fresh prompts in their place"
INCOMPATIBLE = {
    frozenset(
        {"grpo_ds", "rl_zvp"}
    ): f"dynamic sampling {_DS}, so RL-ZVP, which learns from those groups, never sees one",
    frozenset({"greso", "rl_zvp"}): "GRESO skips the prompts likely to be zero-variance before rollout and drops the "
    "zero-variance groups after it, so RL-ZVP, which learns from those groups, never sees one",
    frozenset({"grpo_ds", "greso"}): "GRESO is dynamic sampling with pre-rollout skipping: name greso alone",
    frozenset(
        {"erpo", "greso"}
    ): "GRESO skips before rollout the prompts whose groups came back all-correct, the ones "
    "ERPO samples again at a raised temperature",
    frozenset({"exgrpo", "grpo_ds"}): "both decide which groups fill a batch: ExGRPO replaces a fixed share of each "
    f"generation batch's groups by replays, dynamic sampling {_DS}, so the replay share no longer holds",
    frozenset({"exgrpo", "greso"}): "both decide which groups fill a batch: ExGRPO replaces a fixed share of each "
    "generation batch's groups by replays, GRESO skips prompts and drops groups, so the replay share no longer holds",
}


def method_names(name: str) -> tuple[str, ...]:
    """The single methods a `+`-joined name stands for, in `METHODS` order (aliases expanded, each once)."""
    found = set()
    for piece in (p.strip() for p in name.split("+")):
        if piece in METHODS:
            found.add(piece)
        elif piece in ALIASES:
            found.update(ALIASES[piece])
        else:
            known = ", ".join([*METHODS, *ALIASES])
            raise ValueError(
                f"Unknown method {piece!r} in algorithm {name!r}: combine the methods {known} with '+' "
                "(e.g. erpo+exgrpo+rl_zvp), or pick one registered algorithm (--algorithm NAME)."
            )
    return tuple(m for m in METHODS if m in found)


def check_combination(methods: tuple[str, ...]) -> None:
    """Refuses a combination of methods that contradict each other, naming both and the reason."""
    for a, b in itertools.combinations(methods, 2):
        reason = INCOMPATIBLE.get(frozenset({a, b}))
        if reason:
            raise ValueError(f"{a} and {b} cannot be combined: {reason}.")


def registered_name(methods: tuple[str, ...]) -> str | None:
    """The registered algorithm that is exactly this combination, if there is one."""
    if len(methods) == 1:
        return methods[0]
    for alias, parts in ALIASES.items():
        if set(parts) == set(methods):
            return alias
    return None


def compose(name: str) -> tuple[type, type]:
    """`(config class, trainer class)` of a `+`-joined combination of methods (see the module docstring)."""
    methods = method_names(name)
    check_combination(methods)
    registered = registered_name(methods)
    if registered is not None:
        return ALGORITHMS[registered].load()
    return _build(methods)


class _ERPOWithReplay:
    """The checks of ERPO combined with ExGRPO (docs/training.md, "Combining methods by name")."""

    def __post_init__(self):
        if self.erpo_logprob_temperature != "base":
            raise ValueError(
                "ERPO combined with ExGRPO needs erpo_logprob_temperature='base': a replayed trajectory's recorded "
                "log-probs and its loss log-probs must be at one temperature, and the temperature ERPO gives its "
                "question changes between the batch that stored it and the batch that replays it. Leave "
                "erpo_logprob_temperature at its default ('base') for this combination."
            )
        if self.exgrpo_exclude_retired and self.erpo_trigger == "all_correct":
            raise ValueError(
                "ERPO combined with ExGRPO: with exgrpo_exclude_retired=True ExGRPO never rolls out again a question "
                "whose group came back all-correct, the very questions erpo_trigger='all_correct' samples again at a "
                "raised temperature. Leave exgrpo_exclude_retired at its default (False) for this combination, or "
                "set erpo_trigger='all_correct_or_all_wrong'."
            )
        if self.erpo_ra_advantage > 0:
            raise ValueError(
                "ERPO's RA (erpo_ra_advantage > 0) gives all-correct groups a negative advantage, which would push "
                "down the correct trajectories ExGRPO replays: set erpo_ra_advantage=0 when combining ERPO with "
                "ExGRPO."
            )
        super().__post_init__()


def _field_with_default(config_class: type, name: str, default) -> dataclasses.Field:
    """`config_class`'s field `name` (its help kept) with another default."""
    original = next(f for f in dataclasses.fields(config_class) if f.name == name)
    return dataclasses.field(default=default, metadata=dict(original.metadata))


@functools.cache
def _build(methods: tuple[str, ...]) -> tuple[type, type]:
    covered = []  # (methods, config) of the registered algorithms inside the combination, largest first
    candidates = [(set(parts), alias) for alias, parts in ALIASES.items()] + [({m}, m) for m in METHODS]
    for parts, algorithm in sorted(candidates, key=lambda c: -len(c[0])):
        if parts <= set(methods) and not any(parts <= done for done, _ in covered):
            covered.append((parts, algorithm))
    covered.sort(key=lambda c: min(METHODS.index(m) for m in c[0]))
    configs = [ALGORITHMS[algorithm].load()[0] for _, algorithm in covered]
    trainers = [ALGORITHMS[m].load()[1] for m in methods]
    class_name = "".join(CLASS_NAMES[m] for m in methods)
    namespace = {
        "__doc__": (
            f"Configuration class of the composed trainer {class_name}Trainer ({' + '.join(methods)}): every field of "
            f"{', '.join(c.__name__ for c in configs)}."
        ),
        "__module__": __name__,
    }
    bases = tuple(configs)
    if "erpo" in methods and "exgrpo" in methods:
        # ERPO re-samples all-correct questions hotter; ExGRPO stops drawing them unless told otherwise; replayed
        # log-probs need one temperature (see _ERPOWithReplay).
        bases = (_ERPOWithReplay, *bases)
        erpo_config, exgrpo_config = ALGORITHMS["erpo"].load()[0], ALGORITHMS["exgrpo"].load()[0]
        namespace["__annotations__"] = {"erpo_logprob_temperature": str, "exgrpo_exclude_retired": bool}
        namespace["erpo_logprob_temperature"] = _field_with_default(erpo_config, "erpo_logprob_temperature", "base")
        namespace["exgrpo_exclude_retired"] = _field_with_default(exgrpo_config, "exgrpo_exclude_retired", False)
    config = dataclasses.dataclass(type(f"{class_name}Config", bases, namespace))
    paper = PAPERS[methods[0]]
    for other in methods[1:]:
        paper = papers.citing_also(paper, PAPERS[other])
    parts = tuple(part for trainer in trainers for part in parts_of(trainer))
    trainer = type(
        f"{class_name}Trainer",
        (ZVPBaseTrainer,),
        {
            "__doc__": f"The composition of {', '.join(DISPLAY[m] for m in methods)}: their parts, run by "
            "[`ZVPBaseTrainer`] (see `zvp_trl.core.composition`).",
            "__module__": __name__,
            "_parts": parts,
            "_config_class": config,
            "_name": " + ".join(DISPLAY[m] for m in methods),
            "_paper": paper,
            "_tag_names": ["trl", *(DISPLAY[m].lower() for m in methods)],
            "_default_suffix": "-".join(DISPLAY[m] for m in methods),
        },
    )
    # Importable by name (`zvp_trl.core.composition.<Name>`), so the config pickles into training_args.bin and
    # unpickles in another process (see `__getattr__`).
    globals()[config.__name__], globals()[trainer.__name__] = config, trainer
    return config, trainer


def __getattr__(name: str):
    """The composed classes by name (`ExGRPOERPORLZVPConfig`, `ExGRPOERPORLZVPTrainer`), built on first use."""
    for size in range(2, len(METHODS) + 1):
        for methods in itertools.combinations(METHODS, size):
            stem = "".join(CLASS_NAMES[m] for m in methods)
            if name in (f"{stem}Config", f"{stem}Trainer"):
                try:
                    check_combination(methods)
                except ValueError as error:
                    raise AttributeError(f"module {__name__!r} has no attribute {name!r}: {error}") from None
                if registered_name(methods) is not None:  # a registered trainer lives in its own module
                    break
                config, trainer = _build(methods)
                return config if name.endswith("Config") else trainer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclasses.dataclass(frozen=True)
class ComposedAlgorithm(Algorithm):
    """A `+`-joined combination of methods, as the registry hands it out (`load()` builds its classes)."""

    def load(self) -> tuple[type, type]:
        return compose(self.name)
