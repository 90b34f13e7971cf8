"""The workflow's configuration: typed, validated before any job starts.

The pydantic models below are the single source of truth; ``workflow/schemas/
config.schema.json`` is generated from them (``python -m gnode.config --schema``) and a test
fails when the two drift apart. Every model forbids unknown keys. :func:`validate_config`
turns pydantic's errors into messages that name the key, the value and what is allowed.
"""

from __future__ import annotations

import contextlib
import json
import re
import sys
from typing import Annotated, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    Field,
    StrictBool,
    ValidationError,
    model_serializer,
    model_validator,
)

from gnode.models import ACTIVATIONS, CONTINUOUS_KINDS, INITIAL_STATES, INITS, MODEL_KINDS, SOLVERS, ModelSpec
from gnode.strict import (  # noqa: F401 (re-exported: part of this module, see gnode.strict)
    ConfigError,
    FigureSettings,
    FlipflopDataSettings,
    PosInt,
    Seed,
    Strict,
    _allowed,
    _is_union_tag,
    _loc,
    _shown,
    check_flipflop_trials,
    validate_job_settings,
)
from gnode.tasks.flipflop import VARIANTS
from gnode.training import SELECT_EVERY

ModelKind = Literal[MODEL_KINDS]  # type: ignore[valid-type]
Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_]*$", max_length=64)]
# Upper bounds refuse typos like 1e9 with a message (the plan-time memory estimate in
# gnode.resources refuses what is in bounds but does not fit the machine).
Size = Annotated[int, Field(ge=1, le=65_536, description="a phase-space dimension N")]
Epochs = Annotated[int, Field(ge=1, le=100_000)]
BatchSize = Annotated[int, Field(ge=1, le=1_000_000)]
Count = Annotated[int, Field(ge=1, le=100_000_000)]
LearningRate = Annotated[float, Field(gt=0, le=1)]
Decay = Annotated[float, Field(ge=0, le=10)]
Device = Literal["auto", "cpu", "cuda", "mps"]
DType = Literal["float32", "float64"]


class FlowSettings(Strict):
    """The flow field F of nODE/gnODE (ignored by rnn, gru, mgru)."""

    depth: int = Field(3, ge=0, le=16, description="L: layers of F (0: one layer act(Wh+Ux+b) of N units)")
    width: int = Field(100, ge=1, le=4096, description="M: width of the hidden layers of F")
    activation: Literal[tuple(ACTIVATIONS)] = Field("relu", description="nonlinearity of F")  # type: ignore[valid-type]


class IntegrationSettings(Strict):
    """Time constant, bin width and solver of the continuous models."""

    tau: float = Field(0.01, gt=0, le=1000, description="time constant tau (trial time units; a trial is [0, 1])")
    dt: float = Field(0.01, gt=0, le=1, description="width of one input bin (1 / n_bins for the flip-flop)")
    substeps: int = Field(1, ge=1, le=100, description="Euler sub-steps per bin")
    solver: Literal[SOLVERS] = Field(  # type: ignore[valid-type]
        "native", description="native: our Euler scan; euler, rk4, dopri5: torchdiffeq, bin by bin"
    )
    adjoint: bool = Field(False, description="torchdiffeq adjoint method (solver != native)")
    rtol: float = Field(1e-6, gt=0, lt=1, description="relative tolerance (dopri5)")
    atol: float = Field(1e-8, gt=0, lt=1, description="absolute tolerance (dopri5)")
    init: Literal[INITS] = Field(  # type: ignore[valid-type]
        "xavier",
        description="xavier: Glorot-uniform weights, biases N(0, 1e-3^2) (the authors' default); critical: the "
        "authors' critical init (our_normal: weights N(0, 1/fan_in), then every dynamics and gate parameter times "
        "(1/(eta_max+1))^(1/L), eta_max of -h + F at h0 and the mean training input); critical_iterated: ours "
        "(only the recurrent matrices, rescaled until eta_max = 0 at h = 0, zero input)",
    )

    @model_validator(mode="after")
    def _adjoint_needs_torchdiffeq(self):
        if self.adjoint and self.solver == "native":
            raise ValueError("adjoint: true needs a torchdiffeq solver (euler, rk4, dopri5), not 'native'")
        return self


class FlipFlopData(Strict):
    """Trials of the flip-flop tasks (SPEC: 600 trials, 500 train, 100 bins, 3-bin pulses)."""

    n_trials: int = Field(600, ge=2, le=1_000_000, description="trials generated per task")
    n_train: int = Field(500, ge=1, le=1_000_000, description="the first n_train trials train, the rest test")
    n_bins: int = Field(100, ge=3, le=100_000, description="time bins per trial over t in [0, 1]")
    pulse_width: int = Field(3, ge=1, le=100, description="bins per pulse")
    seed: Seed = Field(1234, description="seed of the generated trials")

    @model_validator(mode="after")
    def _split_fits(self):
        check_flipflop_trials(self.n_trials, self.n_train, self.n_bins, self.pulse_width)
        return self


