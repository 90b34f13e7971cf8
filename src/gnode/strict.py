"""The strict base of every settings model, the validation of one job's settings, and the
settings of the jobs that must not import :mod:`gnode.config`.

:mod:`gnode.config` re-exports all of it: this is part of the config module, kept apart because
a job's code hash covers every gnode module it can import (:mod:`gnode.codegraph`), and
:mod:`gnode.config` imports the models and the trainer. The flip-flop data job (whose table
feeds every flip-flop and trainability job) and the figure jobs validate their settings here, so
editing the models, the trainer or the config re-generates no data and redraws no figure. This
module imports no other gnode module than :mod:`gnode.tasks.flipflop` (which the data job runs).
"""

from __future__ import annotations

import contextlib
import json
import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from gnode.tasks.flipflop import VARIANTS

Seed = Annotated[int, Field(ge=0, le=2**31 - 1)]
PosInt = Annotated[int, Field(ge=1, le=1_000_000_000)]


class Strict(BaseModel):
    """Base of every config model: unknown keys, non-finite floats and type coercion are errors.

    Strict mode keeps YAML's types honest: ``true`` is not the integer 1, ``"600"`` is not 600,
    ``1.5`` is not an integer (an integer is accepted where a float is expected). No setting of
    this configuration means anything at infinity or NaN, so no float accepts them.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class ConfigError(ValueError):
    """A configuration that does not validate; the message lists every problem."""


def check_flipflop_trials(n_trials: int, n_train: int, n_bins: int, pulse_width: int) -> None:
    """A ValueError unless the flip-flop trials split into train and test and a pulse fits a trial."""
    if n_train >= n_trials:
        raise ValueError(f"n_train ({n_train}) must be smaller than n_trials ({n_trials})")
    if pulse_width > n_bins:
        raise ValueError(f"pulse_width ({pulse_width}) exceeds n_bins ({n_bins})")


# ------------------------------------------------------------------ config models kept here
class FigureSettings(Strict):
    formats: list[Literal["png", "pdf", "svg"]] = Field(["png", "pdf"], min_length=1, description="file types")
    dpi: int = Field(150, ge=50, le=600, description="resolution of raster figures")


# ------------------------------------------------------------------ job settings kept here
class FlipflopDataSettings(Strict):
    """One flip-flop data job: the trials of one task (config ``flipflop.data`` and the base seed)."""

    task: Literal[VARIANTS]  # type: ignore[valid-type]
    base_seed: Seed = Field(description="base seed (Config.seed)")
    n_trials: int = Field(ge=2, le=1_000_000)
    n_train: int = Field(ge=1, le=1_000_000)
    n_bins: int = Field(ge=3, le=100_000)
    pulse_width: int = Field(ge=1, le=100)
    seed: Seed = Field(description="seed of the generated trials (flipflop.data.seed)")

    @model_validator(mode="after")
    def _split_fits(self):
        check_flipflop_trials(self.n_trials, self.n_train, self.n_bins, self.pulse_width)
        return self


# ------------------------------------------------------------------ error messages
def _loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


# pydantic names the member of a union (float | "adaptive", int | None) as the last parts of
# an error's location; they are no config keys
def _is_union_tag(part) -> bool:
    return isinstance(part, str) and (
        part in {"int", "float", "str", "bool", "none", "list", "dict"}
        or part.startswith(("literal[", "function-", "constrained-"))
    )


def _shown(value) -> str:
    return json.dumps(value, default=str) if not isinstance(value, (dict, list)) else type(value).__name__


def _allowed(e: dict, bounds: str = "") -> str:
    """What is allowed instead of the value of pydantic error ``e`` (``bounds``: the field's range,
    shown for a non-finite number)."""
    ctx = e.get("ctx") or {}
    if "expected" in ctx:
        return f"allowed: {ctx['expected']}"
    detail = e["msg"]
    if e["type"] == "finite_number" and bounds:
        detail += f" ({bounds})"
    value = e.get("input")
    if e["type"] in ("float_type", "int_type") and isinstance(value, str):
        with contextlib.suppress(ValueError):
            float(value)
            if re.fullmatch(r"[+-]?[0-9]+[eE][+-]?[0-9]+", value.strip()):
                # YAML 1.1 (PyYAML, Snakemake) reads 1e-6 as text; 1.0e-6 is a number
                detail += " (YAML reads this as text: write the number with a dot and a signed exponent, e.g. 1.0e-6)"
            else:
                detail += " (a number written as text: remove the quotes)"
    if e["type"] in ("int_type", "int_from_float") and isinstance(value, bool):
        detail += " (true/false are not numbers here)"
    return detail


def validate_job_settings(cls, settings, name: str | None = None):
    """One job's settings (a param of its rule: plain data) validated into ``cls`` (a class of the
    job settings of :mod:`gnode.config`); a bad one is a :class:`ConfigError` naming each bad key.

    A param that is one plain value (``compare_epoch``) is validated by its type (``cls``: a type
    such as :data:`PosInt`, strictly, as a config value), and ``name`` names it in the message.
    """
    try:
        if isinstance(cls, type) and issubclass(cls, BaseModel):
            return cls.model_validate(settings)
        return TypeAdapter(cls, config=_VALUE).validate_python(settings)
    except ValidationError as err:
        lines = []
        for e in err.errors():
            key = _loc(((name,) if name else ()) + tuple(p for p in e["loc"] if not _is_union_tag(p)))
            if e["type"] == "extra_forbidden":
                what = "unknown key"
            elif e["type"] == "missing":
                what = "required but missing"
            else:
                what = f"got {_shown(e.get('input'))}; {_allowed(e)}"
            lines.append(f"settings key '{key}': {what}")
        what = name or getattr(cls, "__name__", "settings")
        raise ConfigError(f"invalid {what}:\n  " + "\n  ".join(dict.fromkeys(lines))) from None


_VALUE = ConfigDict(strict=True, allow_inf_nan=False)  # a plain value's validation: as Strict's fields
