"""Field checks for study files (`hpo.study.spec`): each reads a value at a field
path, records what is wrong and how to fix it, and gives back the checked value.

A failed check records ``path: what is wrong; fix`` in a `Problems` and
returns None (`INVALID` where None is a valid value), so one pass over a
file finds every error instead of stopping at the first.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import reprlib
import types
import typing
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any, cast

import yaml

from models import ModelFamily, TrainConfig, family_names, get_family

INVALID: typing.Final = object()
"""What `Problems.setting` and `Problems.choice` return for a value that failed (None is valid there)."""
NAME = re.compile(r"(?!\.{1,2}$)[A-Za-z0-9_.-]{1,100}")
"""Study and variant names: used in run names and paths, so never ``.`` or ``..``."""
NAME_FIX = "use 1 to 100 letters, digits, _ . - (not . or ..)"
MAX_TOKENS = 10**13
"""Largest token budget of a scale."""
MAX_TRIALS = 100_000
"""Most trials at one scale (and most trials running at once)."""
SET_ELSEWHERE = {"lr": "space.lr", "batch_size": "space.batch_size", "weight_decay": "space.weight_decay",
                 "tokens": "budget", "seed": "seed", "eval_every_tokens": "fidelity.eval_every_tokens"}
"""TrainConfig fields a study does not set under ``train``, and where they come from instead."""
TRAIN_KEYS = tuple(field.name for field in fields(TrainConfig) if field.name not in SET_ELSEWHERE)
"""The training settings a study can fix."""

_TRAIN_HINTS = typing.get_type_hints(TrainConfig)
_YAML_FLOAT = re.compile(
    r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?|[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN)"
)
"""YAML 1.2 float syntax. PyYAML (YAML 1.1) reads ``1e6`` and even ``1.0e6`` as strings."""
_IMPORT_PATH = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*")
_KEY = re.compile(r"[A-Za-z0-9_.-]+")
_USER_PASSWORD = re.compile(r"(://[^:/@]*:).*@")
_PASSWORD_PARAM = re.compile(r"([?&;](?:password|passwd|pwd)=)[^&;]*", re.IGNORECASE)
_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxlist, _REPR.maxdict, _REPR.maxtuple, _REPR.maxset = 2, 4, 4, 4, 4
_REPR.maxstring, _REPR.maxother, _REPR.maxlong = 40, 40, 40


class SpecError(ValueError):
    """A study file is invalid. `errors` holds every problem found, each
    ``field.path: what is wrong; fix``; the message joins them with ``"; "`` on
    one line, after the file's path when it is known."""

    def __init__(self, errors: Iterable[str], source: str | Path | None = None) -> None:
        self.errors: tuple[str, ...] = tuple(_one_line(error) for error in errors)
        self.source = source
        prefix = f"{_one_line(str(source))}: " if source is not None else ""
        super().__init__(prefix + "; ".join(self.errors))

    def __reduce__(self) -> tuple[type[SpecError], tuple[tuple[str, ...], str | Path | None]]:
        return SpecError, (self.errors, self.source)


def _one_line(text: str) -> str:
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())


def show(value: object) -> str:
    """A short one-line repr of a value read from a file, however large or deep."""
    try:
        return _REPR.repr(value)
    except ValueError:  # an int too long to print (sys.get_int_max_str_digits)
        return f"<{type(value).__name__}>"


def join(path: str, key: object) -> str:
    """The path of `key` in the mapping at `path`."""
    name = key if isinstance(key, str) and _KEY.fullmatch(key) else show(key)
    return f"{path}.{name}" if path else str(name)


def did_you_mean(word: object, choices: Sequence[str]) -> str:
    """``"did you mean 'x'? "`` for the closest of `choices` by difflib, else
    one that `word` begins, or ``""``."""
    if not isinstance(word, str) or not word:
        return ""
    close = difflib.get_close_matches(word, choices, n=1) or [c for c in choices if c.startswith(word)]
    return f"did you mean {close[0]!r}? " if close else ""