class Experiment(Strict):
    """One flip-flop experiment: a task, models, sizes and the training grid.

    A Snakemake job trains one (model, N) as an ensemble over lr x weight_decay x seeds, one
    group per batch size. The best member is chosen by test loss.
    """

    task: Literal[VARIANTS] = Field(description="flip-flop variant")  # type: ignore[valid-type]
    models: list[ModelKind] = Field(min_length=1, description="models trained")
    sizes: list[Size] = Field(min_length=1, description="phase-space dimensions N (of every model not in model_sizes)")
    model_sizes: dict[ModelKind, list[Size]] = Field(
        default_factory=dict,
        description="per-model sizes N overriding `sizes` for the models listed (e.g. gnode: [100, 6, 3])",
    )
    epochs: Epochs = Field(description="training epochs")
    seeds: list[Seed] = Field(min_length=1, description="initialisation and data-order seeds")
    lr: dict[ModelKind, list[LearningRate]] = Field(description="learning rates per model (grid axis)")
    weight_decay: list[Decay] = Field(min_length=1, description="AdamW weight decays (grid axis)")
    batch_size: list[BatchSize] = Field(min_length=1, description="batch sizes (grid axis)")
    flow: FlowSettings = Field(default_factory=FlowSettings)
    integration: IntegrationSettings = Field(default_factory=IntegrationSettings)
    checkpoint_every: int = Field(10, ge=0, le=100_000, description="epochs between checkpoints (0: none)")
    initial_state: Literal[INITIAL_STATES] = Field(  # type: ignore[valid-type]
        "zeros",
        description="h0 of every model: zeros; learned (a trained vector); learned_affine (h0 = A x_1 + b of the "
        "first input bin, trained: the authors' 3-bit fixed and 2-bit tasks); fixed_random (a Glorot-normal draw "
        "per member, not trained: the authors' 3-bit variable task)",
    )
    select_every: Literal[SELECT_EVERY] = Field(  # type: ignore[valid-type]
        "epoch",
        description="when the best parameters (lowest test loss) are checked: after every epoch, or after every "
        "iteration (optimiser step; the authors', one more forward pass over the test set per step)",
    )
    shuffle: StrictBool = Field(
        True, description="true: a new random mini-batch order every epoch; false: the data's order (the authors')"
    )

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
    noise_std: float = Field(0.01, ge=0, le=1000, description="noise added to the initial states (state units)")
    slow_speed: float = Field(0.05, gt=0, le=1e6, description="a slow point moves slower than this (kept by the search)")
    fixed_speed: float = Field(1e-3, gt=0, le=1e6, description="a fixed point moves slower than this (<= slow_speed)")
    dedup_tol: float = Field(1e-3, ge=0, le=1e6, description="points closer than this (state units) are merged")
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
        2.0, ge=1, le=1e6, description="3-bit variable: smallest gnODE's best test MSE <= margin x largest gnODE's"
    )
    gating_ratio: float = Field(1.0, gt=0, le=1e6, description="gnODE / nODE best test MSE must be below this")
    low_dim_r2: float = Field(0.8, ge=0, le=1, description="2-bit tasks: variance of the targets the N=2 gnODE explains")
    ring_radius_cv: float = Field(0.1, gt=0, le=1000, description="ring task: max coefficient of variation of the slow points' readout radius")
    ring_coverage: float = Field(0.5, ge=0, le=1, description="ring task: min fraction of 12 angle sectors holding a slow point")
    memory_error: float = Field(
        0.25, gt=0, le=1000, description="continuous tasks: max mean ||readout - stored value|| / mean ||stored value|| of the "
        "best gnODE at settling, one trial length later and at the end of the memory test (a constant readout: ~1)"
    )
    memory_drift: float = Field(
        0.25, gt=0, le=1000, description="continuous tasks: max readout drift from settling to the end of the memory test "
        "relative to the stored value (a model that forgets at once also passes)"
    )
    square_rank: int = Field(
        1, ge=1, le=5, description="2bit_square: the N=2 gnODE's rank among the five models at N=2 by best test MSE "
        "must be at most this (1: the gnODE is best)"
    )
    fixed_target_tol: float = Field(
        0.25, gt=0, le=100, description="2bit_fixed: max readout distance from each target (+-1, +-1) to the nearest stable "
        "fixed point of the N=2 gnODE"
    )


class FlipFlopSettings(Strict):
    data: FlipFlopData = Field(default_factory=FlipFlopData)
    experiments: dict[Name, Experiment] = Field(min_length=1, description="experiments by name")
    analysis: AttractorAnalysis = Field(default_factory=AttractorAnalysis)
    claims: FlipFlopClaims = Field(default_factory=FlipFlopClaims)


# R2 a class must reach at K: a number, or "adaptive" (1 - 1/(2K))
Threshold = Annotated[float, Field(gt=0, le=1)] | Literal["adaptive"]


class ExpressivityFlow(Strict):
    """One flow-field class of the expressivity sweep (list them simplest to richest)."""

    depth: int = Field(ge=0, le=16, description="L (0: single layer; with linear activation, a linear F)")
    width: int = Field(0, ge=0, le=4096, description="M (ignored for depth 0)")
    activation: Literal[tuple(ACTIVATIONS)] = Field(description="nonlinearity of F")  # type: ignore[valid-type]


