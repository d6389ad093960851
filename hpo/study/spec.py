"""Study files: a YAML file read into a validated, immutable `StudySpec`.

A study tunes the learning rate, batch size and weight decay at each scale of
a model family's ladder, for each variant, and extrapolates to a target size.
docs/study_files.md is the reference of every field and its default;
studies/quickstart.yaml is a commented example.

Units: ``scale_params`` and ``target_params`` are non-embedding parameters N;
budgets and fidelity are tokens (for a regression family, examples). Every
problem in a file is reported at once, in one `SpecError`. A family named by
import path (``module:attr``) is code that loading the file runs: load only
study files you trust. Nothing here writes files or creates directories.
"""

from __future__ import annotations

import os
import re
import typing
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from os import PathLike
from pathlib import Path
from typing import Any, cast

from hpo.search.strategy import STRATEGIES, SearchStrategy
from hpo.store.tracker import TRACKERS
from hpo.study import checks as _checks
from hpo.study.checks import INVALID, NAME, NAME_FIX, SET_ELSEWHERE, TRAIN_KEYS, Problems, SpecError, show
from hpo.study.space import LogRange, PowerOfTwoRange, SearchSpace, WeightDecayRange
from hpo.vocab import HYPERPARAMETERS, is_power_of_two
from models import ModelFamily, get_family

__all__ = [
    "Fidelity", "LogRange", "PowerOfTwoRange", "Resources", "SearchSpace", "SpecError", "Storage",
    "StudySpec", "Variant", "WeightDecayRange", "load_spec", "parse_spec",
]

SPACE_KEYS = HYPERPARAMETERS
MAX_BATCH_SIZE = 2**20
MAX_FILE_BYTES = 2**20
RETRIES = 2
"""Default of ``retries``: how often an errored trial runs again before it counts as failed."""
MAX_RETRIES = 100
DEFAULTS: Mapping[str, object] = {
    "batch_size": 32, "weight_decay": 0.0, "variants": {"default": {}}, "trials_per_scale": 20,
    "reduction_factor": 3, "search": "scale_aware", "max_concurrent": 1, "cpu": 1.0, "gpu": 0.0, "seed": 0,
    "retries": RETRIES,
}
"""Values of the optional fields a study leaves out (docs/study_files.md lists them all); those of
``search``'s settings are its strategy's defaults."""
_REQUIRED = ("name", "family", "scales", "budget", "space")
_FIELDS = ("name", "family", "family_options", "scales", "target", "budget", "space", "train",
           "variants", "trials_per_scale", "fidelity", "search", "max_concurrent", "resources", "seed",
           "output", "storage", "retries")
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S*")


@dataclass(frozen=True)
class Variant:
    """A named configuration: its search space and its fixed training settings
    (`models.TrainConfig` fields), the study's merged with its overrides."""

    name: str
    space: SearchSpace
    train: Mapping[str, object]


@dataclass(frozen=True)
class Fidelity:
    """ASHA on tokens: a trial is first judged after `grace_tokens`, then after
    each `reduction_factor` times more; it evaluates every `eval_every_tokens`."""

    grace_tokens: int
    reduction_factor: int
    eval_every_tokens: int


@dataclass(frozen=True)
class Resources:
    """Ray resources of one trial: CPUs and GPUs (fractions allowed), and the memory (GiB) a worker
    offers it, when given (also a Ray resource then); without it a CPU trial must fit this machine's
    memory (`hpo.study.checks.trial_memory`)."""

    cpu: float
    gpu: float
    memory_gb: float | None = None

    def memory_bytes(self) -> int:
        """The memory one trial may use: `memory_gb`, else this machine's physical memory."""
        if self.memory_gb is not None:
            return int(self.memory_gb * 2**30)
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


@dataclass(frozen=True)
class Storage:
    """Where trials persist: an SQLAlchemy URL for Optuna, the tracking URI of the `tracker` that records
    them for browsing (`hpo.store.tracker.TRACKERS`: ``mlflow``, an MLflow tracking URI)."""

    optuna: str
    mlflow: str
    tracker: str = "mlflow"


