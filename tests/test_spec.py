"""Study files: a valid one parses to the expected spec; every bad one, hostile
ones included, ends in one SpecError that names each field at fault."""

from __future__ import annotations

import copy
import json
import pickle
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from dotted_paths import DELETE, edited
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hpo.search.independent import Independent
from hpo.search.scale_aware import ScaleAware
from hpo.study.spec import (
    Fidelity,
    LogRange,
    PowerOfTwoRange,
    Resources,
    SearchSpace,
    SpecError,
    Storage,
    WeightDecayRange,
    load_spec,
    parse_spec,
)
from models import MLPFamily, get_family

STUDIES = sorted((Path(__file__).parents[1] / "studies").glob("*.yaml"))
GPT = get_family("gpt", seq_len=64)

FULL = """
name: quickstart
family: gpt
family_options: {seq_len: 64}
scales: [336k, 13k, 100k]
target: 98M
budget: {tokens_per_param: 20}
space:
  lr: {low: 1.0e-4, high: 3.0e-2}
  batch_size: {low: 16, high: 128}
  weight_decay: {low: 1.0e-3, high: 0.3, zero: true}
train: {schedule: cosine, warmup_fraction: 0.05}
variants:
  baseline: {}
  no_wd: {weight_decay: 0}
  wsd: {schedule: wsd, lr: {low: 1.0e-3, high: 1.0e-2}}
trials_per_scale: 12
fidelity: {grace_tokens: 50000, reduction_factor: 3, eval_every_tokens: 25000}
search: independent
max_concurrent: 2
resources: {cpu: 1, gpu: 0}
seed: 0
output: runs/quickstart
"""


def valid() -> dict[str, object]:
    """A fresh copy of the full example as data."""
    return yaml.safe_load(FULL)


VALID = valid()


def minimal() -> dict[str, object]:
    """The fewest fields a study needs (family mlp)."""
    return {"name": "mini", "family": "mlp", "scales": ["w16", "w8"], "budget": {"tokens": 1000},
            "space": {"lr": 0.01}}


def errors_of(data: object) -> tuple[str, ...]:
    with pytest.raises(SpecError) as caught:
        parse_spec(data, output_root=Path("/tmp/root"))
    return caught.value.errors


def with_change(path: str, value: object) -> dict[str, object]:
    """The full example with the value at dotted `path` replaced (or deleted when `value` is DELETE)."""
    return edited(valid(), {path: value})


def test_the_full_example_parses_to_the_expected_spec() -> None:
    spec = parse_spec(valid(), output_root=Path("/tmp/root"))

    assert spec.name == "quickstart" and spec.family == "gpt" and spec.family_options == {"seq_len": 64}
    assert spec.scales == ("13k", "100k", "336k")  # smallest first
    assert spec.params("100k") == GPT.param_count("100k").non_embedding == 100_096
    assert spec.tokens("13k") == round(20 * GPT.param_count("13k").non_embedding)
    assert spec.budget_tokens == {s: round(20 * GPT.param_count(s).non_embedding) for s in spec.scales}
    assert (spec.target_params, spec.target_scale) == (GPT.param_count("98M").non_embedding, "98M")
    assert spec.trials_per_scale == dict.fromkeys(spec.scales, 12)
    assert spec.fidelity == Fidelity(grace_tokens=50_000, reduction_factor=3, eval_every_tokens=25_000)
    assert spec.resources == Resources(cpu=1.0, gpu=0.0)
    assert (spec.search, spec.max_concurrent, spec.seed) == (Independent(), 2, 0)
    assert spec.output_dir == Path("/tmp/root/runs/quickstart")
    assert spec.storage == Storage("sqlite:////tmp/root/runs/quickstart/optuna.db",
                                   "sqlite:////tmp/root/runs/quickstart/mlflow.db")
    study_space = SearchSpace(
        LogRange(1e-4, 3e-2), PowerOfTwoRange(16, 128), WeightDecayRange(1e-3, 0.3, True)
    )
    assert [v.name for v in spec.variants] == ["baseline", "no_wd", "wsd"]
    assert spec.variant("baseline").space == study_space
    assert spec.variant("baseline").train == {"schedule": "cosine", "warmup_fraction": 0.05}
    assert spec.variant("no_wd").space.weight_decay == 0.0
    assert spec.variant("no_wd").space.lr == study_space.lr
    assert spec.variant("wsd").space.lr == LogRange(1e-3, 1e-2)
    assert spec.variant("wsd").train == {"schedule": "wsd", "warmup_fraction": 0.05}
    assert pickle.loads(pickle.dumps(spec)) == spec  # Ray ships it to workers