class ExpressivityClaims(Strict):
    """Thresholds of the expressivity claims (results/expressivity/claims.parquet), fixed before the run."""

    auc_tol: float = Field(
        0.01, ge=0, le=1, description="AUC differences below this carry no signal: groups (by flow or by N) whose AUC "
        "range is smaller, and gated/non-gated pairs closer than this, are left out of the claims"
    )
    spearman_n: float = Field(
        0.5, ge=-1, le=1, description="median over (flow, gated) of Spearman(N, AUC) must reach this"
    )
    spearman_flow: float = Field(
        0.5, ge=-1, le=1, description="median over (N >= 2, gated) of Spearman(flow rank, AUC) must reach this"
    )
    richer_flow_sign: float = Field(
        0.0, ge=-1, le=1, description="mean over (K, gated) of sign(N needed by the simplest flow - N needed by the "
        "richest) must exceed this"
    )
    gating_auc_gain: float = Field(
        0.0, ge=-1, le=1, description="median over (N >= 2, flow) of AUC(gated) - AUC(non-gated) must exceed this"
    )
    linear_fraction: float = Field(
        1.0, ge=0, le=1, description="analytic check: fraction of N at which the linear non-gated F has "
        "K* = min(floor(N/2), k_max) must reach this"
    )


class ExpressivitySweep(Strict):
    """The expressivity measure and its sweep, without the claims thresholds (what the fits and
    scores depend on: the scoring job's ``sweep``)."""

    n: list[Size] = Field(min_length=1, description="phase-space dimensions N of the sweep")
    flows: list[ExpressivityFlow] = Field(min_length=1, description="flow fields, simplest to richest")
    gated: list[bool] = Field(min_length=1, description="gnODE (true) and/or nODE (false)")
    k_max: int = Field(ge=1, le=32, description="largest number of sinusoids K in a target")
    targets_per_k: int = Field(ge=1, le=100, description="random targets per K (the median is scored)")
    t_steps: int = Field(ge=10, le=100_000, description="Euler steps of a target window")
    output_dim: int = Field(1, ge=1, le=16, description="channels of a target")
    f_min: float = Field(2.0, gt=0, le=10_000, description="lowest frequency (cycles per window)")
    min_gap: float = Field(1.5, gt=0, le=10_000, description="minimal gap between a target's frequencies (cycles per window)")
    band_slack: float = Field(2.5, ge=0, le=10_000, description="extra width of the frequency band (cycles per window)")
    alpha: float = Field(0.1, gt=0, le=1, description="Euler factor dt/tau of the autonomous models")
    clamp: float = Field(1000.0, gt=0, le=1e12, description="state clamp (guards against blow-ups; hits are counted)")
    init: Literal["oscillator", "xavier"] = Field("oscillator", description="initialisation of the fits")
    restarts: int = Field(ge=1, le=100, description="restarts per fit; the best R2 is kept")
    steps: int = Field(ge=1, le=1_000_000, description="Adam steps per fit (the same budget for every class)")
    lr: float = Field(1e-2, gt=0, le=1, description="learning rate")
    lr_schedule: Literal["cosine", "constant"] = Field("cosine", description="learning-rate schedule")
    weight_decay: float = Field(0.0, ge=0, le=10, description="AdamW weight decay")
    grad_clip: float = Field(1.0, gt=0, le=1e6, description="gradient-norm clip per fit")
    threshold: Threshold = Field(
        "adaptive", description="R2 a class must reach at K: a number, or adaptive = 1 - 1/(2K)"
    )
    max_members: int = Field(256, ge=1, le=100_000, description="fits batched in one ensemble at most")


class ExpressivitySettings(ExpressivitySweep):
    """The expressivity measure and its sweep (docs/expressivity.md documents every key)."""

    claims: ExpressivityClaims = Field(default_factory=ExpressivityClaims)


# ------------------------------------------------------------------ real-world benchmarks
DATASET_NAMES = ("walker2d", "character_trajectories", "speech_commands")  # gnode.datasets.DATASETS
Dataset = Literal[DATASET_NAMES]  # type: ignore[valid-type]


class DatasetSource(Strict):
    """Where one benchmark's files are found: local folders first, else a download."""

    local_dirs: list[str] = Field(
        default_factory=list,
        description="folders searched first, in order (relative to the working directory; each may hold the "
        "unpacked files or a folder up to two levels above them)",
    )
    download: bool = Field(True, description="download the archive (checksummed) when no local folder holds the data")


class WalkerSource(DatasetSource):
    local_dirs: list[str] = Field(
        default_factory=lambda: ["../shared/data/walker2d", "data/walker2d"],
        description="folders searched first, in order (relative to the working directory; each may hold the "
        "rollout_NNN.npy files or a folder up to two levels above them)",
    )
    verify: Literal["all", "present", "none"] = Field(
        "all",
        description="all: the 400 published rollouts must all be present with their published SHA-256; "
        "present: the rollouts present must match (a subset of the real data, for tests); none: no check",
    )


class DataSources(Strict):
    """Local copies and download cache of the real-world datasets (keys data.<name>.local_dirs)."""

    cache_dir: str = Field("resources/datasets", description="where archives are downloaded and unpacked")
    walker2d: WalkerSource = Field(default_factory=WalkerSource)
    character_trajectories: DatasetSource = Field(default_factory=lambda: DatasetSource(local_dirs=["data/character_trajectories"]))
    speech_commands: DatasetSource = Field(default_factory=lambda: DatasetSource(local_dirs=["data/speech_commands"]))


class SplitLimits(Strict):
    """At most this many sequences per split, a seeded random subset (null: all), for reduced runs."""

    train: Count | None = Field(None, description="training sequences kept (null: all)")
    val: Count | None = Field(None, description="validation sequences kept (null: all)")
    test: Count | None = Field(None, description="test sequences kept (null: all)")