@dataclass(frozen=True)
class StudySpec:
    """A validated study. `scales` run smallest first; `scale_params` and
    `target_params` count non-embedding parameters; `budget_tokens` is the full
    token budget D of one trial at each scale, `target_tokens` the one the
    budget rule gives the target; `output_dir` is absolute;
    `source` is the study file, if the spec was read from one; `retries` is how
    many times a trial that errored (its node lost, its process killed, its
    code raised) runs again before it counts as failed."""

    name: str
    family: str
    family_options: Mapping[str, object]
    scales: tuple[str, ...]
    scale_params: Mapping[str, int]
    target_params: int
    target_scale: str | None
    budget_tokens: Mapping[str, int]
    target_tokens: int
    variants: tuple[Variant, ...]
    trials_per_scale: Mapping[str, int]
    fidelity: Fidelity
    search: SearchStrategy
    max_concurrent: int
    resources: Resources
    seed: int
    output_dir: Path
    storage: Storage
    source: Path | None = None
    retries: int = RETRIES
    tokens_per_param: float | None = None
    """The budget rule, D = tokens_per_param · N; None when every scale trains one fixed budget."""

    def tokens_for(self, params: int) -> int:
        """D of a trial of N = `params` parameters by the study's budget rule (at least one token)."""
        if self.tokens_per_param is None:
            return self.target_tokens
        return max(1, round(self.tokens_per_param * params))

    def params(self, scale: str) -> int:
        """Non-embedding parameters N of `scale`."""
        return self.scale_params[self._check_scale(scale)]

    def tokens(self, scale: str) -> int:
        """Token budget D of one trial at `scale`."""
        return self.budget_tokens[self._check_scale(scale)]

    def searched_ranges(self) -> dict[str, tuple[float, float]]:
        """The ranges the variants search, joined (lowest low, highest high per hyperparameter), in the
        form `hpo.analysis.extrapolate` takes as `searched`: a recommendation outside them is
        extrapolated beyond the whole study's space."""
        spaces = [variant.space.ranges() for variant in self.variants]
        return {name: (min(ranges[name][0] for ranges in spaces), max(ranges[name][1] for ranges in spaces))
                for name in spaces[0]}

    def cost_ratio(self, scale: str) -> float:
        """ρ of `scale`: the FLOPs of one full-budget trial there over one at the ladder's costliest scale
        (`models.ModelFamily.train_flops` of each scale's N and D)."""
        family = self.load_family()
        cost = {name: family.train_flops(name, self.tokens(name)) for name in self.scales}
        return cost[self._check_scale(scale)] / max(cost.values())

    def load_family(self) -> ModelFamily:
        """A fresh instance of the study's model family, built with `family_options`."""
        return get_family(self.family, **self.family_options)

    def variant(self, name: str) -> Variant:
        """The variant called `name`; `ValueError` naming the choices if there is none."""
        for variant in self.variants:
            if variant.name == name:
                return variant
        names = ", ".join(variant.name for variant in self.variants)
        raise ValueError(f"variant {name!r} is not in study {self.name!r}: use one of {names}")

    def to_dict(self) -> dict[str, object]:
        """Plain data for logging (e.g. as MLflow params), storage passwords shown as ``***``."""
        return {
            "name": self.name, "family": self.family, "family_options": dict(self.family_options),
            "scales": list(self.scales), "scale_params": dict(self.scale_params),
            "target_params": self.target_params, "target_scale": self.target_scale,
            "budget_tokens": dict(self.budget_tokens), "target_tokens": self.target_tokens,
            "variants": {v.name: {"space": asdict(v.space), "train": dict(v.train)} for v in self.variants},
            "trials_per_scale": dict(self.trials_per_scale), "fidelity": asdict(self.fidelity),
            "search": self.search.settings(), "max_concurrent": self.max_concurrent,
            "resources": asdict(self.resources),
            "seed": self.seed, "output_dir": str(self.output_dir),
            "storage": {key: _checks.mask(url) for key, url in asdict(self.storage).items()},
            "source": None if self.source is None else str(self.source), "retries": self.retries,
            "tokens_per_param": self.tokens_per_param,
        }

    def _check_scale(self, scale: str) -> str:
        if scale not in self.scales:
            names = ", ".join(self.scales)
            raise ValueError(f"scale {scale!r} is not in study {self.name!r}: use one of {names}")
        return scale


def load_spec(path: str | PathLike[str], *, output_root: Path | None = None) -> StudySpec:
    """Read and validate the study file at `path` (UTF-8 YAML, at most 1 MiB).

    A relative ``output`` is taken from `output_root` (default: the current
    directory). Raises `SpecError`, naming the file, with every problem found.
    """
    file = Path(path).absolute()
    try:
        if file.exists() and not file.is_file():  # a folder, or a pipe that would block
            raise OSError("not a regular file")
        with file.open("rb") as stream:
            raw = stream.read(MAX_FILE_BYTES + 1)
    except (OSError, ValueError) as error:
        raise SpecError([f"cannot read the study file ({getattr(error, 'strerror', None) or error}); "
                         "check the path"], file) from None
    if len(raw) > MAX_FILE_BYTES:
        raise SpecError([f"larger than {MAX_FILE_BYTES} bytes; a study file is a short YAML document"], file)
    return parse_spec(_checks.read_yaml(raw, file), source=file, output_root=output_root)


