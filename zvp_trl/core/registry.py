# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""The method registry: one `MethodSpec` per method, registered once, from which everything else about the method is
derived (its trainer class, its `--algorithm` name, the combinations it takes part in, its model card).

A method registers itself with `register(spec)`, which returns its trainer class. The methods of this package do so
in their folders (`zvp_trl/methods/<name>/__init__.py`); a method of another installed package is found through the
entry-point group `zvp_trl.methods` (the entry point names the `MethodSpec`), loaded the first time the registry is
read (`method_specs()`), or registered by an explicit `register(spec)` call in a script. See docs/adding_a_method.md.
"""

import dataclasses
import importlib.metadata
import keyword
from collections.abc import Mapping

from .adapter import ZVPBaseTrainer
from .config import ZVPBaseConfig
from .parts import MethodPart


ENTRY_POINT_GROUP = "zvp_trl.methods"
# Names the registry keeps for itself: the GRPO baseline, and TRL's own trainer in the benchmarks.
RESERVED_NAMES = ("grpo", "trl_grpo")


@dataclasses.dataclass(frozen=True)
class NamedCombination:
    """A combination of methods registered under a name of its own (`erpo_rl_zvp`), with classes exported by name
    (`ERPORLZVPTrainer`, `ERPORLZVPConfig`); `--algorithm erpo+rl_zvp` is the same algorithm."""

    name: str
    methods: tuple[str, ...]  # in the order the model card names them and cites their papers
    class_stem: str  # the classes are `<class_stem>Trainer` and `<class_stem>Config`
    description: str  # one line, listed by `recipes/train.py --help`
    default_suffix: str = ""  # of the default output directory (`<model>-<suffix>`); default: the display names
    trainer_doc: str = ""
    config_doc: str = ""
    module: str = ""  # where the classes are importable by name (the declaring method's package); set by `register`


@dataclasses.dataclass(frozen=True)
class MethodSpec:
    """Everything zvp_trl needs to know about a method, in one registration.

    Args:
        name: the `--algorithm` name and the part's name (`part.name`): a lower-case Python identifier.
        display: the name the model card and logs use (`"RL-ZVP"`).
        class_stem: the exported classes are `<class_stem>Trainer` (built by `register`) and the config; composed
            classes join the stems of their methods (`ExGRPOERPORLZVPTrainer`).
        part: the method's `MethodPart` subclass (see `zvp_trl.core.parts` for the events it may implement).
        config: its config dataclass, a subclass of `ZVPBaseConfig` (its fields prefixed by the method, each with a
            `help`, checked in `__post_init__`).
        description: one line, listed by `recipes/train.py --help`.
        paper: TRL's `_paper` entry (`zvp_trl.core.papers.arxiv_paper`) the model card names and cites; None cites
            GRPO's, as TRL's `GRPOTrainer` does.
        tags: Hub tags of trained models, besides `"trl"`.
        default_suffix: of the default output directory (`<model name>-<suffix>`); default: `display`.
        incompatible: other method's name -> why the two cannot be combined (either side may declare a pair).
        combined_with: other method's name -> a config mixin class that joins the composed config when both are
            combined: its `__post_init__` checks the pair (then calls `super().__post_init__()`), its class attribute
            `defaults` (field name -> value) changes the composed config's defaults.
        precedence: the order, lowest first, in which composed configs take defaults (the first config that sets a
            field wins) and in which the trainer runs the parts at each event.
        trainer_doc: the docstring of the method's trainer class.
        combinations: the combinations with other methods this method registers under names of their own.
        module: where the trainer class is importable by name; default: the part's module.
    """

    name: str
    display: str
    class_stem: str
    part: type
    config: type
    description: str
    paper: dict | None = None
    tags: tuple[str, ...] = ()
    default_suffix: str = ""
    incompatible: Mapping[str, str] = dataclasses.field(default_factory=dict)
    combined_with: Mapping[str, type] = dataclasses.field(default_factory=dict)
    precedence: int = 100
    trainer_doc: str = ""
    combinations: tuple[NamedCombination, ...] = ()
    module: str = ""

    def __post_init__(self):
        where = f"MethodSpec(name={self.name!r})"
        if not (isinstance(self.name, str) and self.name.isidentifier() and self.name.islower()):
            raise ValueError(f"{where}: name must be a lower-case Python identifier (e.g. 'my_method').")
        if keyword.iskeyword(self.name) or "+" in self.name or self.name in RESERVED_NAMES:
            raise ValueError(f"{where}: the name {self.name!r} is reserved; choose another.")
        if not (isinstance(self.part, type) and issubclass(self.part, MethodPart)):
            raise TypeError(f"{where}: part must be a subclass of zvp_trl.core.parts.MethodPart, got {self.part!r}.")
        if self.part.name != self.name:
            raise ValueError(
                f"{where}: its part {self.part.__name__} has name {self.part.name!r}; set `name = {self.name!r}` on "
                "the part class, so the trainer's `part(name)` finds it."
            )
        if not (isinstance(self.config, type) and issubclass(self.config, ZVPBaseConfig)):
            raise TypeError(
                f"{where}: config must be a dataclass subclass of zvp_trl.ZVPBaseConfig, got {self.config!r}."
            )
        if not self.class_stem.isidentifier():
            raise ValueError(f"{where}: class_stem must be a Python identifier, got {self.class_stem!r}.")
        if self.name in self.incompatible or self.name in self.combined_with:
            raise ValueError(f"{where}: a method cannot be incompatible or combined with itself.")
        if not self.default_suffix:
            object.__setattr__(self, "default_suffix", self.display)
        if not self.module:
            object.__setattr__(self, "module", self.part.__module__)
        combinations = tuple(
            c if c.module else dataclasses.replace(c, module=self.module) for c in self.combinations
        )
        for combination in combinations:
            if self.name not in combination.methods or len(set(combination.methods)) < 2:
                raise ValueError(
                    f"{where}: its combination {combination.name!r} must name it and at least one other method, "
                    f"got {combination.methods}."
                )
        object.__setattr__(self, "combinations", combinations)


_SPECS: dict[str, MethodSpec] = {}
_COMBINATIONS: dict[str, NamedCombination] = {}
_TRAINERS: dict[str, type] = {}
_plugins = {"loaded": False}


def register(spec: MethodSpec) -> type:
    """Registers a method and returns its trainer class (`<class_stem>Trainer`: TRL's `GRPOTrainer` through zvp_trl's
    adapter, running the method's part). Registering the same spec again returns the same class."""
    if not isinstance(spec, MethodSpec):
        raise TypeError(f"register() takes a zvp_trl.core.registry.MethodSpec, got {type(spec).__name__}.")
    existing = _SPECS.get(spec.name)
    if existing is spec:
        return _TRAINERS[spec.name]
    if existing is not None or spec.name in _COMBINATIONS:
        owner = existing.module if existing is not None else _COMBINATIONS[spec.name].module
        raise ValueError(f"A method named {spec.name!r} is already registered (by {owner}); choose another name.")
    for combination in spec.combinations:
        if combination.name in _SPECS or combination.name in _COMBINATIONS or combination.name in RESERVED_NAMES:
            raise ValueError(f"{spec.name}: the combination name {combination.name!r} is already taken.")
    trainer = type(
        f"{spec.class_stem}Trainer",
        (ZVPBaseTrainer,),
        {
            "__doc__": spec.trainer_doc or f"Trainer for {spec.display}: its part, run by [`ZVPBaseTrainer`].",
            "__module__": spec.module,
            "_parts": (spec.part,),
            "_config_class": spec.config,
            "_name": spec.display,
            "_tag_names": ["trl", *spec.tags],
            "_default_suffix": spec.default_suffix,
            **({"_paper": spec.paper} if spec.paper is not None else {}),
        },
    )
    _SPECS[spec.name] = spec
    _TRAINERS[spec.name] = trainer
    for combination in spec.combinations:
        _COMBINATIONS[combination.name] = combination
    return trainer


def load_plugins() -> None:
    """Registers the methods other installed packages declare in the entry-point group `zvp_trl.methods` (each entry
    point names a `MethodSpec`), once."""
    if _plugins["loaded"]:
        return
    _plugins["loaded"] = True
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        source = f"entry point {entry_point.name!r} = {entry_point.value!r} of group {ENTRY_POINT_GROUP!r}"
        try:
            spec = entry_point.load()
        except Exception as error:
            raise ImportError(f"Could not load the method of the {source}: {error}") from error
        if not isinstance(spec, MethodSpec):
            raise TypeError(f"The {source} names a {type(spec).__name__}; it must name a MethodSpec.")
        if spec.name != entry_point.name:
            raise ValueError(
                f"The {source} registers a method named {spec.name!r}: name the entry point {spec.name!r}."
            )
        register(spec)


def method_specs() -> dict[str, MethodSpec]:
    """The registered methods, in registration order (installed packages' entry points loaded first)."""
    load_plugins()
    return dict(_SPECS)


def method_spec(name: str) -> MethodSpec:
    specs = method_specs()
    if name not in specs:
        raise KeyError(f"No method named {name!r} is registered (registered: {', '.join(specs)}).")
    return specs[name]


def named_combinations() -> dict[str, NamedCombination]:
    """The combinations registered under names of their own, in registration order."""
    load_plugins()
    return dict(_COMBINATIONS)


def trainer_class(name: str) -> type:
    """The trainer class `register` built for the method `name`."""
    method_spec(name)
    return _TRAINERS[name]