class RealWorldFlow(Strict):
    """The flow field F of nODE/gnODE on the real-world tasks; its width follows N."""

    depth: int = Field(1, ge=0, le=8, description="L: layers of F (0: one layer act(Wh+Ux+b) of N units)")
    width_factor: float = Field(1.0, gt=0, le=64, description="M = round(width_factor * N): width of F's hidden layers")
    activation: Literal[tuple(ACTIVATIONS)] = Field("tanh", description="nonlinearity of F")  # type: ignore[valid-type]


class RealWorldIntegration(Strict):
    """Euler integration of nODE/gnODE over the elapsed time of each bin (in the data's own time unit)."""

    tau: float = Field(1.0, gt=0, le=1e6, description="time constant tau, in the data's time unit (Walker2d: one "
                       "simulation step; CharacterTrajectories: one sample; Speech Commands: one frame)")
    substeps: int = Field(1, ge=1, le=100, description="Euler sub-steps per bin; the step of a bin is dt / substeps")
    # the authors' critical rule needs the mean input, which these jobs do not pass: not offered here
    init: Literal["xavier", "critical_iterated"] = Field(
        "xavier", description="xavier (the authors' default) or critical_iterated (ours; see the flip-flop `init`)"
    )


def _check_dataset_options(dataset: str, drop_rate: float, max_per_class: int | None) -> None:
    """A ValueError for a dataset option given to a dataset it does not apply to."""
    if drop_rate and dataset != "character_trajectories":
        raise ValueError("drop_rate applies to dataset character_trajectories only")
    if max_per_class is not None and dataset != "speech_commands":
        raise ValueError("max_per_class applies to dataset speech_commands only")


class RealWorldTask(Strict):
    """One real-world benchmark task: its data, the models, their shared parameter budget and training.

    Every model gets the hidden size N (and flow width) whose parameter count is closest to
    ``budget``; a count off by more than ``tolerance`` is an error. All models share the
    optimiser (AdamW), schedule, early stopping and seeds.
    """

    dataset: Dataset = Field(description="which benchmark (data.<dataset> says where its files are)")
    drop_rate: float = Field(0.0, ge=0, lt=1, description="character_trajectories: fraction of each sequence's points dropped")
    max_per_class: Count | None = Field(None, description="speech_commands: at most this many clips per word and split")
    limit: SplitLimits = Field(default_factory=SplitLimits)
    standardize: bool = Field(True, description="walker2d: standardise inputs and targets with the training "
                              "state mean/std; the loss weights each channel by its variance, so loss and test MSE "
                              "are those of the raw state (the benchmark's metric)")
    models: list[ModelKind] = Field(min_length=1, description="models trained")
    seeds: list[Seed] = Field(min_length=1, description="initialisation and data-order seeds (one trained model each)")
    budget: Annotated[int, Field(ge=1, le=100_000_000)] = Field(description="trainable parameters per model (readout included)")
    tolerance: float = Field(0.1, gt=0, le=0.5, description="allowed relative deviation from the budget")
    flow: RealWorldFlow = Field(default_factory=RealWorldFlow)
    integration: RealWorldIntegration = Field(default_factory=RealWorldIntegration)
    epochs: Epochs = Field(description="maximum training epochs")
    batch_size: BatchSize = Field(128, description="sequences per batch")
    lr: dict[ModelKind, LearningRate] = Field(description="AdamW learning rate per model")
    weight_decay: Decay = Field(0.0, description="AdamW weight decay")
    schedule: Literal["constant", "cosine"] = Field("constant", description="learning rate over the epochs")
    min_lr_factor: float = Field(0.0, ge=0, le=1, description="cosine: final lr as a fraction of lr")
    grad_clip: float | None = Field(None, gt=0, le=1e6, description="max gradient norm per model (null: no clipping)")
    patience: int = Field(10, ge=0, le=100_000, description="early stopping: epochs without validation improvement (0: never)")
    checkpoint_every: int = Field(5, ge=0, le=100_000, description="epochs between checkpoints (0: none)")

    @model_validator(mode="after")
    def _consistent(self):
        missing = [m for m in self.models if m not in self.lr]
        if missing:
            raise ValueError(f"lr has no entry for models {missing}")
        _check_dataset_options(self.dataset, self.drop_rate, self.max_per_class)
        return self


class RealWorldClaims(Strict):
    """Thresholds of the real-world claims (results/realworld/claims.parquet), fixed before the run."""

    improvement: float = Field(
        0.0, ge=0, le=1e6, description="mean over seeds of gnODE's improvement over nODE (test MSE of nODE minus "
        "gnODE, or test accuracy of gnODE minus nODE) must exceed this"
    )
    t_statistic: float = Field(
        2.0, gt=0, le=1000, description="that mean over its standard error (paired over seeds) must exceed this"
    )


class RealWorldSettings(Strict):
    tasks: dict[Name, RealWorldTask] = Field(default_factory=dict, description="real-world tasks by name")
    claims: RealWorldClaims = Field(default_factory=RealWorldClaims)


