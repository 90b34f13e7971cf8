"""Plan-time memory (and runtime) estimate of the training jobs, checked before any job.

A training job holds, for M members of P parameters each, trained on batches of B sequences
of T Euler steps (bins x substeps):

- parameters: M P x 5 numbers (weights, gradients, AdamW's two moments, the best state kept);
- activations kept for backpropagation through time: M B T x (numbers one step keeps: states,
  gates, pre- and post-activations of F's layers), x the stages of a torchdiffeq solver;
- evaluation: M x (up to 1000 sequences, the chunk of ``evaluate_loss``) x T x (N + outputs);
- data: the train and test arrays on the device, and the host's copy of the table.

Numbers are ``dtype``'s size. The estimate is an upper-leaning guide (no allocator slack is
modelled): :data:`BASE_MB` covers Python, torch and pandas, :data:`SAFETY` the rest. It feeds
the rules' ``mem_mb`` and refuses, at plan time, a job that cannot fit the machine.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

BYTES = {"float32": 4, "float64": 8}
#: memory of a job's process before any tensor: Python, torch, numpy, pandas, pyarrow (MB;
#: the tiny run's training jobs peaked at 294-350 MB max RSS, logs/benchmarks)
BASE_MB = 500
#: factor on the tensor estimate for allocator slack and temporaries (measured on the CPU: a
#: gnODE N = 400, F 2 x 64, 2 members, batch 50, 100 bins grew by 204 MB; estimated 133 MB)
SAFETY = 2.0
#: numbers kept per member, sequence and Euler step for backpropagation (N: hidden size, W: width, D: depth)
_STEP_FLOATS = {
    "rnn": lambda N, W, D: 2 * N,
    "gru": lambda N, W, D: 6 * N,
    "mgru": lambda N, W, D: 5 * N,
    "node": lambda N, W, D: 3 * N + 2 * D * W,
    "gnode": lambda N, W, D: 5 * N + 2 * D * W,
}
#: evaluations of the vector field per Euler step kept by each solver (adjoint keeps none)
_SOLVER_STAGES = {"native": 1, "euler": 1, "rk4": 4, "dopri5": 7}
MAX_LISTED = 8  # jobs named in the error, the rest counted
EVAL_CHUNK = 1000  # gnode.training.evaluate_loss: sequences evaluated at once
#: (sequence length, features + outputs, sequences of the whole dataset) of the real-world data,
#: upper bounds used before the data is prepared (Walker2d: ~32 windows of 64 per rollout x 400)
DATASET_SHAPES = {
    "walker2d": (64, 34, 13_000),
    "character_trajectories": (182, 24, 2_858),
    "speech_commands": (161, 21, 35_000),
}


@dataclass(frozen=True)
class Estimate:
    """Bytes of one job by kind; ``device_bytes`` live on the compute device, data on the host too."""

    parameters: int
    activations: int
    evaluation: int
    data: int

    @property
    def device_bytes(self) -> int:
        return self.parameters + self.activations + self.evaluation + self.data

    @property
    def host_bytes(self) -> int:
        """Bytes of tensors on the host when the job runs on the CPU."""
        return self.device_bytes

    def mem_mb(self, on_gpu: bool = False) -> int:
        """The job's ``mem_mb`` resource (host memory), rounded up to 100 MB."""
        # the data is held three times while it is loaded: Arrow table, numpy arrays, tensors
        tensors = 3 * self.data if on_gpu else self.host_bytes + 2 * self.data
        return int(math.ceil((BASE_MB + SAFETY * tensors / 2**20) / 100) * 100)

    def describe(self) -> str:
        def gib(b: float) -> str:
            return f"{b / 2**30:.2f} GiB"

        return (f"{gib(self.device_bytes)} = parameters and optimiser {gib(self.parameters)} + activations "
                f"kept for BPTT {gib(self.activations)} + evaluation {gib(self.evaluation)} + data {gib(self.data)}")


def training_estimate(spec, members: int, batch: int, steps: int, n_eval: int, data_numbers: int,
                      dtype: str) -> Estimate:
    """Bytes of training ``members`` models of ``spec`` on batches of ``batch`` sequences of
    ``steps`` bins (``data_numbers``: numbers of the data arrays held during training)."""
    from gnode.models import parameter_count

    b = BYTES[dtype]
    N, W, D = spec.n_hidden, spec.width, spec.depth
    euler_steps = steps * spec.substeps
    stages = 1 if spec.adjoint else _SOLVER_STAGES.get(spec.solver, 1)
    kept_steps = 1 if spec.adjoint else euler_steps  # adjoint: memory constant in time
    per_step = _STEP_FLOATS[spec.kind](N, W, D) * stages
    return Estimate(
        parameters=members * parameter_count(spec) * 5 * b,
        activations=members * batch * kept_steps * per_step * b,
        evaluation=members * min(EVAL_CHUNK, n_eval) * steps * (N + spec.n_output) * b,
        data=data_numbers * b,
    )


