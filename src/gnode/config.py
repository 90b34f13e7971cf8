"""The workflow's configuration: typed, validated before any job starts.

The pydantic models below are the single source of truth; ``workflow/schemas/
config.schema.json`` is generated from them (``python -m gnode.config --schema``) and a test
fails when the two drift apart. Every model forbids unknown keys. :func:`validate_config`
turns pydantic's errors into messages that name the key, the value and what is allowed.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gnode.models import ACTIVATIONS, INITS, MODEL_KINDS, SOLVERS
from gnode.tasks.flipflop import VARIANTS

ModelKind = Literal[MODEL_KINDS]  # type: ignore[valid-type]
Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_]*$", max_length=64)]
PosInt = Annotated[int, Field(ge=1)]
Seed = Annotated[int, Field(ge=0, le=2**31 - 1)]
LearningRate = Annotated[float, Field(gt=0, le=1)]
Decay = Annotated[float, Field(ge=0, le=10)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FlowSettings(Strict):
    """The flow field F of nODE/gnODE (ignored by rnn, gru, mgru)."""

    depth: int = Field(3, ge=0, le=16, description="L: layers of F (0: one layer act(Wh+Ux+b) of N units)")
    width: int = Field(100, ge=1, le=4096, description="M: width of the hidden layers of F")
    activation: Literal[tuple(ACTIVATIONS)] = Field("relu", description="nonlinearity of F")  # type: ignore[valid-type]


class IntegrationSettings(Strict):
    """Time constant, bin width and solver of the continuous models."""

    tau: float = Field(0.01, gt=0, description="time constant tau (trial time units; a trial is [0, 1])")
    dt: float = Field(0.01, gt=0, description="width of one input bin (1 / n_bins for the flip-flop)")
    substeps: int = Field(1, ge=1, le=100, description="Euler sub-steps per bin")
    solver: Literal[SOLVERS] = Field(  # type: ignore[valid-type]
        "native", description="native: our Euler scan; euler, rk4, dopri5: torchdiffeq, bin by bin"
    )
    adjoint: bool = Field(False, description="torchdiffeq adjoint method (solver != native)")
    rtol: float = Field(1e-6, gt=0, description="relative tolerance (dopri5)")
    atol: float = Field(1e-8, gt=0, description="absolute tolerance (dopri5)")
    init: Literal[INITS] = Field("xavier", description="xavier (released scripts) or critical (SPEC)")  # type: ignore[valid-type]

    @model_validator(mode="after")
    def _adjoint_needs_torchdiffeq(self):
        if self.adjoint and self.solver == "native":
            raise ValueError("adjoint: true needs a torchdiffeq solver (euler, rk4, dopri5), not 'native'")
        return self


class FlipFlopData(Strict):
    """Trials of the flip-flop tasks (SPEC: 600 trials, 500 train, 100 bins, 3-bin pulses)."""

    n_trials: int = Field(600, ge=2, le=1_000_000, description="trials generated per task")
    n_train: int = Field(500, ge=1, description="the first n_train trials train, the rest test")
    n_bins: int = Field(100, ge=3, le=100_000, description="time bins per trial over t in [0, 1]")
    pulse_width: int = Field(3, ge=1, le=100, description="bins per pulse")
    seed: Seed = Field(1234, description="seed of the generated trials")

    @model_validator(mode="after")
    def _split_fits(self):
        if self.n_train >= self.n_trials:
            raise ValueError(f"n_train ({self.n_train}) must be smaller than n_trials ({self.n_trials})")
        if self.pulse_width > self.n_bins:
            raise ValueError(f"pulse_width ({self.pulse_width}) exceeds n_bins ({self.n_bins})")
        return self


class Experiment(Strict):
    """One flip-flop experiment: a task, models, sizes and the training grid.

    A Snakemake job trains one (model, N) as an ensemble over lr x weight_decay x seeds, one
    group per batch size. The best member is chosen by test loss.
    """

    task: Literal[VARIANTS] = Field(description="flip-flop variant")  # type: ignore[valid-type]
    models: list[ModelKind] = Field(min_length=1, description="models trained")
    sizes: list[PosInt] = Field(min_length=1, description="phase-space dimensions N (of every model not in model_sizes)")
    model_sizes: dict[ModelKind, list[PosInt]] = Field(
        default_factory=dict,
        description="per-model sizes N overriding `sizes` for the models listed (e.g. gnode: [100, 6, 3])",
    )
    epochs: PosInt = Field(description="training epochs")
    seeds: list[Seed] = Field(min_length=1, description="initialisation and data-order seeds")
    lr: dict[ModelKind, list[LearningRate]] = Field(description="learning rates per model (grid axis)")
    weight_decay: list[Decay] = Field(min_length=1, description="AdamW weight decays (grid axis)")
    batch_size: list[PosInt] = Field(min_length=1, description="batch sizes (grid axis)")
    flow: FlowSettings = Field(default_factory=FlowSettings)
    integration: IntegrationSettings = Field(default_factory=IntegrationSettings)
    checkpoint_every: int = Field(10, ge=0, description="epochs between checkpoints (0: none)")

    @model_validator(mode="after")
    def _lr_for_every_model(self):
        missing = [m for m in self.models if m not in self.lr]
        if missing:
            raise ValueError(f"lr has no entry for models {missing}")
        stray = [m for m in self.model_sizes if m not in self.models]
        if stray:
            raise ValueError(f"model_sizes names models that are not trained: {stray}")
        empty = [m for m, sizes in self.model_sizes.items() if not sizes]
        if empty:
            raise ValueError(f"model_sizes of {empty} is empty")
        return self

    def sizes_of(self, model: str) -> list[int]:
        """The sizes N trained for ``model``: its ``model_sizes`` entry, else ``sizes``."""
        return list(self.model_sizes.get(model, self.sizes))


class AttractorAnalysis(Strict):
    """Fixed/slow points, memory test and gates of every trained flip-flop model (zero input).

    Speeds are ||dh/dt|| in state units per trial time unit (a trial is [0, 1]); for the
    discrete-time models dh/dt means (h_{t+1} - h_t) / dt.
    """

    n_initial: int = Field(256, ge=1, le=100_000, description="initial states of the fixed-point search")
    n_iter: int = Field(1500, ge=1, le=1_000_000, description="max Adam steps of the fixed-point search")
    lr: float = Field(0.01, gt=0, le=10, description="Adam step of the search (state units)")
    noise_std: float = Field(0.01, ge=0, description="noise added to the initial states (state units)")
    slow_speed: float = Field(0.05, gt=0, description="a slow point moves slower than this (kept by the search)")
    fixed_speed: float = Field(1e-3, gt=0, description="a fixed point moves slower than this (<= slow_speed)")
    dedup_tol: float = Field(1e-3, ge=0, description="points closer than this (state units) are merged")
    max_points: int = Field(500, ge=1, le=100_000, description="keep at most this many points (slowest first)")
    trajectory_trials: int = Field(20, ge=1, le=10_000, description="test trials whose states seed the search and are drawn")
    grid_points: int = Field(41, ge=5, le=1000, description="grid per axis of the speed background (N = 2)")
    memory_probes: int = Field(32, ge=1, le=100_000, description="stored values of the memory test")
    memory_horizons: float = Field(10.0, gt=0, le=1000, description="free-run length of the memory test, in trial lengths")
    memory_settle_bins: int = Field(10, ge=0, le=1000, description="bins after the last pulse before drift is measured")
    memory_samples: int = Field(100, ge=2, le=100_000, description="time samples of the memory curve")
    seed: Seed = Field(11, description="seed of the probes, initial states and noise")

    @model_validator(mode="after")
    def _fixed_below_slow(self):
        if self.fixed_speed > self.slow_speed:
            raise ValueError(f"fixed_speed ({self.fixed_speed}) must not exceed slow_speed ({self.slow_speed})")
        return self


class FlipFlopClaims(Strict):
    """Thresholds of the flip-flop claims (results/flipflop/claims.parquet), fixed before the run."""

    small_vs_large_margin: float = Field(
        2.0, ge=1, description="3-bit variable: smallest gnODE's best test MSE <= margin x largest gnODE's"
    )
    gating_ratio: float = Field(1.0, gt=0, description="gnODE / nODE best test MSE must be below this")
    low_dim_r2: float = Field(0.8, ge=0, le=1, description="2-bit tasks: variance of the targets the N=2 gnODE explains")
    ring_radius_cv: float = Field(0.1, gt=0, description="ring task: max coefficient of variation of the slow points' readout radius")
    ring_coverage: float = Field(0.5, ge=0, le=1, description="ring task: min fraction of 12 angle sectors holding a slow point")
    memory_drift: float = Field(
        0.25, gt=0, description="continuous tasks: max readout drift over the memory test relative to the stored value"
    )


class FlipFlopSettings(Strict):
    data: FlipFlopData = Field(default_factory=FlipFlopData)
    experiments: dict[Name, Experiment] = Field(min_length=1, description="experiments by name")
    analysis: AttractorAnalysis = Field(default_factory=AttractorAnalysis)
    claims: FlipFlopClaims = Field(default_factory=FlipFlopClaims)


class FigureSettings(Strict):
    formats: list[Literal["png", "pdf", "svg"]] = Field(["png", "pdf"], min_length=1, description="file types")
    dpi: int = Field(150, ge=50, le=600, description="resolution of raster figures")


class Config(Strict):
    """The whole configuration of a run (config/config.yaml, overlays via --configfile)."""

    seed: Seed = Field(0, description="base seed (mixed into every random draw of the workflow)")
    device: Literal["auto", "cpu", "cuda", "mps"] = Field("cpu", description="torch device; auto: cuda > mps > cpu")
    dtype: Literal["float32", "float64"] = Field("float32", description="floating-point type of models")
    threads: int = Field(1, ge=1, le=256, description="torch threads per job (also the rule's threads)")
    flipflop: FlipFlopSettings
    figures: FigureSettings = Field(default_factory=FigureSettings)


class ConfigError(ValueError):
    """A configuration that does not validate; the message lists every problem."""


def _loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _allowed_keys(loc: tuple) -> list[str]:
    """The field names of the model found at ``loc`` (dict entries like experiment names skipped)."""
    import typing

    model: type[BaseModel] = Config
    for part in loc:
        if isinstance(part, int) or model is None:
            continue
        field = model.model_fields.get(part)
        if field is None:
            continue
        ann = field.annotation
        if typing.get_origin(ann) is dict:
            ann = typing.get_args(ann)[1]
        model = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
    return sorted(model.model_fields) if model is not None else []


def format_errors(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        # pydantic appends the validator name for tagged unions etc.; keep only data keys
        loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        key = _loc(loc)
        kind = e["type"]
        value = e.get("input")
        if kind == "extra_forbidden":
            allowed = _allowed_keys(loc[:-1])
            lines.append(f"config key '{key}': unknown key; allowed keys here: {', '.join(allowed)}")
            continue
        if kind == "missing":
            lines.append(f"config key '{key}': required but missing")
            continue
        ctx = e.get("ctx") or {}
        shown = json.dumps(value, default=str) if not isinstance(value, (dict, list)) else type(value).__name__
        detail = f"allowed: {ctx['expected']}" if "expected" in ctx else e["msg"]
        lines.append(f"config key '{key}': got {shown}; {detail}")
    return "invalid configuration:\n  " + "\n  ".join(lines)


def validate_config(raw: dict) -> Config:
    """Validate a plain config dict; raise :class:`ConfigError` naming each bad key."""
    try:
        return Config.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(format_errors(err)) from None


def json_schema() -> dict:
    return Config.model_json_schema()


if __name__ == "__main__":  # python -m gnode.config --schema > workflow/schemas/config.schema.json
    if sys.argv[1:] == ["--schema"]:
        print(json.dumps(json_schema(), indent=2, sort_keys=True))
    else:
        print("usage: python -m gnode.config --schema", file=sys.stderr)
        sys.exit(2)
