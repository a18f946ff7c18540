# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""The algorithms `recipes/train.py` can run, derived from the registered methods (`zvp_trl.core.registry`), and
methods combined by name.

`ALGORITHMS` lists `grpo` (plain GRPO with the package's rollout accounting), every registered method, and every
combination registered under a name of its own; `get_algorithm(name)` also takes methods joined by `+` in any order
(`erpo+exgrpo+rl_zvp`, `recipes/train.py --algorithm erpo+exgrpo+rl_zvp`). A combination that is a named one
(`erpo+rl_zvp` is `erpo_rl_zvp`) is that algorithm. Combinations whose parts contradict each other are refused with
both names and the reason (each `MethodSpec.incompatible`; docs/training.md has the table).

A composed config subclasses the methods' configs in their `precedence` order (the first config that sets a field's
default wins: ExGRPO's Dr.GRPO defaults where ExGRPO is named), after the pair mixins the methods declare for each
other (`MethodSpec.combined_with`: their checks and defaults). A composed trainer is the adapter with the methods'
parts, run in `precedence` order; its model card names every method and cites every paper.
"""

import dataclasses
import functools
import itertools
from collections.abc import Callable, Iterator, Mapping

from . import papers
from .adapter import GRPOBaselineTrainer, ZVPBaseTrainer
from .config import GRPOBaselineConfig
from .registry import NamedCombination, method_spec, method_specs, named_combinations, trainer_class


@dataclasses.dataclass(frozen=True)
class Algorithm:
    """An algorithm `recipes/train.py --algorithm` can run: `load()` gives its `(config class, trainer class)`."""

    name: str
    description: str
    methods: tuple[str, ...] = ()  # the registered methods it runs (none: plain GRPO)
    loader: Callable[[], tuple[type, type]] | None = dataclasses.field(default=None, compare=False, repr=False)

    def load(self) -> tuple[type, type]:
        if self.loader is not None:
            return self.loader()
        if not self.methods:
            return GRPOBaselineConfig, GRPOBaselineTrainer
        return _classes(self.methods)


GRPO = Algorithm(
    "grpo", "plain GRPO (TRL's GRPOTrainer; zero-variance groups get no signal), with rollout accounting"
)


def _trl_classes() -> tuple[type, type]:
    from trl import GRPOConfig, GRPOTrainer

    return GRPOConfig, GRPOTrainer


# TRL's own trainer, the reference every benchmark measures the algorithms against.
TRL_GRPO = Algorithm("trl_grpo", "TRL's GRPOTrainer, unchanged (the reference)", loader=_trl_classes)
DEFAULT_ALGORITHM = "rl_zvp"


class AlgorithmTable(Mapping):
    """name -> `Algorithm`: `grpo`, then each registered method followed by the combinations it registers (read
    afresh, so methods registered later, or by installed packages, are listed too)."""

    def __init__(self):
        self._made: dict[str, Algorithm] = {"grpo": GRPO}

    def _current(self) -> dict[str, Algorithm]:
        combinations = named_combinations()
        names = ["grpo"]
        for spec in method_specs().values():
            names.append(spec.name)
            names += [c.name for c in spec.combinations]
        for name in names:
            if name not in self._made:
                if name in combinations:
                    combination = combinations[name]
                    self._made[name] = Algorithm(name, combination.description, order(combination.methods))
                else:
                    self._made[name] = Algorithm(name, method_spec(name).description, (name,))
        return {name: self._made[name] for name in names}

    def __getitem__(self, name: str) -> Algorithm:
        return self._current()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._current())

    def __len__(self) -> int:
        return len(self._current())

    def __repr__(self) -> str:
        return f"AlgorithmTable({list(self)})"


ALGORITHMS = AlgorithmTable()


def with_trl_reference() -> dict[str, Algorithm]:
    """`trl_grpo` (TRL's `GRPOTrainer`) first, then every registered algorithm: what the benchmarks compare."""
    return {TRL_GRPO.name: TRL_GRPO, **ALGORITHMS}


def aliases() -> dict[str, tuple[str, ...]]:
    """The named combinations: name -> the methods it combines."""
    return {name: combination.methods for name, combination in named_combinations().items()}


def order(methods) -> tuple[str, ...]:
    """The methods in `precedence` order (registration order among equals), each once."""
    specs = method_specs()
    position = {name: i for i, name in enumerate(specs)}
    return tuple(sorted(set(methods), key=lambda m: (specs[m].precedence, position[m])))


def method_names(name: str) -> tuple[str, ...]:
    """The methods a `+`-joined name stands for, in `precedence` order (named combinations expanded, each once)."""
    specs, combinations = method_specs(), named_combinations()
    found = set()
    for piece in (p.strip() for p in name.split("+")):
        if piece in specs:
            found.add(piece)
        elif piece in combinations:
            found.update(combinations[piece].methods)
        else:
            known = ", ".join([*specs, *combinations])
            raise ValueError(
                f"Unknown method {piece!r} in algorithm {name!r}: combine the methods {known} with '+' "
                "(e.g. erpo+exgrpo+rl_zvp), or pick one registered algorithm (--algorithm NAME)."
            )
    return order(found)


def incompatibility(a: str, b: str) -> str | None:
    """Why methods `a` and `b` cannot be combined (as either declares it), or None."""
    return method_spec(a).incompatible.get(b) or method_spec(b).incompatible.get(a)


def check_combination(methods: tuple[str, ...]) -> None:
    """Refuses a combination of methods that contradict each other, naming both and the reason."""
    for a, b in itertools.combinations(methods, 2):
        reason = incompatibility(a, b)
        if reason:
            raise ValueError(f"{a} and {b} cannot be combined: {reason}.")


def registered_name(methods: tuple[str, ...]) -> str | None:
    """The registered algorithm that is exactly this combination, if there is one."""
    if len(methods) == 1:
        return methods[0]
    for name, combination in named_combinations().items():
        if set(combination.methods) == set(methods):
            return name
    return None


def get_algorithm(name: str) -> Algorithm:
    """The algorithm of that name: a registered one, or methods joined by `+` (`erpo+exgrpo+rl_zvp`; a combination
    that is a named one is that algorithm)."""
    if "+" in name:
        methods = method_names(name)
        check_combination(methods)
        registered = registered_name(methods)
        if registered is not None:
            return ALGORITHMS[registered]
        return Algorithm("+".join(methods), f"the methods {', '.join(methods)}, composed", methods)
    if name not in ALGORITHMS:
        raise ValueError(
            f"Unknown algorithm {name!r}. Choose one of: {', '.join(ALGORITHMS)} (--algorithm NAME), or combine "
            "methods with '+' (e.g. erpo+exgrpo+rl_zvp)."
        )
    return ALGORITHMS[name]


def _field_with_default(bases: tuple[type, ...], name: str, default) -> dataclasses.Field:
    """The field `name` of the first of `bases` that has it (its help kept), with another default."""
    for base in bases:
        for f in dataclasses.fields(base) if dataclasses.is_dataclass(base) else ():
            if f.name == name:
                return dataclasses.field(default=default, metadata=dict(f.metadata))
    raise ValueError(f"A combination's default names the field {name!r}, which none of its configs has.")


def _combination_of(methods: tuple[str, ...]) -> NamedCombination | None:
    name = registered_name(methods)
    return named_combinations().get(name) if name is not None else None


@functools.cache
def _classes(methods: tuple[str, ...]) -> tuple[type, type]:
    """The classes of the methods (in `precedence` order): a single method's own, or composed ones."""
    if len(methods) == 1:
        return method_spec(methods[0]).config, trainer_class(methods[0])
    check_combination(methods)
    specs = [method_spec(m) for m in methods]
    combination = _combination_of(methods)
    named = [method_spec(m) for m in combination.methods] if combination is not None else specs
    stem = combination.class_stem if combination is not None else "".join(s.class_stem for s in specs)
    module = combination.module if combination is not None else __name__
    mixins = tuple(s.combined_with[o.name] for s in specs for o in specs if o.name in s.combined_with)
    configs = tuple(s.config for s in specs)
    namespace = {
        "__doc__": (combination.config_doc if combination is not None and combination.config_doc else None)
        or f"Configuration class of {stem}Trainer ({' + '.join(methods)}): every field of "
        f"{', '.join(c.__name__ for c in configs)}.",
        "__module__": module,
        "__annotations__": {},
    }
    for mixin in mixins:
        for field_name, default in getattr(mixin, "defaults", {}).items():
            namespace["__annotations__"][field_name] = type(default)
            namespace[field_name] = _field_with_default(configs, field_name, default)
    config = dataclasses.dataclass(type(f"{stem}Config", (*mixins, *configs), namespace))
    paper = None
    for spec in named:
        if spec.paper is not None:
            paper = spec.paper if paper is None else papers.citing_also(paper, spec.paper)
    display = " + ".join(s.display for s in named)
    trainer = type(
        f"{stem}Trainer",
        (ZVPBaseTrainer,),
        {
            "__doc__": (combination.trainer_doc if combination is not None else "")
            or f"The composition of {', '.join(s.display for s in named)}: their parts, run by [`ZVPBaseTrainer`].",
            "__module__": module,
            "_parts": tuple(s.part for s in specs),
            "_config_class": config,
            "_name": display,
            "_tag_names": ["trl", *dict.fromkeys(tag for s in named for tag in s.tags)],
            "_default_suffix": (combination.default_suffix if combination is not None else "")
            or "-".join(s.display for s in named),
            **({"_paper": paper} if paper is not None else {}),
        },
    )
    return config, trainer


def combination_attribute(module: str, name: str):
    """The class `name` (`<stem>Config` / `<stem>Trainer`) of a combination whose classes live in `module`: the
    composed ones in this module, a named one in the package of the method that registers it (a module's
    `__getattr__` hands out its classes with this, so that configs pickle by name into training_args.bin)."""
    stem, _, kind = name.rpartition("Config") if name.endswith("Config") else name.rpartition("Trainer")
    if not stem or kind:
        raise AttributeError(f"module {module!r} has no attribute {name!r}")
    if module != __name__:
        for combination in named_combinations().values():
            if combination.module == module and combination.class_stem == stem:
                config, trainer = _classes(order(combination.methods))
                return config if name.endswith("Config") else trainer
        raise AttributeError(f"module {module!r} has no attribute {name!r}")
    specs = method_specs()
    for size in range(2, len(specs) + 1):
        for methods in itertools.combinations(order(specs), size):
            if "".join(specs[m].class_stem for m in methods) != stem:
                continue
            try:
                check_combination(methods)
            except ValueError as error:
                raise AttributeError(f"module {module!r} has no attribute {name!r}: {error}") from None
            if registered_name(methods) is not None:  # a named combination lives in its method's package
                break
            config, trainer = _classes(methods)
            return config if name.endswith("Config") else trainer
    raise AttributeError(f"module {module!r} has no attribute {name!r}")


def __getattr__(name: str):
    """The composed classes by name (`ExGRPOERPORLZVPConfig`, `ExGRPOERPORLZVPTrainer`), built on first use."""
    return combination_attribute(__name__, name)

