"""The `ModelFamily` interface and the registry that finds a family by name.

A model family is a ladder of model sizes over one data source. Everything
`hpo` needs from a family is here: the ordered scale names, exact parameter
counts, a way to build the model at a scale, and batches of data. The model's
``forward(inputs, targets)`` returns the mean loss of the batch, so one
training loop (`models.training`) serves every family.

A user's own family plugs in without touching ``hpo/``: subclass
`ModelFamily` and name it by import path, ``"my_package.my_module:MyFamily"``,
wherever a family name is accepted, or call `register_family`.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Literal, NamedTuple, TypeAlias

if TYPE_CHECKING:  # torch loads only where a model is built or trained, never to read a ladder
    import torch
    from torch import nn

Split = Literal["train", "val"]
Batch: TypeAlias = "tuple[torch.Tensor, torch.Tensor]"


class ParamCount(NamedTuple):
    """Exact parameter counts of one model: ``total`` counts every trainable
    parameter once (tied weights once); ``non_embedding`` leaves out token and
    position embeddings, the count scaling laws are usually fitted against."""

    total: int
    non_embedding: int


class ModelFamily(ABC):
    """A ladder of model sizes trained on one data source.

    Units: a *token* is one prediction target. For language models it is one
    token of the sequence; for a regression family it is one example, so
    ``tokens_per_example`` is the sequence length or 1.
    """

    name: str
    tokens_per_example: int

    @property
    @abstractmethod
    def scales(self) -> tuple[str, ...]:
        """Scale names, smallest model first."""

    @abstractmethod
    def param_count(self, scale: str) -> ParamCount:
        """Exact parameter counts of the model `build(scale, ...)` returns."""

    @abstractmethod
    def build(self, scale: str, seed: int) -> nn.Module:
        """A freshly initialised model; the same seed gives the same weights."""

    @abstractmethod
    def batches(self, split: Split, batch_size: int, seed: int) -> Iterator[Batch]:
        """Batches of ``(inputs, targets)`` on the CPU.

        ``"train"`` is an endless stream determined by `seed`. ``"val"`` is a
        finite, fixed set of examples, the same for every seed and batch size,
        so that every trial's eval loss is measured on the same data.
        """

    def width(self, scale: str) -> int:
        """Width of the model at `scale` (channels: ``d_model`` for a transformer,
        hidden units for a perceptron), the width that ``TrainConfig.lr_width_exponent``
        scales the learning rate by. A family that has no single width leaves
        this out; a run that asks for width scaling then raises `ValueError`."""
        raise ValueError(
            f"family {self.name!r} does not define width(scale), which lr_width_exponent needs: "
            "implement ModelFamily.width or leave lr_width_exponent at 0"
        )

    def trial_memory(self, scale: str, batch_size: int) -> int:
        """Bytes one training run at `scale` with `batch_size` needs, estimated without building the
        model: 16 bytes per parameter (fp32 weights, gradients and AdamW's two moments) plus
        `activation_memory`. An estimate to refuse what cannot fit, not a measurement."""
        return 16 * self.param_count(scale).total + self.activation_memory(scale, batch_size)

    def activation_memory(self, scale: str, batch_size: int) -> int:
        """Bytes of the activations one training step keeps for its backward pass, estimated; 0 for a
        family that does not say."""
        return 0

    def train_flops(self, scale: str, tokens: int) -> float:
        """Training compute in FLOPs, ``6 · N · D`` with N the non-embedding
        parameters and D the tokens trained on (forward + backward)."""
        return 6.0 * self.param_count(scale).non_embedding * tokens

    def check_scale(self, scale: str) -> None:
        """Raise `ValueError` naming `scale` and the valid names if unknown."""
        if scale not in self.scales:
            raise ValueError(
                f"scale {scale!r} is not a scale of family {self.name!r}: "
                f"use one of {', '.join(self.scales)}"
            )


FamilyFactory = Callable[..., ModelFamily]
_REGISTRY: dict[str, FamilyFactory | str] = {}


def register_family(name: str, factory: FamilyFactory | str) -> None:
    """Make `factory(**options)` available as family `name`; `factory` may be an import path
    ``"module:attr"``, imported on first use (so naming a family loads nothing)."""
    _REGISTRY[name] = factory


def family_names() -> tuple[str, ...]:
    """Names of the registered families."""
    return tuple(sorted(_REGISTRY))


def get_family(name: str, **options: object) -> ModelFamily:
    """The family registered as `name`, or found at an import path
    ``"module:attr"`` naming a `ModelFamily` subclass or instance, constructed
    with `options`. An import path must name a family, never any other
    callable, so a study file cannot make `hpo` call arbitrary code."""
    if ":" in name:
        factory = _import_attr(name)
        if not (isinstance(factory, ModelFamily) or
                (isinstance(factory, type) and issubclass(factory, ModelFamily))):
            raise ValueError(f"family {name!r} is not a models.ModelFamily subclass or instance")
    elif name in _REGISTRY:
        registered = _REGISTRY[name]
        factory = _import_attr(registered) if isinstance(registered, str) else registered
    else:
        raise ValueError(
            f"family {name!r} is unknown: use one of {', '.join(family_names())} "
            "or an import path 'module:attr'"
        )
    if isinstance(factory, ModelFamily):
        if options:
            raise ValueError(f"family {name!r} is an instance and takes no options")
        return factory
    family = factory(**options)
    if not isinstance(family, ModelFamily):
        raise ValueError(f"family {name!r} did not give a models.ModelFamily")
    return family


def _import_attr(path: str) -> FamilyFactory:
    module_name, _, attr = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(f"family {path!r}: cannot import module {module_name!r} ({error})") from error
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ValueError(f"family {path!r}: module {module_name!r} has no attribute {attr!r}") from None