def mask(url: str) -> str:
    """`url` with its password (``user:password@`` or ``password=``) shown as ``***``."""
    return _PASSWORD_PARAM.sub(r"\1***", _USER_PASSWORD.sub(r"\1***@", url))


class Problems:
    """Every problem found so far, and the generic checks that find them."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def add(self, path: str, what: str, fix: str) -> None:
        """Record ``path: what; fix`` (path ``study`` for the file as a whole)."""
        self.errors.append(f"{path or 'study'}: {what}; {fix}")

    def raise_if_any(self, source: str | Path | None) -> None:
        """Raise `SpecError` with every recorded problem, if any."""
        if self.errors:
            raise SpecError(self.errors, source)

    def mapping(
        self, path: str, value: object, keys: Sequence[str], required: Sequence[str] = ()
    ) -> dict[str, object] | None:
        """The entries of a mapping whose keys must be among `keys` (unknown and
        missing keys are reported), or None if `value` is not a mapping."""
        if not isinstance(value, Mapping):
            self.add(path, f"expected a mapping, got {show(value)}",
                     f"write key: value pairs of {', '.join(keys)}")
            return None
        found: dict[str, object] = {}
        for key, item in value.items():
            if isinstance(key, str) and key in keys:
                found[key] = item
            else:
                self.add(join(path, key), "unknown key",
                         f"{did_you_mean(key, keys)}use one of {', '.join(keys)}")
        for key in required:
            if key not in found:
                self.add(join(path, key), "required but missing", f"add {key}")
        return found

    def keywords(self, path: str, value: object) -> dict[str, object] | None:
        """A mapping of keyword arguments: any keys that are Python identifiers."""
        if not isinstance(value, Mapping):
            self.add(path, f"expected a mapping, got {show(value)}", "write name: value pairs")
            return None
        bad = [key for key in value if not (isinstance(key, str) and key.isidentifier())]
        for key in bad:
            self.add(join(path, key), "is not an option name", "use a Python identifier such as seq_len")
        return None if bad else dict(value)

    def number(
        self, path: str, value: object, *, positive: bool = False, nonnegative: bool = False
    ) -> float | None:
        """A finite real: an int or float (not a bool), or a string in YAML 1.2
        float syntax such as ``1e6``."""
        if isinstance(value, str) and _YAML_FLOAT.fullmatch(value.strip()):
            value = float(re.sub(r"\.(?=[A-Za-z])", "", value.strip()))  # ".inf" -> "inf"
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.add(path, f"expected a number, got {show(value)}", "write a number such as 0.001 or 1.0e6")
            return None
        try:
            result = float(value)
        except OverflowError:
            result = math.inf
        if not math.isfinite(result):
            self.add(path, f"must be a finite number (got {show(value)})", "write a finite number")
        elif positive and result <= 0:
            self.add(path, f"must be > 0 (got {show(value)})", "use a positive number")
        elif nonnegative and result < 0:
            self.add(path, f"must be >= 0 (got {show(value)})", "use 0 or a positive number")
        else:
            return result
        return None

    def integer(
        self, path: str, value: object, *, minimum: int | None = None, maximum: int | None = None
    ) -> int | None:
        """An integer in ``[minimum, maximum]``: an int (not a bool), or a
        number of integral value such as ``2.0e6``."""
        if isinstance(value, float | str):
            number = self.number(path, value)
            if number is None:
                return None
            value = int(number) if number.is_integer() else value
        if isinstance(value, bool) or not isinstance(value, int):
            self.add(path, f"expected an integer, got {show(value)}", "write a whole number such as 20")
        elif minimum is not None and value < minimum:
            self.add(path, f"must be >= {minimum} (got {show(value)})", f"use {minimum} or more")
        elif maximum is not None and value > maximum:
            self.add(path, f"must be <= {maximum} (got {show(value)})", f"use {maximum} or less")
        else:
            return value
        return None

    def boolean(self, path: str, value: object) -> bool | None:
        """``true`` or ``false``."""
        if isinstance(value, bool):
            return value
        self.add(path, f"expected true or false, got {show(value)}", "write true or false")
        return None

    def string(
        self, path: str, value: object, *, fix: str, pattern: re.Pattern[str] | None = None
    ) -> str | None:
        """A non-empty string of printable characters, matching `pattern` if given."""
        if not isinstance(value, str):
            self.add(path, f"expected a string, got {show(value)}", fix)
        elif not value or not value.isprintable() or (pattern is not None and not pattern.fullmatch(value)):
            self.add(path, f"{show(value)} is not valid", fix)
        else:
            return value
        return None

    def choice(self, path: str, value: object, choices: Sequence[object]) -> object:
        """One of `choices`, or `INVALID`."""
        if not isinstance(value, bool) and value in choices:
            return value
        names = [str(choice) for choice in choices]
        self.add(path, f"{show(value)} is not allowed",
                 f"{did_you_mean(value, names)}use one of {', '.join(names)}")
        return INVALID

    def setting(self, path: str, value: object, hint: object) -> object:
        """`value` checked against a type annotation (float, int, bool, str, a
        Literal, ``X | None`` or a fixed-length tuple), or `INVALID`."""
        origin, args = typing.get_origin(hint), typing.get_args(hint)
        if origin in (typing.Union, types.UnionType):
            if value is None and type(None) in args:
                return None
            others = [arg for arg in args if arg is not type(None)]
            return self.setting(path, value, others[0]) if len(others) == 1 else value
        if origin is typing.Literal:
            return self.choice(path, value, args)
        if origin is tuple:
            if not isinstance(value, list | tuple) or len(value) != len(args):
                self.add(path, f"expected a list of {len(args)} values, got {show(value)}",
                         f"write [{', '.join('...' for _ in args)}]")
                return INVALID
            pairs = enumerate(zip(value, args, strict=True))
            items = tuple(self.setting(f"{path}[{i}]", item, arg) for i, (item, arg) in pairs)
            return INVALID if INVALID in items else items
        checks = {bool: self.boolean, int: self.integer, float: self.number}
        if hint in checks:
            checked = checks[hint](path, value)
        elif hint is str:
            checked = self.string(path, value, fix="write a non-empty string")
        else:
            return value
        return INVALID if checked is None else checked


def family(
    p: Problems, value: object, options: object
) -> tuple[str, dict[str, object], dict[str, int] | None, ModelFamily | None]:
    """The family name, its options, N (non-embedding params) of each of its scales in the family's
    order, and the family itself; None for N and the family if it cannot be built."""
    kwargs = p.keywords("family_options", options)
    name = p.string("family", value, fix=f"use one of {', '.join(family_names())} or module:attr")
    if name is None or kwargs is None:
        return "", {}, None, None
    if ":" in name and not _IMPORT_PATH.fullmatch(name):
        p.add("family", f"{show(name)} is not an import path", "write package.module:Attribute")
        return name, kwargs, None, None
    if ":" not in name and name not in family_names():
        p.add("family", f"{show(name)} is not a known family",
              f"{did_you_mean(name, family_names())}use one of {', '.join(family_names())} or module:attr")
        return name, kwargs, None, None
    try:  # a family is user code: whatever it raises is a problem of this study file
        built = get_family(name, **kwargs)
        params = {scale: int(built.param_count(scale).non_embedding) for scale in built.scales}
    except Exception as error:
        path = "family" if not kwargs or str(error).startswith(f"family {name!r}") else "family_options"
        detail = " ".join(f"{type(error).__name__}: {error}".split())[:200]
        p.add(path, f"cannot build family {name!r} with options {show(kwargs)} ({detail})",
              "fix the family or its options")
        return name, kwargs, None, None
    return name, kwargs, params, built


def trial_memory(p: Problems, built: ModelFamily, scales: Sequence[str], batch_sizes: Mapping[str, int],
                 limit: int, limit_source: str) -> None:
    """Check that one trial of each scale, at the largest batch size a variant searches (`batch_sizes`:
    variant → batch), fits in `limit` bytes (`ModelFamily.trial_memory`, estimated without building
    the model); `limit_source` says where the limit comes from."""
    for scale in scales:
        variant, batch = max(batch_sizes.items(), key=lambda item: item[1])
        try:
            need = built.trial_memory(scale, batch)
        except Exception as error:  # a family is user code
            p.add(f"scales.{scale}", f"cannot estimate its memory ({type(error).__name__}: {error})",
                  "fix the family's trial_memory")
            continue
        if need > limit:
            p.add(f"scales.{scale}", f"a trial needs about {_bytes(need)} at batch size {batch} "
                  f"(variant {variant}), more than the {_bytes(limit)} {limit_source}",
                  "use smaller scales or batch sizes, or set resources.memory_gb to what a worker offers")


def _bytes(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if count < 1024:
            return f"{count:.3g} {unit}"
        count /= 1024
    return f"{count:.3g} PiB"


def scales(p: Problems, value: object, family_name: str, params: Mapping[str, int] | None) -> tuple[str, ...]:
    """The listed scale names, smallest N first (the family's order breaks ties)."""
    if not isinstance(value, list) or not value:
        p.add("scales", f"expected a non-empty list of scale names, got {show(value)}",
              "write e.g. [13k, 100k]")
        return ()
    names = list(params or ())
    found: list[str] = []
    for i, scale in enumerate(value):
        path = f"scales[{i}]"
        if not isinstance(scale, str):
            p.add(path, f"expected a scale name, got {show(scale)}", "write the name as a string")
        elif params is not None and scale not in params:
            p.add(path, f"{show(scale)} is not a scale of family {family_name!r}",
                  f"{did_you_mean(scale, names)}use one of {', '.join(names)}")
        elif scale in found:
            p.add(path, f"{show(scale)} is listed twice", "remove the repeat")
        else:
            found.append(scale)
    if params is None:
        return tuple(found)
    return tuple(sorted(found, key=lambda scale: (params[scale], names.index(scale))))


def target(
    p: Problems, value: object, params: Mapping[str, int] | None, chosen: tuple[str, ...]
) -> tuple[int, str | None]:
    """Target N and its scale name (None for a parameter count); by default the family's largest scale."""
    if params is None or not chosen:
        return 0, None
    largest = chosen[-1]
    if value is None:
        value = max(params, key=lambda scale: params[scale])
        if params[value] <= params[largest]:
            p.add("target", f"required when scales include the family's largest ({largest})",
                  f"add target: a parameter count above {params[largest]}")
            return 0, None
    if isinstance(value, str) and value in params:
        count, name = params[value], value
    elif (number := p.number("target", value, positive=True)) is not None:
        count, name = round(number), None
    else:
        return 0, None
    if count <= params[largest]:
        p.add("target", f"must be larger than the largest scale {largest} "
              f"({params[largest]} params; got {count})", "use a larger scale or parameter count")
    return count, name


def budget(
    p: Problems, value: object, chosen: tuple[str, ...], params: Mapping[str, int] | None
) -> dict[str, int]:
    """Token budget D of each scale: one fixed count, or tokens_per_param × N rounded."""
    entries = p.mapping("budget", value, ("tokens_per_param", "tokens"))
    if entries is None:
        return {}
    if len(entries) != 1:
        p.add("budget", "give exactly one of tokens_per_param and tokens",
              "e.g. budget: {tokens_per_param: 20}")
        return {}
    if "tokens" in entries:
        tokens = p.integer("budget.tokens", entries["tokens"], minimum=1, maximum=MAX_TOKENS)
        return {} if tokens is None else dict.fromkeys(chosen, tokens)
    ratio = p.number("budget.tokens_per_param", entries["tokens_per_param"], positive=True)
    if ratio is None or params is None:
        return {}
    for scale in chosen:
        if not 0.5 <= ratio * params[scale] <= MAX_TOKENS:
            p.add("budget.tokens_per_param", f"gives {ratio * params[scale]:.3g} tokens at scale {scale} "
                  f"({params[scale]} params)", f"keep every budget from 1 to {MAX_TOKENS:.0e} tokens")
            return {}
    return {scale: max(1, round(ratio * params[scale])) for scale in chosen}


def trials(p: Problems, value: object, chosen: tuple[str, ...], known: bool) -> dict[str, int]:
    """Trials at each scale: one count for all, or a mapping scale → count naming
    every scale (checked only when the family's scales are `known`)."""
    if not isinstance(value, Mapping):
        count = p.integer("trials_per_scale", value, minimum=1, maximum=MAX_TRIALS)
        return {} if count is None else dict.fromkeys(chosen, count)
    if not known or not chosen:
        return {}
    counts = p.mapping("trials_per_scale", value, chosen, required=chosen) or {}
    checked = {scale: p.integer(f"trials_per_scale.{scale}", count, minimum=1, maximum=MAX_TRIALS)
               for scale, count in counts.items()}
    return {scale: count for scale, count in checked.items() if count is not None}


def train_settings(p: Problems, path: str, entries: Mapping[str, object]) -> dict[str, object]:
    """The training settings among `entries`, each checked by its type and by
    `TrainConfig` on its own, so that every bad one is reported."""
    settings: dict[str, object] = {}
    for key in TRAIN_KEYS:
        if key not in entries:
            continue
        value = p.setting(f"{path}.{key}", entries[key], _TRAIN_HINTS[key])
        if value is INVALID:
            continue
        try:
            TrainConfig(lr=1.0, batch_size=1, tokens=1, **cast(dict[str, Any], {key: value}))
            settings[key] = value
        except ValueError as error:
            p.add(f"{path}.{key}", f"{show(value)} is invalid", str(error).partition(" is invalid: ")[2])
    return settings


def output_dir(p: Problems, value: object, root: Path | None) -> Path | None:
    """The output folder, absolute: a relative one is taken from `root` (default: the current directory)."""
    output = p.string("output", value, fix="give a folder path")
    return None if output is None else Path(os.path.abspath((root or Path.cwd()) / output))


class _DuplicateKey(yaml.constructor.ConstructorError):
    """A key repeated in one mapping (PyYAML would silently keep the last)."""


class _Loader(yaml.SafeLoader):
    """`yaml.SafeLoader` (plain data, never Python objects) that rejects a key
    repeated in one mapping instead of keeping the last."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        first_line: dict[tuple[str, str], int] = {}
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                key = (key_node.tag, key_node.value)
                if key in first_line:
                    raise _DuplicateKey(
                        None, None, f"duplicate key {key_node.value!r} (first at line {first_line[key]})",
                        key_node.start_mark,
                    )
                first_line[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep)


def read_yaml(raw: bytes, source: str | Path) -> object:
    """The YAML document in `raw` (UTF-8) as plain data, or `SpecError` naming `source`."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        problem = f"not UTF-8 text (bad byte at offset {error.start}); save the file as UTF-8"
        raise SpecError([problem], source) from None
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        what = f"{error.problem} ({error.context})" if error.context else str(error.problem)
        if isinstance(error, _DuplicateKey):
            fix = "keep one of them"
        elif isinstance(error, yaml.constructor.ConstructorError):
            fix = "write plain YAML data, without tags such as !!python/..."
        else:
            fix = "fix the YAML"
        raise SpecError([f"{where}{what}; {fix}"], source) from None
    except (yaml.YAMLError, ValueError, TypeError, OverflowError, RecursionError) as error:
        detail = " ".join(str(error).split())[:120]
        problem = f"not a valid YAML document ({type(error).__name__}: {detail}); fix the YAML"
        raise SpecError([problem], source) from None