def test_left_out_fields_take_their_documented_defaults(tmp_path: Path) -> None:
    spec = parse_spec(minimal(), output_root=tmp_path)

    assert spec.scales == ("w8", "w16")
    assert (spec.target_scale, spec.target_params) == ("w512", MLPFamily().param_count("w512").non_embedding)
    assert spec.budget_tokens == {"w8": 1000, "w16": 1000}
    [variant] = spec.variants
    assert (variant.name, variant.space, variant.train) == ("default", SearchSpace(0.01, 32, 0.0), {})
    assert spec.trials_per_scale == {"w8": 20, "w16": 20}
    assert spec.fidelity == Fidelity(grace_tokens=1000 // 9, reduction_factor=3, eval_every_tokens=1000 // 9)
    assert (spec.max_concurrent, spec.seed) == (1, 0)
    assert spec.search == ScaleAware(safety_factor=2.0, trials_share=0.4, explore_share=0.25, min_trials=4,
                                     first_scales_factor=3.0, design_cost=1.5) == ScaleAware()
    assert spec.target_tokens == 1000
    assert spec.resources == Resources(cpu=1.0, gpu=0.0)
    assert spec.output_dir == tmp_path / "runs" / "mini"
    assert spec.storage.optuna == f"sqlite:///{tmp_path}/runs/mini/optuna.db"
    assert spec.source is None
    assert not (tmp_path / "runs").exists()  # parsing creates nothing


def test_search_settings_given_are_kept_and_those_left_out_take_the_transfer_defaults() -> None:
    search = {"mode": "scale_aware", "design_cost": 0, "first_scales_factor": 1, "safety_factor": "3e0"}
    spec = parse_spec(minimal() | {"search": search}, output_root=Path("/tmp"))

    assert spec.search == replace(ScaleAware(), design_cost=0.0, first_scales_factor=1.0, safety_factor=3.0)


def test_empty_optional_sections_count_as_left_out() -> None:
    data = minimal() | {"train": None, "storage": None, "variants": None, "fidelity": None, "seed": None}
    spec = parse_spec(data, output_root=Path("/tmp"))
    assert [v.name for v in spec.variants] == ["default"] and spec.seed == 0


@pytest.mark.parametrize("path", STUDIES, ids=lambda path: path.name)
def test_every_study_file_parses(path: Path) -> None:
    spec = load_spec(path)
    assert spec.source == path.absolute() and spec.output_dir.is_absolute()
    assert list(spec.scales) == sorted(spec.scales, key=spec.params)
    assert all(spec.tokens(scale) > spec.fidelity.grace_tokens for scale in spec.scales)


def test_the_quickstart_is_the_study_the_docs_describe() -> None:
    spec = load_spec(Path(__file__).parents[1] / "studies" / "quickstart.yaml")
    assert spec.scales == ("13k", "100k", "336k") and spec.target_scale == "793k"
    assert set(spec.budget_tokens.values()) == {200_000}
    assert [v.name for v in spec.variants] == ["baseline"]
    assert set(spec.trials_per_scale.values()) == {16} and spec.max_concurrent == 2
    assert isinstance(spec.search, ScaleAware) and spec.search.trials_share == 0.5


def test_yaml_1_2_floats_that_pyyaml_reads_as_strings_are_numbers() -> None:
    spec = parse_spec(yaml.safe_load(FULL.replace("target: 98M", "target: 1e9").replace("1.0e-4", "1e-4")))
    assert spec.target_params == 1_000_000_000 and spec.target_scale is None
    assert spec.variant("baseline").space.lr == LogRange(1e-4, 3e-2)
    assert parse_spec(with_change("budget", {"tokens": "2.0e6"})).tokens("13k") == 2_000_000


BAD = [
    # (field changed, new value, text the error must contain)
    ("name", "my study", "name: 'my study' is not valid"),
    ("name", "..", "name: '..' is not valid"),
    ("name", DELETE, "name: required but missing"),
    ("family", "gtp", "family: 'gtp' is not a known family; did you mean 'gpt'?"),
    ("family", "no_such_module:Family", "family: cannot build family"),
    ("family", "os.path", "family: 'os.path' is not a known family"),
    ("family", "a b:c", "family: 'a b:c' is not an import path"),
    ("family_options", {"seq_len": 0}, "family_options: cannot build family 'gpt'"),
    ("family_options", {"colour": 1}, "family_options: cannot build family 'gpt'"),
    ("family_options", {"seq len": 1}, "family_options.'seq len': is not an option name"),
    ("scales", [], "scales: expected a non-empty list"),
    ("scales", "13k", "scales: expected a non-empty list"),
    ("scales", ["13k", "100k", "foo"],
     "scales[2]: 'foo' is not a scale of family 'gpt'; use one of 13k, 100k, 336k, 793k, 2.7M"),
    ("scales", ["13k", "13k"], "scales[1]: '13k' is listed twice"),
    ("scales", [13], "scales[0]: expected a scale name, got 13"),
    ("target", "336k", "target: must be larger than the largest scale 336k"),
    ("target", 1000, "target: must be larger than the largest scale 336k"),
    ("target", "big", "target: expected a number, got 'big'"),
    ("target", float("inf"), "target: must be a finite number"),
    ("budget", {}, "budget: give exactly one of tokens_per_param and tokens"),
    ("budget", {"tokens": 1, "tokens_per_param": 20}, "budget: give exactly one"),
    ("budget", {"tokens": 0}, "budget.tokens: must be >= 1"),
    ("budget", {"tokens": -5}, "budget.tokens: must be >= 1"),
    ("budget", {"tokens": 1e14}, "budget.tokens: must be <= 10000000000000"),
    ("budget", {"tokens": 2.5}, "budget.tokens: expected an integer, got 2.5"),
    ("budget", {"tokens": True}, "budget.tokens: expected an integer, got True"),
    ("budget", {"tokens": "many"}, "budget.tokens: expected a number, got 'many'"),
    ("budget", {"tokens_per_param": 1e9}, "budget.tokens_per_param: gives 1.28e+13 tokens at scale 13k"),
    ("budget", {"tokens_per_param": 0}, "budget.tokens_per_param: must be > 0"),
    ("budget", {"tokens_per_param": float("nan")}, "budget.tokens_per_param: must be a finite number"),
    ("budget", {"token": 1}, "budget.token: unknown key; did you mean 'tokens'?"),
    ("space", DELETE, "space: required but missing"),
    ("space.lr", DELETE, "space.lr: required but missing"),
    ("space.lr", {"low": 0.1, "high": 0.01},
     "space.lr.low: must be below space.lr.high (got 0.1 >= 0.01); swap them"),
    ("space.lr", {"low": 0.1, "high": 0.1}, "space.lr.low: must be below space.lr.high"),
    ("space.lr", {"low": 0, "high": 0.1}, "space.lr.low: must be > 0"),
    ("space.lr", {"low": 0.01}, "space.lr.high: required but missing"),
    ("space.lr", -0.1, "space.lr: must be > 0"),
    ("space.lr", "fast", "space.lr: expected a number, got 'fast'"),
    ("space.lr", None, "space.lr: expected a number, got None"),
    ("space.batch_size", {"low": 48, "high": 128}, "space.batch_size.low: must be a power of two (got 48)"),
    ("space.batch_size", {"low": 64, "high": 16},
     "space.batch_size.low: must not exceed space.batch_size.high (got 64 > 16); swap them"),
    ("space.batch_size", {"low": 0, "high": 16}, "space.batch_size.low: must be >= 1"),
    ("space.batch_size", 2**30, "space.batch_size: must be <= 1048576"),
    ("space.batch_size", 3.5, "space.batch_size: expected an integer"),
    ("space.weight_decay", {"low": 0, "high": 0.1}, "space.weight_decay.low: must be > 0 in a log range"),
    ("space.weight_decay", {"low": 1e-3, "high": 0.1, "zero": "yes"},
     "space.weight_decay.zero: expected true or false, got 'yes'"),
    ("space.weight_decay", -1, "space.weight_decay: must be >= 0"),
    ("space.momentum", 0.9, "space.momentum: unknown key; use one of lr, batch_size, weight_decay"),
    ("train", {"lr": 0.1}, "train.lr: is not a training setting; set space.lr instead"),
    ("train", {"tokens": 5}, "train.tokens: is not a training setting; set budget instead"),
    ("train", {"schedule": "cosin"}, "train.schedule: 'cosin' is not allowed; did you mean 'cosine'?"),
    ("train", {"warmup_fraction": 1.5}, "train.warmup_fraction: 1.5 is invalid; use a fraction in [0, 1)"),
    ("train", {"grad_clip": "none"}, "train.grad_clip: expected a number"),
    ("train", {"betas": [0.9]}, "train.betas: expected a list of 2 values"),
    ("train", {"decay_matrices_only": 1}, "train.decay_matrices_only: expected true or false"),
    ("train", {"warmup": 0.1}, "train.warmup: unknown key; did you mean 'warmup_fraction'?"),
    ("train", [], "train: expected a mapping"),
    ("variants", {}, "variants: expected a mapping of variant names to overrides"),
    ("variants", ["a"], "variants: expected a mapping of variant names to overrides"),
    ("variants", {"no wd": {}}, "variants.'no wd': variant name 'no wd' is not valid"),
    ("variants", {"no_wd": {"colour": 1}},
     "variants.no_wd.colour: unknown key; use one of lr, batch_size, weight_decay, schedule"),
    ("variants", {"no_wd": {"weight_decy": 0}},
     "variants.no_wd.weight_decy: unknown key; did you mean 'weight_decay'?"),
    ("variants", {"no_wd": {"weight_decay": -1}}, "variants.no_wd.weight_decay: must be >= 0"),
    ("variants", {"x": {"seed": 1}}, "variants.x.seed: is not a training setting; set seed instead"),
    ("variants", {"x": 3}, "variants.x: expected a mapping"),
    ("trials_per_scale", 0, "trials_per_scale: must be >= 1"),
    ("trials_per_scale", True, "trials_per_scale: expected an integer, got True"),
    ("trials_per_scale", {"13k": 4, "100k": 4}, "trials_per_scale.336k: required but missing"),
    ("trials_per_scale", {"13k": 4, "100k": 4, "336k": 4, "98M": 1}, "trials_per_scale.98M: unknown key"),
    ("fidelity.grace_tokens", 10**9, "fidelity.grace_tokens: must be below every scale's budget"),
    ("fidelity.grace_tokens", 0, "fidelity.grace_tokens: must be >= 1"),
    ("fidelity.reduction_factor", 1, "fidelity.reduction_factor: must be >= 2"),
    ("fidelity.eval_every_tokens", "often", "fidelity.eval_every_tokens: expected a number"),
    ("fidelity.grace", 1, "fidelity.grace: unknown key; did you mean 'grace_tokens'?"),
    ("search", "scale_awar", "search: 'scale_awar' is not allowed; did you mean 'scale_aware'?"),
    ("search", {"mode": "grid"}, "search.mode: 'grid' is not allowed; use one of scale_aware, independent"),
    ("search", {"safety_factor": 0.5}, "search.safety_factor: must be in [1, 100]"),
    ("search", {"trials_share": 0}, "search.trials_share: must be in (0, 1]"),
    ("search", {"min_trials": 1}, "search.min_trials: must be >= 2"),
    ("search", {"first_scales_factor": 0.5}, "search.first_scales_factor: must be in [1, 100]"),
    ("search", {"design_cost": -1}, "search.design_cost: must be in [0, 1000] (got -1); use e.g. 1.5"),
    ("search", {"design_cost": 5000}, "search.design_cost: must be in [0, 1000] (got 5000); use e.g. 1.5"),
    ("search", {"design_cost": "cheap"}, "search.design_cost: expected a number"),
    ("search", {"probe_margin": 1}, "search.probe_margin: must be in [0, 1) (got 1); use e.g. 0.01"),
    ("search", {"widen": 2}, "search.widen: unknown key"),
    ("max_concurrent", 0, "max_concurrent: must be >= 1"),
    ("resources", {"cpu": 0}, "resources.cpu: must be > 0"),
    ("resources", {"gpu": -1}, "resources.gpu: must be >= 0"),
    ("resources", {"gpus": 1}, "resources.gpus: unknown key; did you mean 'gpu'?"),
    ("seed", -1, "seed: must be >= 0"),
    ("seed", 2**40, "seed: must be <= 4294967295"),
    ("seed", "0x1", "seed: expected a number"),
    ("output", "", "output: '' is not valid"),
    ("output", 5, "output: expected a string"),
    ("storage", {"optuna": "not a url"}, "storage.optuna: 'not a url' is not valid"),
    ("storage", {"mlflow": None}, "storage.mlflow: expected a string"),
    ("storage", {"wandb": "x"}, "storage.wandb: unknown key"),
    ("colour", "blue", "colour: unknown key; use one of name, family"),
    ("seeds", 1, "seeds: unknown key; did you mean 'seed'?"),
]


@pytest.mark.parametrize(("path", "value", "expected"), BAD, ids=[f"{p}={v!r}"[:60] for p, v, _ in BAD])
def test_a_bad_field_gives_a_spec_error_naming_its_path(path: str, value: object, expected: str) -> None:
    errors = errors_of(with_change(path, value))
    assert any(expected in error for error in errors), errors


@pytest.mark.parametrize(
    ("data", "expected"),
    [(None, "study: the study is empty"), ([1, 2], "study: expected a mapping, got [1, 2]"),
     ("name: x", "study: expected a mapping"), ({}, "name: required but missing")],
)
def test_a_study_that_is_not_a_mapping_is_a_spec_error(data: object, expected: str) -> None:
    assert expected in errors_of(data)[0]


def test_every_error_is_reported_at_once_on_one_line() -> None:
    data = valid()
    data["space"]["lr"] = {"low": 0.1, "high": 0.01}
    data["scales"] = ["13k", "foo"]
    data["seed"] = -1
    data["variants"]["no_wd"]["colour"] = 1
    del data["budget"]
    with pytest.raises(SpecError) as caught:
        parse_spec(data)
    error = caught.value
    fields = [message.split(":")[0] for message in error.errors]
    assert fields == ["budget", "scales[1]", "space.lr.low", "variants.no_wd.colour", "seed"]
    assert str(error) == "; ".join(error.errors) and "\n" not in str(error)
    assert isinstance(error, ValueError)


def test_a_spec_error_survives_pickling_with_its_errors() -> None:
    error = SpecError(["a: bad; fix", "b: worse; fix"], "study.yaml")
    copy_ = pickle.loads(pickle.dumps(error))
    assert (copy_.errors, str(copy_)) == (error.errors, "study.yaml: a: bad; fix; b: worse; fix")


def test_a_family_can_be_named_by_import_path() -> None:
    spec = parse_spec(minimal() | {"family": "models.mlp:MLPFamily", "family_options": {"widths": [4, 8, 16]},
                                   "scales": ["w4", "w8"]})
    assert spec.target_scale == "w16" and isinstance(spec.load_family(), MLPFamily)


def test_the_target_is_required_when_the_ladder_reaches_the_familys_largest_scale() -> None:
    errors = errors_of(minimal() | {"scales": ["w8", "w512"]})
    assert errors == ("target: required when scales include the family's largest (w512); "
                      f"add target: a parameter count above {MLPFamily().param_count('w512').non_embedding}",)


def test_trials_per_scale_can_differ_by_scale() -> None:
    spec = parse_spec(with_change("trials_per_scale", {"13k": 12, "100k": 8, "336k": 4}))
    assert spec.trials_per_scale == {"13k": 12, "100k": 8, "336k": 4}


def test_output_is_absolute_and_storage_urls_are_kept_but_masked_in_to_dict() -> None:
    data = with_change("output", "/data/hpo/x")
    data["storage"] = {"optuna": "postgresql+psycopg2://hpo:s3cr3t@db:5432/hpo",
                       "mlflow": "https://user:pa:ss@mlflow.example?token=1&password=hunter2"}
    spec = parse_spec(data)
    assert spec.output_dir == Path("/data/hpo/x") and spec.storage.optuna.endswith("hpo:s3cr3t@db:5432/hpo")
    logged = spec.to_dict()
    assert logged["storage"] == {"optuna": "postgresql+psycopg2://hpo:***@db:5432/hpo",
                                 "mlflow": "https://user:***@mlflow.example?token=1&password=***",
                                 "tracker": "mlflow"}
    assert "s3cr3t" not in json.dumps(logged) and "hunter2" not in json.dumps(logged)
    assert logged["budget_tokens"] == dict(spec.budget_tokens) and logged["output_dir"] == "/data/hpo/x"
    assert logged["variants"]["no_wd"]["space"]["weight_decay"] == 0.0


def test_lookups_name_the_valid_choices() -> None:
    spec = parse_spec(valid())
    with pytest.raises(ValueError, match="scale '98M' is not in study 'quickstart': use one of 13k, 100k"):
        spec.tokens("98M")
    with pytest.raises(ValueError, match="variant 'nowd' is not in study 'quickstart': use one of baseline"):
        spec.variant("nowd")


def test_ranges_reject_invalid_bounds_and_list_batch_size_choices() -> None:
    assert PowerOfTwoRange(16, 128).choices == (16, 32, 64, 128)
    assert PowerOfTwoRange(1, 1).choices == (1,)
    for make in (lambda: LogRange(0.1, 0.01), lambda: LogRange(0, 1), lambda: PowerOfTwoRange(3, 8),
                 lambda: PowerOfTwoRange(8, 4), lambda: WeightDecayRange(-1, 1, True)):
        with pytest.raises(ValueError, match="is invalid"):
            make()


HOSTILE_FILES = {
    "not UTF-8": (b"name: \xff\xfe\n", "not UTF-8 text"),
    "a python tag": (b"name: !!python/object/apply:os.system ['touch PWNED']\n", "line 1, column 7: could"),
    "a list": (b"- a\n- b\n", "study: expected a mapping"),
    "empty": (b"", "study: the study is empty"),
    "broken YAML": (b"name: [a\n  b: c\n", "line 2, column 4: expected ',' or ']'"),
    "a repeated key": (b"name: a\nseed: 1\nname: b\n", "line 3, column 1: duplicate key 'name' (first at"),
    "deep nesting": (b"[" * 1000, "fix the YAML"),
    "a huge integer": (b"seed: " + b"9" * 5000 + b"\n", "not a valid YAML document"),
    "a NUL byte": (b"name: a\x00\n", "not a valid YAML document"),
    "two documents": (b"a: 1\n---\nb: 2\n", "expected a single document"),
    "too many bytes": (b"#" * (2**20 + 1), "larger than 1048576 bytes"),
}


@pytest.mark.parametrize(("raw", "expected"), HOSTILE_FILES.values(), ids=HOSTILE_FILES.keys())
def test_a_hostile_file_is_a_spec_error_naming_the_file(
    raw: bytes, expected: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "study.yaml"
    path.write_bytes(raw)
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    assert str(caught.value).startswith(f"{path}: ") and expected in str(caught.value)
    assert "\n" not in str(caught.value) and not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize("name", ["missing.yaml", "."])
def test_a_path_that_is_not_a_readable_file_is_a_spec_error(name: str, tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="cannot read the study file"):
        load_spec(tmp_path / name)


NEAR_VALID = st.sampled_from(
    ["13k", "w8", "98M", "1e6", "-1", ".nan", "gpt", "mlp", "cosine", "models.mlp:MLPFamily"]
)
KEYS = st.text(max_size=8) | st.sampled_from(["low", "high", "zero", "tokens", "lr", "schedule", "seq_len"])
JSON_LIKE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12) | NEAR_VALID,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=8,
)
"""Random JSON-like values, with some that are nearly valid in a study."""