def parse_spec(data: object, *, source: Path | None = None, output_root: Path | None = None) -> StudySpec:
    """Validate study data (what a study file holds) into a `StudySpec`.

    Raises `SpecError` with every problem found (naming `source`, if given). A
    relative ``output`` is taken from `output_root` (default: the current directory).
    """
    p = Problems()
    if data is None:
        p.add("", "the study is empty", f"write at least {', '.join(_REQUIRED)} (docs/study_files.md)")
        raise SpecError(p.errors, source)
    top = p.mapping("", data, _FIELDS, required=_REQUIRED)
    if top is None:
        raise SpecError(p.errors, source)

    def get(key: str, default: object = None) -> object:  # an empty (null) optional field is left out
        return DEFAULTS.get(key, default) if top.get(key) is None else top[key]

    name = p.string("name", top["name"], pattern=NAME, fix=NAME_FIX) if "name" in top else None
    family, options, params, built = ("", {}, None, None)
    if "family" in top:
        family, options, params, built = _checks.family(p, top["family"], get("family_options", {}))
    scales = _checks.scales(p, top["scales"], family, params) if "scales" in top else ()
    target_params, target_scale = _checks.target(p, top.get("target"), params, scales)
    budget = _checks.budget(p, top["budget"], scales, params) if "budget" in top else {}
    space = _space(p, top["space"]) if "space" in top else None
    _, train = _overrides(p, "train", get("train", {}), space=False)
    variants = _variants(p, get("variants"), space, train)
    trials = _checks.trials(p, get("trials_per_scale"), scales, known=params is not None)
    fidelity = _fidelity(p, get("fidelity", {}), budget)
    search = _search(p, get("search"))
    max_concurrent = p.integer("max_concurrent", get("max_concurrent"), minimum=1, maximum=_checks.MAX_TRIALS)
    resources = _resources(p, get("resources", {}))
    seed = p.integer("seed", get("seed"), minimum=0, maximum=2**32 - 1)
    output_dir = _checks.output_dir(p, get("output", f"runs/{name}"), output_root) if name else None
    storage = _storage(p, get("storage", {}), output_dir)
    retries = p.integer("retries", get("retries"), minimum=0, maximum=MAX_RETRIES)
    if built is not None and variants and resources is not None and not p.errors and (
            resources.memory_gb is not None or not resources.gpu):  # a GPU's memory is not known here
        limit = "set in resources.memory_gb" if resources.memory_gb else "this machine has"
        _checks.trial_memory(p, built, scales, {v.name: _largest_batch(v.space) for v in variants},
                             resources.memory_bytes(), limit)
    p.raise_if_any(source)  # below, every value is checked: raise_if_any raised otherwise
    rule = cast(Mapping[str, Any], top["budget"])
    assert name is not None and params is not None and fidelity is not None and search is not None
    assert max_concurrent is not None and resources is not None and seed is not None
    assert output_dir is not None and storage is not None and retries is not None
    return StudySpec(
        name=name, family=family, family_options=options, scales=scales,
        scale_params={scale: params[scale] for scale in scales},
        target_params=target_params, target_scale=target_scale, budget_tokens=budget,
        target_tokens=_target_tokens(rule, target_params),
        variants=variants, trials_per_scale=trials, fidelity=fidelity, search=search,
        max_concurrent=max_concurrent, resources=resources, seed=seed, output_dir=output_dir, storage=storage,
        source=source, retries=retries,
        tokens_per_param=None if "tokens" in rule else float(rule["tokens_per_param"]),
    )


def _target_tokens(budget: Mapping[str, Any], target_params: int) -> int:
    """D at the target by the study's budget rule (a validated ``budget`` entry)."""
    if "tokens" in budget:
        return int(float(budget["tokens"]))
    return max(1, round(float(budget["tokens_per_param"]) * target_params))


def _space(p: Problems, value: object) -> SearchSpace | None:
    """The study's search space; batch_size and weight_decay default to fixed values."""
    space = p.mapping("space", value, SPACE_KEYS, required=("lr",))
    if space is None or "lr" not in space:
        return None
    entries = {key: _entry(p, f"space.{key}", key, space.get(key, DEFAULTS.get(key))) for key in SPACE_KEYS}
    return None if None in entries.values() else SearchSpace(**cast(dict[str, Any], entries))