# ------------------------------------------------------------------ trainability
class TrainabilityClaims(Strict):
    """Thresholds of the trainability claims (results/trainability/claims.parquet), fixed before the run."""

    loss_fraction: float = Field(
        0.5, gt=0, lt=1, description="a member reaches the threshold at the first epoch whose test loss is at most "
        "this fraction of its test loss at initialisation"
    )
    compare_epoch: PosInt = Field(description="epoch at which critical and xavier nODEs' test losses are compared")
    eta_tolerance: float = Field(
        0.05, gt=0, description="critical init: max |eta_max| at h0 with the mean input over the critical members"
    )
    critical_ratio: float = Field(
        1.0, gt=0, description="nODE: median test loss at compare_epoch, critical / xavier, must be below this"
    )
    gating_epochs_ratio: float = Field(
        1.0, gt=0, description="median epochs to the threshold, gnODE / nODE under the same init, must be below this"
    )


class TrainabilitySettings(Strict):
    """The trainability study (docs/trainability.md): nODE/gnODE x depth x nonlinearity x init, seeds as members.

    One job per (model, depth, activation) trains all inits x seeds as one ensemble on one
    flip-flop task (the flip-flop study's data file), with one learning-rate setting.
    """

    task: Literal[VARIANTS] = Field("3bit_variable", description="flip-flop variant (its data: flipflop.data)")  # type: ignore[valid-type]
    models: list[Literal["node", "gnode"]] = Field(min_length=1, description="continuous models compared")
    n: PosInt = Field(description="phase-space dimension N of every model")
    width: int = Field(100, ge=1, le=4096, description="M: width of the hidden layers of F")
    depths: list[Annotated[int, Field(ge=1, le=16)]] = Field(min_length=1, description="L: layers of F (grid axis)")
    activations: list[Literal[tuple(ACTIVATIONS)]] = Field(  # type: ignore[valid-type]
        min_length=1, description="nonlinearity of F's hidden layers (grid axis)"
    )
    inits: list[Literal[INITS]] = Field(min_length=1, description="initialisations compared (grid axis)")  # type: ignore[valid-type]
    seeds: list[Seed] = Field(min_length=1, description="initialisation and data-order seeds (ensemble members)")
    tau: float = Field(0.01, gt=0, le=1000, description="time constant tau (trial time units; a trial is [0, 1])")
    dt: float = Field(0.01, gt=0, le=1, description="width of one input bin: 1 / flipflop.data.n_bins")
    substeps: int = Field(1, ge=1, le=100, description="Euler sub-steps per bin")
    epochs: PosInt = Field(description="training epochs")
    lr: LearningRate = Field(1e-3, description="AdamW learning rate, the same for every member (fixed before the run)")
    weight_decay: Decay = Field(0.01, description="AdamW weight decay")
    batch_size: PosInt = Field(50, description="trials per batch")
    diagnostic_trials: PosInt = Field(
        100, description="training trials (the first ones) for the gradient diagnostics at initialisation"
    )
    initial_state: Literal[INITIAL_STATES] = Field(  # type: ignore[valid-type]
        "fixed_random",
        description="h0 of every member (the authors' 3-bit variable: fixed_random, a Glorot-normal draw, not trained)",
    )
    checkpoint_every: int = Field(10, ge=0, le=100_000, description="epochs between checkpoints (0: none)")
    claims: TrainabilityClaims

    @model_validator(mode="after")
    def _consistent(self):
        if self.claims.compare_epoch > self.epochs:
            raise ValueError(f"claims.compare_epoch ({self.claims.compare_epoch}) exceeds epochs ({self.epochs})")
        for key in ("models", "depths", "activations", "inits", "seeds"):
            values = getattr(self, key)
            if len(set(values)) != len(values):
                raise ValueError(f"{key} lists a value twice: {values}")
        return self


class Config(Strict):
    """The whole configuration of a run (config/config.yaml, overlays via --configfile)."""

    seed: Seed = Field(0, description="base seed (mixed into every random draw of the workflow)")
    device: Device = Field("cpu", description="torch device; auto: cuda > mps > cpu")
    dtype: DType = Field("float32", description="floating-point type of models")
    threads: int = Field(1, ge=1, le=256, description="torch threads per job (also the rule's threads)")
    flipflop: FlipFlopSettings
    expressivity: ExpressivitySettings
    data: DataSources = Field(default_factory=DataSources)
    realworld: RealWorldSettings = Field(default_factory=RealWorldSettings)
    figures: FigureSettings = Field(default_factory=FigureSettings)
    trainability: TrainabilitySettings | None = Field(
        None, description="the trainability study (null: not run)"
    )


# ------------------------------------------------------------------ job settings
# What one job depends on, one class per job kind: built from the Config by gnode.plan when
# Snakemake plans the jobs, passed through the rule's params as ``model_dump(mode="json")``
# (plain data: Snakemake compares params by their repr), validated once in the job
# (gnode.jobs) and handed to the study function. No field has a default (but the flow of a
# discrete model, absent): every value comes from the Config, whose models above are the one
# place of defaults. The field order is the order of the params (a different order is a
# different repr: every job would re-run). The classes of the jobs that must not import this
# module (the flip-flop data job: editing a model would re-generate the data; the figure jobs)
# are in gnode.strict and re-exported here: FlipflopDataSettings, FigureSettings. The claims
# and summary jobs whose settings are one config model take that model (FigureSettings,
# RealWorldClaims, ExpressivityClaims, ExpressivitySweep).


class RunSettings(Strict):
    """Where a job that only runs a trained model runs it (the flip-flop evaluation)."""

    device: Device
    dtype: DType