def flipflop_job_shape(cfg, experiment: str, model: str, n: int):
    """(spec, members of one batch-size group) of one flip-flop training job (experiment, model, N)."""
    from gnode.studies import flipflop as ff
    from gnode.tasks.flipflop import n_channels

    exp = cfg.flipflop.experiments[experiment]
    spec = ff.model_spec(model, n, n_channels(exp.task), flow=exp.flow, integration=exp.integration,
                         initial_state=exp.initial_state)
    return spec, len(exp.lr[model]) * len(exp.weight_decay) * len(exp.seeds)


def flipflop_estimate(cfg, experiment: str, model: str, n: int) -> Estimate:
    """The estimate of one flip-flop training job (experiment, model, N)."""
    exp, d = cfg.flipflop.experiments[experiment], cfg.flipflop.data
    spec, members = flipflop_job_shape(cfg, experiment, model, n)  # members: one batch-size group at a time
    c = spec.n_input
    # inputs and targets of every trial, plus the long table read from Parquet (~6 numbers a row)
    data_numbers = d.n_trials * d.n_bins * c * (2 + 6)
    batch = min(max(exp.batch_size), d.n_train)  # a batch holds at most the training set
    return training_estimate(spec, members, batch, d.n_bins, d.n_trials - d.n_train,
                             data_numbers, cfg.dtype)


def realworld_estimate(cfg, task: str, model: str) -> Estimate:
    """The estimate of one real-world training job (all seeds of one model)."""
    from gnode.studies import realworld as rw

    t = cfg.realworld.tasks[task]
    spec = rw.matched_size(t, model, *rw.task_shape(t.dataset))  # as the job's settings (gnode.plan)
    seq_len, numbers_per_bin, n_seq = DATASET_SHAPES[t.dataset]
    limits = (t.limit.train, t.limit.val, t.limit.test)
    if all(x is not None for x in limits):
        n_seq = min(n_seq, sum(limits))
    data_numbers = n_seq * seq_len * (numbers_per_bin + 2)  # + elapsed time and mask
    return training_estimate(spec, len(t.seeds), min(t.batch_size, n_seq), seq_len, n_seq, data_numbers, cfg.dtype)


def trainability_job_shape(cfg, model: str, depth: int, activation: str):
    """(spec, members, batch, flip-flop data settings) of one trainability job."""
    from gnode.plan import trainability_train_settings
    from gnode.studies import trainability as tr
    from gnode.tasks.flipflop import n_channels

    s = trainability_train_settings(cfg, model, depth, activation)
    spec = tr.model_spec(s, s.inits[0], n_channels(s.task))  # the inits differ only in the drawn values
    d = cfg.flipflop.data
    return spec, len(s.inits) * len(s.seeds), min(s.batch_size, d.n_train), d


def trainability_estimate(cfg, model: str, depth: int, activation: str) -> Estimate:
    """The estimate of one trainability job (every init x seed of one model, depth and activation)."""
    spec, members, batch, d = trainability_job_shape(cfg, model, depth, activation)
    c = spec.n_input
    return training_estimate(spec, members, batch, d.n_bins, d.n_trials - d.n_train, d.n_trials * d.n_bins * c * (2 + 6),
                             cfg.dtype)


# ------------------------------------------------------------------ runtime
#: measured on one thread of the development VM's CPU (tests' 2-core VM; gnODE, N = 6, 100, 400 and
#: GRU N = 100, 2 members, batch 50, 100 bins): seconds per (iteration x bin) of Python overhead
#: and multiply-adds per second; a GPU or more threads are faster, so this is an upper bound
SECONDS_PER_STEP = 2.5e-4
FLOPS_PER_SECOND = 2.0e10
#: factor on the estimate (slower machines, non-fused solvers) and the least runtime asked for
RUNTIME_MARGIN = 3.0
MIN_RUNTIME_MIN = 10