def _paths(node: object, prefix: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    """Every path to a value inside nested dicts and lists."""
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    paths = []
    for key, child in children:
        paths.append((*prefix, key))
        paths.extend(_paths(child, (*prefix, key)))
    return paths


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_any_mutation_of_a_valid_study_parses_or_raises_spec_error(data: st.DataObject) -> None:
    study = copy.deepcopy(VALID)
    for _ in range(data.draw(st.integers(1, 4))):
        paths = _paths(study)
        if not paths:
            break
        *parents, last = data.draw(st.sampled_from(paths))
        node = study
        for key in parents:
            node = node[key]
        action = data.draw(st.sampled_from(["delete", "replace", "add"]))
        if action == "delete":
            del node[last]
        elif action == "replace":
            node[last] = data.draw(JSON_LIKE)
        elif isinstance(node, dict):
            node[data.draw(st.text(max_size=8))] = data.draw(JSON_LIKE)
    try:
        parse_spec(study, output_root=Path("/tmp"))
    except SpecError as error:
        assert error.errors and "\n" not in str(error)


YAML_PIECES = st.sampled_from([
    "name: ", "family: gpt", "scales: [13k, 100k]", "budget: {tokens: 1e5}", "space:", "  lr: 0.01",
    "\n", "  ", "- ", "{", "}", "[", "]", ": ", ", ", "&a ", "*a", "<<: ", "!!python/object/apply:os.system",
    "!!binary ", "? ", "'", '"', "#", "1e999", "-.inf", "---", "...", "%YAML 1.2", "\t", "\x00", "é",
])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=200) | st.lists(YAML_PIECES, max_size=30).map("".join).map(str.encode))
def test_any_bytes_parse_or_raise_spec_error(raw: bytes, tmp_path: Path) -> None:
    path = tmp_path / "study.yaml"
    path.write_bytes(raw)
    try:
        load_spec(path, output_root=tmp_path)
    except SpecError as error:
        assert error.errors and "\n" not in str(error)