class JobSettings(Strict):
    """Base of the settings of one job: the base seed, device and dtype of the run."""

    seed: Seed = Field(description="base seed (Config.seed)")
    device: Device
    dtype: DType


class FlipflopTrainSettings(JobSettings):
    """One flip-flop training job: one (experiment, model) over its grid and seeds (N is the job's
    own argument). ``flow`` only for the continuous models (absent from the dump otherwise)."""

    experiment: Name
    task: Literal[VARIANTS]  # type: ignore[valid-type]
    model: ModelKind
    epochs: Epochs
    seeds: list[Seed] = Field(min_length=1)
    lr: list[LearningRate] = Field(min_length=1, description="this model's learning rates (grid axis)")
    weight_decay: list[Decay] = Field(min_length=1)
    batch_size: list[BatchSize] = Field(min_length=1)
    checkpoint_every: int = Field(ge=0, le=100_000)
    integration: IntegrationSettings
    initial_state: Literal[INITIAL_STATES]  # type: ignore[valid-type]
    select_every: Literal[SELECT_EVERY]  # type: ignore[valid-type]
    shuffle: StrictBool
    # the one field with a default: the dump of a discrete model's job has no flow (as before)
    flow: FlowSettings | None = Field(None, description="the flow field F (node, gnode); None for rnn, gru, mgru")

    @model_validator(mode="after")
    def _flow_of_continuous_models(self):
        if (self.flow is not None) != (self.model in CONTINUOUS_KINDS):
            raise ValueError(f"flow must be given for {list(CONTINUOUS_KINDS)} and only for them "
                             f"(model {self.model!r})")
        return self

    @model_serializer(mode="wrap")
    def _without_unused_flow(self, handler):
        out = handler(self)
        if self.flow is None:
            out.pop("flow", None)
        return out


def _model_spec(value):
    """A :class:`ModelSpec` from its dict (``ModelSpec.to_dict``); its own checks name a bad value."""
    if isinstance(value, dict):
        try:
            return ModelSpec(**value)
        except TypeError as err:  # an unknown or missing key
            raise ValueError(f"not a model spec: {err}") from None
    return value


class RealworldTrainSettings(JobSettings):
    """One real-world training job: one (task, model) over its seeds, at the hidden size that
    meets the task's parameter budget (``spec``, chosen when the job is planned)."""

    task: Name
    dataset: Dataset
    model: ModelKind
    spec: Annotated[ModelSpec, BeforeValidator(_model_spec)]
    budget: Annotated[int, Field(ge=1, le=100_000_000)]
    seeds: list[Seed] = Field(min_length=1)
    epochs: Epochs
    batch_size: BatchSize
    lr: LearningRate
    weight_decay: Decay
    schedule: Literal["constant", "cosine"]
    min_lr_factor: float = Field(ge=0, le=1)
    grad_clip: float | None = Field(gt=0, le=1e6)
    patience: int = Field(ge=0, le=100_000)
    checkpoint_every: int = Field(ge=0, le=100_000)

    @model_validator(mode="after")
    def _spec_of_the_model(self):
        if self.spec.kind != self.model:
            raise ValueError(f"spec.kind {self.spec.kind!r} is not the model {self.model!r}")
        return self


class TrainabilityTrainSettings(JobSettings):
    """One trainability training job: one (model, depth, activation), every init x seed a member."""

    model: Literal["node", "gnode"]
    depth: int = Field(ge=1, le=16)
    activation: Literal[tuple(ACTIVATIONS)]  # type: ignore[valid-type]
    task: Literal[VARIANTS]  # type: ignore[valid-type]
    n: PosInt
    width: int = Field(ge=1, le=4096)
    inits: list[Literal[INITS]] = Field(min_length=1)  # type: ignore[valid-type]
    seeds: list[Seed] = Field(min_length=1)
    tau: float = Field(gt=0, le=1000)
    dt: float = Field(gt=0, le=1)
    substeps: int = Field(ge=1, le=100)
    epochs: PosInt
    lr: LearningRate
    weight_decay: Decay
    batch_size: PosInt
    diagnostic_trials: PosInt
    initial_state: Literal[INITIAL_STATES]  # type: ignore[valid-type]
    checkpoint_every: int = Field(ge=0, le=100_000)


class FlipflopAnalysisSettings(Strict):
    """One attractor analysis job: every trained (model, N) of one experiment (the models run at
    their trained dtype, or float64 where the search needs it)."""

    seed: Seed = Field(description="base seed (Config.seed)")
    device: Device
    experiment: Name
    task: Literal[VARIANTS]  # type: ignore[valid-type]
    n_bins: int = Field(ge=3, le=100_000, description="bins of a trial of the task's data")
    pulse_width: int = Field(ge=1, le=100, description="bins per pulse of the task's data")
    analysis: AttractorAnalysis


class ExpressivityFitSettings(JobSettings):
    """One expressivity fitting job: the sweep restricted to its flow field and gating (the
    examples job: the whole sweep), without the claims thresholds (no fit depends on them, so
    changing one re-runs no fit)."""

    sweep: ExpressivitySweep