def _entry(p: Problems, path: str, key: str, value: object) -> LogRange | PowerOfTwoRange | float | None:
    """One hyperparameter `key`: a range (a mapping), or one value that fixes it."""
    if not isinstance(value, Mapping):
        if key == "batch_size":
            return p.integer(path, value, minimum=1, maximum=MAX_BATCH_SIZE)
        return p.number(path, value, positive=key == "lr", nonnegative=True)
    keys = ("low", "high", "zero") if key == "weight_decay" else ("low", "high")
    bounds = p.mapping(path, value, keys, required=("low", "high"))
    if bounds is None or "low" not in bounds or "high" not in bounds:
        return None
    if key == "batch_size":
        low, high = (p.integer(f"{path}.{end}", bounds[end], minimum=1, maximum=MAX_BATCH_SIZE)
                     for end in keys)
        for end, bound in (("low", low), ("high", high)):
            if bound is not None and not is_power_of_two(bound):
                p.add(f"{path}.{end}", f"must be a power of two (got {bound})",
                      f"use {2 ** (bound.bit_length() - 1)} or {2 ** bound.bit_length()}")
                return None
        if low is not None and high is not None and low > high:
            p.add(f"{path}.low", f"must not exceed {path}.high (got {low} > {high})", "swap them")
            return None
        return None if low is None or high is None else PowerOfTwoRange(low, high)
    low, high = (p.number(f"{path}.{end}", bounds[end]) for end in ("low", "high"))
    zero = p.boolean(f"{path}.zero", bounds.get("zero", False))
    for end, bound in (("low", low), ("high", high)):
        if bound is not None and bound <= 0:
            more = ", or add zero: true to include 0" if key == "weight_decay" else ""
            p.add(f"{path}.{end}", f"must be > 0 in a log range (got {bound:g})",
                  f"use a positive number{more}")
            return None
    if low is None or high is None or zero is None:
        return None
    if low >= high:
        fix = "swap them" if low > high else "give one value instead of a range to fix it"
        p.add(f"{path}.low", f"must be below {path}.high (got {low:g} >= {high:g})", fix)
        return None
    return WeightDecayRange(low, high, zero) if key == "weight_decay" else LogRange(low, high)


def _overrides(
    p: Problems, path: str, value: object, *, space: bool
) -> tuple[dict[str, LogRange | PowerOfTwoRange | float | None], dict[str, object]]:
    """The search-space entries (allowed when `space`: in a variant) and the
    fixed training settings in one mapping."""
    allowed = (SPACE_KEYS if space else ()) + TRAIN_KEYS
    if isinstance(value, Mapping):
        misplaced = [key for key in value if key in SET_ELSEWHERE and key not in allowed]
        for key in misplaced:
            p.add(f"{path}.{key}", "is not a training setting", f"set {SET_ELSEWHERE[key]} instead")
        value = {key: item for key, item in value.items() if key not in misplaced}
    entries = p.mapping(path, value, allowed) or {}
    ranges = {key: _entry(p, f"{path}.{key}", key, entries[key]) for key in SPACE_KEYS if key in entries}
    return ranges, _checks.train_settings(p, path, entries)


def _variants(
    p: Problems, value: object, space: SearchSpace | None, train: Mapping[str, object]
) -> tuple[Variant, ...]:
    """Each variant: the study's space and training settings with its overrides."""
    if not isinstance(value, Mapping) or not value:
        p.add("variants", f"expected a mapping of variant names to overrides, got {show(value)}",
              "write e.g. {baseline: {}, no_wd: {weight_decay: 0}}, or leave variants out for one default")
        return ()
    variants = []
    for name, overrides in value.items():
        path = _checks.join("variants", name)
        named = isinstance(name, str) and NAME.fullmatch(name) is not None
        if not named:
            p.add(path, f"variant name {show(name)} is not valid", NAME_FIX)
        ranges, settings = _overrides(p, path, {} if overrides is None else overrides, space=True)
        if named and space is not None and None not in ranges.values():
            variants.append(Variant(name, replace(space, **ranges), {**train, **settings}))
    return tuple(variants)


