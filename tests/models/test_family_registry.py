from __future__ import annotations

import pytest

from models import MLPFamily, family_names, get_family, register_family


def test_builtin_families_are_found_by_name() -> None:
    assert {"gpt", "mlp"} <= set(family_names())
    assert isinstance(get_family("mlp", widths=(4, 8)), MLPFamily)


def test_a_users_family_is_found_by_import_path() -> None:
    family = get_family("models.mlp:MLPFamily", widths=(4,))
    assert family.scales == ("w4",)


def test_a_registered_family_is_found_by_its_name() -> None:
    register_family("tiny_mlp", lambda: MLPFamily(widths=(2, 4)))
    assert get_family("tiny_mlp").scales == ("w2", "w4")


def test_unknown_family_raises_an_error_naming_it_and_the_choices() -> None:
    with pytest.raises(ValueError, match="family 'transformerxl' is unknown: use one of .*gpt.*mlp"):
        get_family("transformerxl")


@pytest.mark.parametrize(
    "path", ["no_such_module:Family", "models.mlp:NoSuchFamily", "models.family:family_names"]
)
def test_bad_import_paths_raise_an_error_naming_the_path(path: str) -> None:
    with pytest.raises(ValueError, match=f"family '{path}'"):
        get_family(path)