class RealworldDataSettings(Strict):
    """One real-world data job: one task's data (the task's data keys, the source of its dataset
    in config ``data``, the base seed)."""

    task: Name
    dataset: Dataset
    seed: Seed = Field(description="base seed (Config.seed)")
    drop_rate: float = Field(ge=0, lt=1)
    max_per_class: Count | None
    limit: SplitLimits
    standardize: StrictBool
    # a dict with `verify` is only a WalkerSource; one without it validates as both and takes
    # the first (pydantic's smart union): checked against the dataset below
    source: DatasetSource | WalkerSource
    cache_dir: str = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self):
        if isinstance(self.source, WalkerSource) != (self.dataset == "walker2d"):
            raise ValueError(f"source: verify is a key of dataset walker2d's source only (dataset {self.dataset!r})")
        _check_dataset_options(self.dataset, self.drop_rate, self.max_per_class)
        return self


class FlipflopClaimsSettings(Strict):
    """The flip-flop claims job: the experiments (the order of the job's input lists), their tasks
    and the thresholds."""

    experiments: list[Name] = Field(min_length=1, description="experiment names, in the order of the input lists")
    tasks: dict[Name, Literal[VARIANTS]]  # type: ignore[valid-type]
    thresholds: FlipFlopClaims

    @model_validator(mode="after")
    def _a_task_per_experiment(self):
        if len(set(self.experiments)) != len(self.experiments):
            raise ValueError(f"experiments lists a name twice: {self.experiments}")
        if set(self.tasks) != set(self.experiments):
            raise ValueError(f"tasks must name exactly the experiments {self.experiments}, not {list(self.tasks)}")
        return self


class TrainabilitySummarySettings(Strict):
    """The trainability summary job: the training epochs and the claims thresholds."""

    epochs: PosInt
    claims: TrainabilityClaims

    @model_validator(mode="after")
    def _compare_within_training(self):
        if self.claims.compare_epoch > self.epochs:
            raise ValueError(f"claims.compare_epoch ({self.claims.compare_epoch}) exceeds epochs ({self.epochs})")
        return self


def _model_of(ann) -> type[BaseModel] | None:
    """The pydantic model inside an annotation (through list[...], dict[..., ...], X | None)."""
    import typing

    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return ann
    for arg in typing.get_args(ann)[::-1]:  # dict[K, V]: V is last
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def _allowed_keys(loc: tuple) -> list[str]:
    """The field names of the model found at ``loc`` (list indices and dict entries skipped)."""
    model: type[BaseModel] | None = Config
    for part in loc:
        if isinstance(part, int) or model is None:
            continue
        field = model.model_fields.get(part)
        if field is None:
            continue  # a dict entry (an experiment's name, ...): the value's model stays
        model = _model_of(field.annotation)
    return sorted(model.model_fields) if model is not None else []


def _bounds(loc: tuple) -> str:
    """The range of the field at ``loc`` ("> 0 and <= 1000"), or "" (no field or no bounds)."""
    model: type[BaseModel] | None = Config
    field = None
    for part in loc:
        if isinstance(part, int) or model is None:
            field = None if isinstance(part, int) else field
            continue
        found = model.model_fields.get(part)
        if found is None:
            field = None
            continue
        field, model = found, _model_of(found.annotation)
    if field is None:
        return ""
    ops = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}
    parts = [f"{sym} {getattr(m, k):g}" for m in field.metadata for k, sym in ops.items() if hasattr(m, k)]
    return " and ".join(parts)


def format_errors(err: ValidationError, source: str | None = None) -> str:
    """One line per bad key: the key, the value given and what is allowed.

    Errors of the members of a union (``threshold: float | "adaptive"``) merge into one line
    listing every alternative. ``source`` (the config files) is named in the heading.
    """
    merged: dict[str, list] = {}
    for e in err.errors():
        loc = list(e["loc"])
        while loc and _is_union_tag(loc[-1]):
            loc.pop()
        loc = tuple(p for p in loc if not _is_union_tag(p))
        is_key = bool(loc) and loc[-1] == "[key]"  # pydantic's marker for a bad dictionary key
        key = _loc(loc[:-1] if is_key else loc)
        kind = e["type"]
        if kind == "extra_forbidden":
            allowed = _allowed_keys(loc[:-1])
            where = f"allowed keys here: {', '.join(allowed)}" if allowed else "this entry takes no keys"
            merged.setdefault(key, []).append(f"config key '{key}': unknown key; {where}")
            continue
        if kind == "missing":
            merged.setdefault(key, []).append(f"config key '{key}': required but missing")
            continue
        what = "not an allowed name here" if is_key else f"got {_shown(e.get('input'))}"
        merged.setdefault(key, []).append((what, _allowed(e, _bounds(loc) if kind == "finite_number" else "")))
    lines = []
    for key, items in merged.items():
        plain = [i for i in items if isinstance(i, str)]
        pairs = [i for i in items if not isinstance(i, str)]
        lines += plain
        if pairs:
            lines.append(f"config key '{key}': {pairs[0][0]}; " + "; or ".join(dict.fromkeys(p[1] for p in pairs)))
    head = f"invalid configuration ({source}):" if source else "invalid configuration:"
    return head + "\n  " + "\n  ".join(lines)


def validate_config(raw: dict, source: str | None = None) -> Config:
    """Validate a plain config dict; raise :class:`ConfigError` naming each bad key.

    ``source`` names where ``raw`` came from (the config files) in the message.
    """
    if not isinstance(raw, dict):
        where = f" ({source})" if source else ""
        raise ConfigError(f"invalid configuration{where}: the top level must be a mapping of keys, got {type(raw).__name__}")
    try:
        return Config.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(format_errors(err, source)) from None