def _fidelity(p: Problems, value: object, budget: Mapping[str, int]) -> Fidelity | None:
    """ASHA in tokens; grace defaults to the smallest budget / reduction_factor²
    and the report interval to the grace."""
    fidelity = p.mapping("fidelity", value, ("grace_tokens", "reduction_factor", "eval_every_tokens"))
    if fidelity is None:
        return None
    factor = fidelity.get("reduction_factor", DEFAULTS["reduction_factor"])
    factor = p.integer("fidelity.reduction_factor", factor, minimum=2, maximum=1000)
    smallest = min(budget, key=lambda scale: budget[scale], default=None)
    default_grace = max(1, budget[smallest] // factor**2) if smallest is not None and factor else 1
    grace = p.integer("fidelity.grace_tokens", fidelity.get("grace_tokens", default_grace),
                      minimum=1, maximum=_checks.MAX_TOKENS)
    every = p.integer("fidelity.eval_every_tokens", fidelity.get("eval_every_tokens", grace or 1),
                      minimum=1, maximum=_checks.MAX_TOKENS)
    if grace is not None and smallest is not None and grace >= budget[smallest]:
        p.add("fidelity.grace_tokens", "must be below every scale's budget "
              f"(got {grace} >= {budget[smallest]} at scale {smallest})", "lower it or raise the budget")
    return None if factor is None or grace is None or every is None else Fidelity(grace, factor, every)


def _search(p: Problems, value: object) -> SearchStrategy | None:
    """A strategy's name, or a mapping of its ``mode`` and settings (each defaulting to the strategy's)."""
    path = "search" if isinstance(value, str) else "search.mode"
    entries = {"mode": value} if isinstance(value, str) else p.mapping("search", value, _search_keys())
    if entries is None:
        return None
    mode = p.choice(path, entries.get("mode", DEFAULTS["search"]), STRATEGIES.names())
    if mode is INVALID:
        return None
    strategy = STRATEGIES.get(str(mode))
    hints = typing.get_type_hints(strategy)
    settings = {}
    for name, raw in entries.items():
        if name == "mode":
            continue
        if name not in strategy.setting_names():
            known = ", ".join(strategy.setting_names())
            p.add(f"search.{name}", f"is not a setting of search mode {mode!r}",
                  f"use one of {known}" if known else f"leave it out: write search: {mode}")
            continue
        settings[name] = p.setting(f"search.{name}", raw, hints[name])
    if INVALID in settings.values():
        return None
    chosen = strategy(**settings)
    for name, what, fix in chosen.problems():
        p.add(f"search.{name}", what, fix)
    return chosen


def _search_keys() -> tuple[str, ...]:
    """The keys a ``search:`` mapping may hold: ``mode`` and the settings of every strategy."""
    names = ["mode"]
    for mode in STRATEGIES.names():
        names += [name for name in STRATEGIES.get(mode).setting_names() if name not in names]
    return tuple(names)


def _resources(p: Problems, value: object) -> Resources | None:
    """CPUs (> 0) and GPUs (>= 0) of one trial, and the memory (GiB > 0) a worker offers it."""
    resources = p.mapping("resources", value, ("cpu", "gpu", "memory_gb"))
    if resources is None:
        return None
    cpu = p.number("resources.cpu", resources.get("cpu", DEFAULTS["cpu"]), positive=True)
    gpu = p.number("resources.gpu", resources.get("gpu", DEFAULTS["gpu"]), nonnegative=True)
    memory = resources.get("memory_gb")
    memory_gb = None if memory is None else p.number("resources.memory_gb", memory, positive=True)
    if cpu is None or gpu is None or (memory is not None and memory_gb is None):
        return None
    return Resources(cpu, gpu, memory_gb)


def _largest_batch(space: SearchSpace) -> int:
    """The largest batch size `space` trains with."""
    batch = space.batch_size
    return batch.high if isinstance(batch, PowerOfTwoRange) else int(batch)


def _storage(p: Problems, value: object, output_dir: Path | None) -> Storage | None:
    """Optuna and MLflow storage, both sqlite files in `output_dir` by default, and the tracker."""
    storage = p.mapping("storage", value, ("optuna", "mlflow", "tracker"))
    if storage is None or output_dir is None:
        return None
    optuna = p.string("storage.optuna", storage.get("optuna", f"sqlite:///{output_dir}/optuna.db"),
                      pattern=_URL, fix="give an SQLAlchemy URL such as postgresql://host/db")
    mlflow = p.string("storage.mlflow", storage.get("mlflow", f"sqlite:///{output_dir}/mlflow.db"),
                      fix="give an MLflow tracking URI such as http://host:5000")
    tracker = p.choice("storage.tracker", storage.get("tracker", "mlflow"), TRACKERS.names())
    if optuna is None or mlflow is None or tracker is INVALID:
        return None
    return Storage(optuna, mlflow, str(tracker))