def training_seconds(
    spec, members: int, batch: int, steps: int, n_train: int, n_eval: int, epochs: int, select_every: str = "epoch"
) -> float:
    """Seconds of training ``members`` models for ``epochs`` epochs (single CPU thread).

    Each epoch is ceil(n_train / batch) iterations of a forward and backward pass (3 x the
    2 P flops per sequence and step) and evaluations of ``n_eval`` sequences (forward only):
    one per epoch, or one per iteration with ``select_every = "iteration"``.
    """
    from gnode.models import parameter_count

    euler = steps * spec.substeps * (1 if spec.solver == "native" else _SOLVER_STAGES.get(spec.solver, 1))
    batches = math.ceil(n_train / batch)
    evals = batches if select_every == "iteration" else 1
    iterations = batches + evals * math.ceil(n_eval / EVAL_CHUNK)
    flops = members * (3 * n_train + evals * n_eval) * euler * 2 * parameter_count(spec)
    return epochs * (iterations * euler * SECONDS_PER_STEP + flops / FLOPS_PER_SECOND)


def runtime_min(seconds: float) -> int:
    """A job's ``runtime`` resource (minutes) from its estimated seconds."""
    return max(MIN_RUNTIME_MIN, math.ceil(RUNTIME_MARGIN * seconds / 60))


def flipflop_runtime_min(cfg, experiment: str, model: str, n: int) -> int:
    """``runtime`` of one flip-flop training job: every batch-size group, one after the other."""
    exp, d = cfg.flipflop.experiments[experiment], cfg.flipflop.data
    spec, members = flipflop_job_shape(cfg, experiment, model, n)
    seconds = sum(
        training_seconds(spec, members, min(bs, d.n_train), d.n_bins, d.n_train, d.n_trials - d.n_train, exp.epochs,
                         exp.select_every)
        for bs in exp.batch_size
    )
    return runtime_min(seconds)


def realworld_runtime_min(cfg, task: str, model: str) -> int:
    """``runtime`` of one real-world training job (all seeds, every epoch: early stopping may end sooner)."""
    from gnode.studies import realworld as rw

    t = cfg.realworld.tasks[task]
    spec = rw.matched_size(t, model, *rw.task_shape(t.dataset))  # as the job's settings (gnode.plan)
    seq_len, _, n_seq = DATASET_SHAPES[t.dataset]
    n_train = min(n_seq, t.limit.train or n_seq)
    n_eval = min(n_seq, (t.limit.val or n_seq) + (t.limit.test or n_seq))
    return runtime_min(training_seconds(spec, len(t.seeds), min(t.batch_size, n_train), seq_len, n_train, n_eval, t.epochs))


def trainability_runtime_min(cfg, model: str, depth: int, activation: str) -> int:
    """``runtime`` of one trainability job (its diagnostics at initialisation are seconds)."""
    spec, members, batch, d = trainability_job_shape(cfg, model, depth, activation)
    return runtime_min(training_seconds(spec, members, batch, d.n_bins, d.n_train, d.n_trials - d.n_train,
                                        cfg.trainability.epochs))


#: study -> (memory estimate, runtime in minutes) of its training jobs, keyed as the rules' wildcards
TRAINING_JOBS = {
    "flipflop": (flipflop_estimate, flipflop_runtime_min),
    "realworld": (realworld_estimate, realworld_runtime_min),
    "trainability": (trainability_estimate, trainability_runtime_min),
}


def machine_memory(device=None) -> tuple[int, int | None]:
    """(host RAM bytes, GPU memory bytes or None) of this machine."""
    host = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    gpu = None
    if device is not None and getattr(device, "type", device) == "cuda":
        import torch

        gpu = torch.cuda.get_device_properties(device).total_memory
    return host, gpu


def check_fit(estimates: dict[str, Estimate], device=None, host: int | None = None, gpu: int | None = None) -> None:
    """Raise :class:`MemoryError` listing every job whose estimate exceeds the machine's memory."""
    mh, mg = machine_memory(device)
    host, gpu = host or mh, gpu or mg
    on_gpu = gpu is not None
    too_big = []
    for label, est in estimates.items():
        need_host = est.mem_mb(on_gpu) * 2**20
        if need_host > host:
            too_big.append(f"{label}: needs ~{need_host / 2**30:.1f} GiB of RAM, the machine has "
                           f"{host / 2**30:.1f} GiB ({est.describe()})")
        elif on_gpu and est.device_bytes * SAFETY > gpu:
            too_big.append(f"{label}: needs ~{est.device_bytes * SAFETY / 2**30:.1f} GiB of GPU memory, the GPU has "
                           f"{gpu / 2**30:.1f} GiB ({est.describe()})")
    if too_big:
        shown = too_big[:MAX_LISTED] + ([f"... and {len(too_big) - MAX_LISTED} more jobs"] if len(too_big) > MAX_LISTED else [])
        raise MemoryError(
            f"{len(too_big)} jobs cannot fit this machine's memory (reduce sizes, widths, batch sizes, "
            "grid or trials):\n  " + "\n  ".join(shown)
        )