# ------------------------------------------------------------------ config files
class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader that refuses a key given twice in one mapping (the last would win)."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None,
                    f"duplicate key {key!r} (first given on line {seen[key] + 1}; the last would silently win)",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep)


def load_config_file(path) -> dict:
    """Read one config file (YAML or JSON) strictly; every problem is a :class:`ConfigError` naming the file.

    Refused: a missing file, a folder, a file that is not UTF-8, a YAML syntax error (with its
    line and column; tabs cannot indent YAML), a duplicate key, an empty or comment-only file and
    a top level that is not a mapping.
    """
    from pathlib import Path

    path = Path(path)
    name = f"config file {str(path)!r}"
    if not path.exists():
        raise ConfigError(f"{name}: not found (working directory: {Path.cwd()})")
    if path.is_dir():
        raise ConfigError(f"{name}: is a folder, not a file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{name}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    except OSError as err:
        raise ConfigError(f"{name}: cannot be read ({err.strerror})") from None
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass: no Python objects
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = err.problem or str(err)
        if "\t" in problem or "'\\t'" in problem:
            problem += " (tabs cannot indent YAML: use spaces)"
        raise ConfigError(f"{name}{where}: {problem}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{name}: not valid YAML ({err})") from None
    if data is None:
        raise ConfigError(f"{name}: holds no settings (empty or only comments); a config file is a mapping of keys")
    if not isinstance(data, dict):
        raise ConfigError(f"{name}: the top level is a {type(data).__name__}; it must be a mapping of keys (key: value)")
    return data


def merge_config(base: dict, over: dict) -> dict:
    """Snakemake's overlay of config files: nested mappings merge, everything else is replaced."""
    out = dict(base)
    for k, v in over.items():
        out[k] = merge_config(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_config_files(paths, overrides: dict | None = None) -> Config:
    """Load, overlay (in order) and validate config files; errors name the file or the files."""
    raw: dict = {}
    for p in paths:
        raw = merge_config(raw, load_config_file(p))
    if overrides:
        raw = merge_config(raw, overrides)
    source = ", ".join(map(str, paths)) + (" and --config" if overrides else "")
    return validate_config(raw, source or None)


def retype_cli_value(value):
    """Give the scalars of a nested ``--config`` value their YAML types.

    Snakemake reads ``--config flipflop="{data: {n_trials: 60}}"`` with YAML's BaseLoader, which
    makes every scalar a string ("60"); strict validation would refuse them. Each string is read
    again as a YAML scalar (60, 1.0e-6, true, null); one that does not read as a scalar stays text.
    """
    if isinstance(value, dict):
        return {k: retype_cli_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [retype_cli_value(v) for v in value]
    if isinstance(value, str):
        with contextlib.suppress(yaml.YAMLError):
            typed = yaml.safe_load(value)
            if typed is None or isinstance(typed, (bool, int, float, str)):
                return typed if value.strip() else value
    return value


def cli_overrides(config_args: dict) -> dict:
    """The nested ``--config`` values of Snakemake (``workflow.config_settings.config``), retyped."""
    return {k: retype_cli_value(v) for k, v in config_args.items() if isinstance(v, (dict, list))}


def _config_value(text: str):
    """A ``--config KEY=VALUE`` value as Snakemake reads it: int, float, true/false, YAML, text."""
    for parse in (int, float):
        with contextlib.suppress(ValueError):
            return parse(text)
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    with contextlib.suppress(yaml.YAMLError):
        return retype_cli_value(yaml.load(text, Loader=yaml.BaseLoader))  # as Snakemake does
    return text


def check_snakemake_args(argv: list[str], base: str = "config/config.yaml") -> Config:
    """Check the config arguments of a snakemake command line before Snakemake reads them.

    Snakemake stops with a traceback or a message that names no file on a missing config
    file, a folder, an empty file or ``--config device`` without ``=value``; this check says
    what is wrong in one line. Returns the validated configuration (``base`` overlaid with
    every ``--configfile`` in order, then the ``--config`` values).
    """
    files, overrides = [base], {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        opt, eq, inline = arg.partition("=")
        if opt in ("--configfile", "--configfiles", "--config", "-C"):
            values = [inline] if eq else []
            i += 1
            while not eq and i < len(argv) and not argv[i].startswith("-"):
                values.append(argv[i])
                i += 1
            if not values:
                example = "config/paper.yaml" if opt.startswith("--configfile") else "device=cpu"
                raise ConfigError(f"{opt} needs a value (e.g. {opt} {example})")
            if opt.startswith("--configfile"):
                files += values
            else:
                for item in values:
                    key, eq2, value = item.partition("=")
                    if not eq2 or not re.fullmatch(r"[A-Za-z_][\w-]*", key):
                        raise ConfigError(f"{opt} {item}: expected KEY=VALUE (e.g. {opt} device=cpu)")
                    overrides[key] = None if value == "" else _config_value(value)
            continue
        i += 1
    return load_config_files(files, overrides)


def json_schema() -> dict:
    return Config.model_json_schema()


if __name__ == "__main__":  # python -m gnode.config --schema > workflow/schemas/config.schema.json
    if sys.argv[1:] == ["--schema"]:
        print(json.dumps(json_schema(), indent=2, sort_keys=True))
    else:
        print("usage: python -m gnode.config --schema", file=sys.stderr)
        sys.exit(2)