def test_space_ranges_give_fixed_values_as_points_and_exact_zero_weight_decay_as_a_zero_low() -> None:
    space = SearchSpace(lr=LogRange(1e-4, 3e-2), batch_size=PowerOfTwoRange(8, 1024),
                        weight_decay=WeightDecayRange(1e-2, 0.3, zero=True))
    assert space.ranges() == {"lr": (1e-4, 3e-2), "batch_size": (8.0, 1024.0), "weight_decay": (0.0, 0.3)}
    fixed = SearchSpace(lr=LogRange(1e-4, 3e-2), batch_size=64, weight_decay=0.1)
    assert fixed.ranges()["batch_size"] == (64.0, 64.0) and fixed.ranges()["weight_decay"] == (0.1, 0.1)


def test_hpo_analyze_checks_against_the_variants_spaces_joined() -> None:
    """baseline searches lr 1e-4..3e-2 and wd 0 or 1e-3..0.3; no_wd fixes wd at 0; wsd searches lr
    1e-3..1e-2: a recommendation is out of range only outside all of them."""

    spec = parse_spec(valid())
    expected = {"lr": (1e-4, 3e-2), "batch_size": (16.0, 128.0), "weight_decay": (0.0, 0.3)}
    assert spec.searched_ranges() == expected


def test_a_trial_that_cannot_fit_in_memory_is_refused_without_building_it() -> None:
    huge_teacher = minimal() | {"family_options": {"teacher_width": 100_000_000}}
    errors = errors_of(huge_teacher)
    assert [error.split(":")[0] for error in errors] == ["scales.w8", "scales.w16"]
    assert all("a trial needs about 35.5 PiB" in error and "this machine has" in error for error in errors)
    huge_scale = minimal() | {"family_options": {"widths": [8, 1_000_000]}, "scales": ["w1000000"],
                              "target": 1e13}
    (error,) = errors_of(huge_scale)
    assert error.startswith("scales.w1000000: a trial needs about 14.6 TiB at batch size 32")


def test_the_memory_a_worker_offers_bounds_each_trial() -> None:
    small = minimal() | {"resources": {"memory_gb": 1e-6}}
    assert all("more than the 1.05 KiB set in resources.memory_gb" in error for error in errors_of(small))
    assert parse_spec(minimal() | {"resources": {"memory_gb": 2}}).resources.memory_bytes() == 2 * 2**30
    assert errors_of(minimal() | {"resources": {"memory_gb": 0}}) == (
        "resources.memory_gb: must be > 0 (got 0); use a positive number",)
