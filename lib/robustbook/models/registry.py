"""Name -> factory registry of the model zoo (see :func:`build`)."""

from __future__ import annotations

import inspect
from typing import Callable

from torch import nn

from .base import check_num_classes

__all__ = ["MODELS", "register", "names", "build", "kwargs_of", "check_kwargs"]

#: name -> factory ``f(num_classes, **kw) -> nn.Module``
MODELS: dict[str, Callable[..., nn.Module]] = {}
#: name -> ``check(**kw)`` validating every keyword value without building the model
CHECKS: dict[str, Callable[..., None]] = {}


def register(name: str, check: Callable[..., None] | None = None):
    """Decorator: ``@register("cnn_b", check=f)`` adds a factory to :data:`MODELS`.

    The factory's signature must be ``(num_classes, *, kw1=..., ...)``; its
    keyword names are the valid ``build`` kwargs for that model. ``check``, called
    with every keyword (defaults filled in), raises ``ValueError`` for a bad value
    without building anything (``check_kwargs``; RunConfig validates model_kw with it).
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"model name must be a non-empty str, got {name!r}")

    def deco(factory):
        if name in MODELS:
            raise ValueError(f"model {name!r} is already registered")
        MODELS[name] = factory
        if check is not None:
            CHECKS[name] = check
        return factory

    return deco


def names() -> list[str]:
    """Sorted names of all registered models."""
    return sorted(MODELS)


def kwargs_of(name: str) -> dict[str, object]:
    """Valid keyword arguments of model ``name`` with their defaults."""
    factory = _lookup(name)
    sig = inspect.signature(factory)
    return {p.name: p.default for p in sig.parameters.values()
            if p.name != "num_classes" and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}


def _lookup(name: str):
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; valid choices: {', '.join(names())}")
    return MODELS[name]


def check_kwargs(name: str, kw: dict) -> None:
    """Validate keyword arguments of model ``name`` without building it: unknown
    names, and the values its registered ``check`` rejects, raise ``ValueError``."""
    valid = kwargs_of(name)
    unknown = sorted(set(kw) - set(valid))
    if unknown:
        listing = ", ".join(f"{k}={v!r}" for k, v in valid.items()) or "(none)"
        raise ValueError(
            f"unknown keyword argument(s) {', '.join(map(repr, unknown))} for model "
            f"{name!r}; valid: {listing}"
        )
    if name in CHECKS:
        CHECKS[name](**{**valid, **kw})


def build(name: str, num_classes: int, **kw) -> nn.Module:
    """Build registered model ``name`` with ``num_classes`` outputs.

    Unknown names, unknown kwargs and invalid values raise ``ValueError``
    naming the valid choices.
    """
    factory = _lookup(name)
    check_num_classes(num_classes)
    check_kwargs(name, kw)
    return factory(num_classes, **kw)
