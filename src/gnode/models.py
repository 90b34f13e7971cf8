"""Recurrent models of the study, as ensembles of independent members.

Every model here holds ``E`` independent members (``E = 1`` for a single model) whose
parameters are stacked along a leading dimension, so that many seeds or grid points train
together in one process with batched matrix products. Member ``e`` is initialised from its
own seed, so it equals a single model built with that seed.

Kinds (``ModelSpec.kind``; the registry :data:`gnode.model_kinds.MODELS` says what each kind's
parameters are, how it steps, and whether it is continuous and gated):

- ``rnn``   vanilla RNN       h <- tanh(W h + U x + b)
- ``gru``   GRU (Cho et al.)  z, r gates; h <- (1-z) h + z tanh(W (r*h) + U x + b)
- ``mgru``  minimal GRU       h <- (1-z) h + z tanh(W h + U x + b)
- ``node``  neural ODE        tau dh/dt = -h + F(h, x)
- ``gnode`` gated neural ODE  tau dh/dt = z * (-h + F(h, x)),  z = sigmoid(W_z h + U_z x + b_z)

F, the flow field, is an MLP of depth L and width M: ``act(W1 h + U1 x + b1)``, L-1 hidden
layers ``act(W h + b)`` of width M, then a linear layer back to N. ``depth = 0`` is the
single-layer flow ``F = act(W h + U x + b)`` (N units; with tanh and alpha = 1 a gnODE is then
exactly an mGRU). Shapes: inputs ``x`` (E, B, T, I) or (B, T, I) shared by all members;
states (E, B, T, N); outputs (E, B, T, O). One time bin of width ``dt`` per input sample.

The initial state h0 (``ModelSpec.initial_state``, :data:`INITIAL_STATES`) is zeros, a learned
vector, a learned affine map of the first input bin, or a fixed seeded draw; the initialisation
(``ModelSpec.init``, :data:`INITS`) is Glorot (xavier), the authors' critical rule or our
iterated variant of it (docs/design.md, "Critical initialisation").
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

# the kinds' registry; its names stay importable from here (MODEL_KINDS, CONTINUOUS_KINDS, ...)
from gnode.chunks import member_chunks, step_bytes
from gnode.model_kinds import (  # noqa: F401
    ACTIVATIONS,
    CONTINUOUS_KINDS,
    GATED_KINDS,
    MODEL_KINDS,
    MODELS,
    ModelKind,
)

logger = logging.getLogger(__name__)

# xavier: the authors' default (Glorot-uniform weights); critical: the authors' critical
# initialisation (init_type = "our_normal"), one rescaling; critical_iterated: ours, iterated
INITS = ("xavier", "critical", "critical_iterated")
# how h0 is made (per member): zeros; learned: a trained vector; learned_affine: h0 = x_1 A + b of
# the first input bin, A and b trained (the authors' 3-bit fixed and 2-bit tasks); fixed_random:
# a Glorot-normal draw from the member's seed, not trained (the authors' 3-bit variable task)
INITIAL_STATES = ("zeros", "learned", "learned_affine", "fixed_random")
SOLVERS = ("native", "euler", "rk4", "dopri5")  # native: our Euler scan; others: torchdiffeq


@dataclass(frozen=True)
class ModelSpec:
    """Architecture and integration settings shared by all members of an ensemble.

    ``tau`` and ``dt`` are in the task's time units (seconds of the flip-flop's [0, 1] trial);
    ``alpha = dt / (substeps * tau)`` is the Euler factor of one sub-step.
    """

    kind: str
    n_input: int
    n_hidden: int
    n_output: int
    depth: int = 1
    width: int = 100
    activation: str = "relu"
    tau: float = 0.01
    dt: float = 0.01
    substeps: int = 1
    solver: str = "native"
    adjoint: bool = False
    rtol: float = 1e-6
    atol: float = 1e-8
    initial_state: str = "zeros"
    init: str = "xavier"

    def __post_init__(self):
        _check_choice("kind", self.kind, MODEL_KINDS)
        _check_choice("initial_state", self.initial_state, INITIAL_STATES)
        _check_choice("activation", self.activation, tuple(ACTIVATIONS))
        _check_choice("init", self.init, INITS)
        _check_choice("solver", self.solver, SOLVERS)
        if not self.continuous and self.solver != "native":
            raise ValueError(
                f"solver={self.solver!r} needs a continuous model {CONTINUOUS_KINDS}, got kind={self.kind!r}"
            )
        for key in ("n_hidden", "n_output", "substeps"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be >= 1, got {getattr(self, key)}")
        if self.n_input < 0 or self.depth < 0 or (self.depth >= 1 and self.width < 1):
            raise ValueError("n_input and depth must be >= 0 and width >= 1 when depth >= 1")
        if self.tau <= 0 or self.dt <= 0:
            raise ValueError("tau and dt must be > 0")

    @property
    def model(self) -> ModelKind:
        """The registry entry of :attr:`kind`."""
        return MODELS[self.kind]

    @property
    def continuous(self) -> bool:
        """A vector field integrated over each bin's elapsed time (node, gnode)."""
        return MODELS[self.kind].continuous

    @property
    def gated(self) -> bool:
        """Has an update gate z (gru, mgru, gnode)."""
        return MODELS[self.kind].gated

    @property
    def alpha(self) -> float:
        return self.dt / (self.substeps * self.tau)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _check_choice(key: str, value, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ValueError(f"{key}={value!r} is not one of {list(allowed)}")


def _param_shapes(spec: ModelSpec) -> dict[str, tuple[int, int]]:
    """Per-member (fan_in, fan_out) of every weight, in draw order: the kind's dynamics and gate
    (:attr:`ModelKind.shapes`), the readout, h0's map; biases are named b_*, weights W_*/U_*."""
    n, i, o = spec.n_hidden, spec.n_input, spec.n_output
    shapes = spec.model.shapes(spec) | {"W_o": (n, o), "b_o": (1, o)}
    if spec.initial_state == "learned_affine":  # h0 = x_1 A_h0 + b_h0
        shapes |= {"A_h0": (i, n), "b_h0": (1, n)}
    return shapes


READOUT = ("W_o", "b_o")
H0_PARAMS = ("A_h0", "b_h0")


def dynamics_parameters(spec: ModelSpec) -> list[str]:
    """Names of the parameters of the dynamics and the gate: all but the readout and h0's."""
    return [k for k in _param_shapes(spec) if k not in READOUT + H0_PARAMS]


def parameter_count(spec: ModelSpec) -> int:
    """Trainable parameters of one member of ``spec``, from the shapes alone (nothing is built)."""
    learned = spec.n_hidden if spec.initial_state == "learned" else 0
    return sum(a * b for a, b in _param_shapes(spec).values()) + learned


def _input_names(spec: ModelSpec) -> list[str]:
    """Names of the input weights, in the order their projections are fused."""
    return [k for k in _param_shapes(spec) if k.startswith("U")]


class RecurrentEnsemble(nn.Module):
    """``E`` independent recurrent models of one architecture.

    Args:
        spec: the architecture.
        seeds: one integer per member; member e is initialised from ``seeds[e]``.
        device, dtype: where the parameters live (drawn on the CPU first, so that a seed gives
            the same initial weights on every device).
        mean_input: (I,) the mean input over all training trials and bins, and
        mean_first_input: (I,) the mean over training trials of the first bin's input: where
            ``init='critical'`` evaluates the Jacobian (see :func:`critical_scale`); required
            by that init only (the second only with ``initial_state='learned_affine'``).

    ``h0`` is a parameter (E, 1, N) for ``initial_state='learned'`` and a buffer (saved and
    loaded, not trained) for ``'fixed_random'``; ``A_h0`` (E, I, N) and ``b_h0`` (E, 1, N) are
    the parameters of ``'learned_affine'``.
    """

    use_scan = True  # node/gnode training: Euler scan with the hand-written backward (gnode.scan)

    def __init__(
        self,
        spec: ModelSpec,
        seeds: Sequence[int],
        *,
        device=None,
        dtype=torch.float32,
        initialise=True,
        mean_input: Tensor | None = None,
        mean_first_input: Tensor | None = None,
    ):
        super().__init__()
        self.spec = spec
        self.seeds = [int(s) for s in seeds]
        if not self.seeds:
            raise ValueError("an ensemble needs at least one member seed")
        shapes = _param_shapes(spec)
        if initialise:
            members = [_init_member(spec, shapes, s, mean_input, mean_first_input) for s in self.seeds]
        for name, shape in shapes.items():
            if initialise:
                stacked = torch.stack([mem[name] for mem in members]).to(device=device, dtype=dtype)
            else:  # to be filled by load_state_dict or a copy
                stacked = torch.zeros((len(self.seeds),) + shape, device=device, dtype=dtype)
            self.register_parameter(name, nn.Parameter(stacked))
        if spec.initial_state == "learned":
            self.h0 = nn.Parameter(torch.zeros(len(self.seeds), 1, spec.n_hidden, device=device, dtype=dtype))
        elif spec.initial_state == "fixed_random":
            h0 = (
                torch.stack([mem["h0"] for mem in members])
                if initialise
                else torch.zeros(len(self.seeds), 1, spec.n_hidden)
            )
            self.register_buffer("h0", h0.to(device=device, dtype=dtype))

    # ------------------------------------------------------------------ basics
    @property
    def n_members(self) -> int:
        return len(self.seeds)

    def member_parameter_count(self) -> int:
        """Trainable parameters of one member."""
        return sum(p[0].numel() for p in self.parameters())

    def initial_state(self, x: Tensor) -> Tensor:
        """h0 (E, B, N) for inputs ``x`` (E, B, T, I) or (B, T, I), by ``spec.initial_state``.

        Only ``learned_affine`` reads the input (its first bin, ``x[..., 0, :]``); the other
        modes use its batch size alone.
        """
        x = self._expand_input(x)
        batch = x.shape[1]
        mode = self.spec.initial_state
        if mode == "learned_affine":
            return torch.baddbmm(self.b_h0, x[:, :, 0], self.A_h0)
        if mode in ("learned", "fixed_random"):
            return self.h0.expand(-1, batch, -1)
        ref = self.W_o
        return torch.zeros(self.n_members, batch, self.spec.n_hidden, device=ref.device, dtype=ref.dtype)

    def _expand_input(self, x: Tensor) -> Tensor:
        if x.dim() == 3:
            x = x.unsqueeze(0).expand(self.n_members, -1, -1, -1)
        if x.dim() != 4 or x.shape[0] != self.n_members or x.shape[-1] != self.spec.n_input:
            raise ValueError(
                f"input must be (E={self.n_members}, B, T, I={self.spec.n_input}) or (B, T, I), got {tuple(x.shape)}"
            )
        return x

    def project_inputs(self, x: Tensor) -> dict[str, Tensor]:
        """All input projections ``x U + b`` for every bin at once: name -> (E, B, T, out).

        Hoisting them out of the time loop turns T small matmuls into one large one.
        """
        e, b, t, _ = x.shape
        names = _input_names(self.spec)
        sizes = [getattr(self, n).shape[-1] for n in names]
        bias = torch.cat([getattr(self, "b" + n[1:]) for n in names], dim=-1)  # (E, 1, sum)
        if self.spec.n_input == 0:
            proj = bias.unsqueeze(2).expand(e, b, t, -1)
        else:
            u = torch.cat([getattr(self, n) for n in names], dim=-1)  # (E, I, sum)
            proj = torch.baddbmm(bias, x.reshape(e, b * t, -1), u).reshape(e, b, t, -1)
        return dict(zip(names, proj.split(sizes, dim=-1)))

    # ----------------------------------------------------------- dynamics
    def flow(self, h: Tensor, xp: dict[str, Tensor]) -> Tensor:
        """F(h, x) of a continuous model: (E, B, N) -> (E, B, N); ``xp`` holds U x + b per layer."""
        act = ACTIVATIONS[self.spec.activation]
        a = act(torch.baddbmm(xp["U_1"], h, self.W_1))
        for k in range(2, self.spec.depth + 1):
            a = act(torch.baddbmm(getattr(self, f"b_{k}"), a, getattr(self, f"W_{k}")))
        if self.spec.depth >= 1:
            a = torch.baddbmm(self.b_out, a, self.W_out)
        return a

    def gate(self, h: Tensor, xp: dict[str, Tensor]) -> Tensor:
        """z of gnODE / mGRU: (E, B, N) in (0, 1)."""
        return torch.sigmoid(torch.baddbmm(xp["U_z"], h, self.W_z))

    def vector_field(self, h: Tensor, xp: dict[str, Tensor]) -> Tensor:
        """dh/dt of a continuous model (per unit time): (E, B, N)."""
        if not self.spec.continuous:
            raise ValueError(f"{self.spec.kind} is a discrete-time model and has no vector field")
        return self.spec.model.step(self, h, xp)

    def discrete_step(self, h: Tensor, xp: dict[str, Tensor]) -> Tensor:
        """One update of a discrete-time model (rnn, gru, mgru): (E, B, N) -> (E, B, N)."""
        if self.spec.continuous:
            raise ValueError(f"{self.spec.kind} is a continuous model: use vector_field")
        return self.spec.model.step(self, h, xp)

    def euler_step(self, h: Tensor, xp: dict[str, Tensor], alpha) -> Tensor:
        """One Euler sub-step of a continuous model; ``alpha`` = step / tau, float or (E|1, B, 1)."""
        f = self.flow(h, xp)
        if self.spec.gated:
            return torch.lerp(h, f, alpha * self.gate(h, xp))
        return torch.lerp(h, f, alpha) if isinstance(alpha, float) else h + alpha * (f - h)

    def _fused_euler(self, x: Tensor, h: Tensor, dt: Tensor | None) -> Tensor:
        """The Euler scan of node/gnode; same states as :meth:`_fused_euler_autograd`.

        Runs :func:`gnode.scan.euler_scan` (column layout; with gradients a forward without a
        graph and a hand-written backward pass). For what it does not cover (a ``dt`` that
        requires grad, or ``use_scan = False`` for double backward / ``create_graph``), the
        autograd loop.
        """
        if not self.use_scan or (dt is not None and dt.requires_grad):
            return self._fused_euler_autograd(x, h, dt)
        from gnode.scan import euler_scan

        spec = self.spec
        if dt is None:
            alpha = spec.alpha
        else:
            d = dt if dt.dim() == 3 else dt.unsqueeze(0)
            alpha = spec.alpha * (d / spec.dt)  # (E|1, B, T), as _bin_scale per bin
        return euler_scan(self, x, h, alpha)

    def _fused_euler_autograd(self, x: Tensor, h: Tensor, dt: Tensor | None) -> Tensor:
        """The Euler scan of node/gnode with the first layer and the gate in one product per step.

        Same arithmetic as :meth:`euler_step`; h @ [W_1 | W_z] is one batched matmul, and the
        input terms of both are computed for all bins before the loop.
        """
        spec = self.spec
        gated = spec.gated
        act = ACTIVATIONS[spec.activation]
        xp_all = self.project_inputs(x)
        first = xp_all["U_1"].shape[-1]
        w = torch.cat([self.W_1, self.W_z], -1) if gated else self.W_1
        pre_x = (torch.cat([xp_all["U_1"], xp_all["U_z"]], -1) if gated else xp_all["U_1"]).unbind(2)
        hidden = [(getattr(self, f"W_{k}"), getattr(self, f"b_{k}")) for k in range(2, spec.depth + 1)]
        states = []
        for k in range(x.shape[2]):
            alpha = spec.alpha * self._bin_scale(dt, k)
            for _ in range(spec.substeps):
                pre = torch.baddbmm(pre_x[k], h, w)
                a = act(pre[..., :first]) if gated else act(pre)
                for wk, bk in hidden:
                    a = act(torch.baddbmm(bk, a, wk))
                f = torch.baddbmm(self.b_out, a, self.W_out) if spec.depth >= 1 else a
                if gated:
                    h = torch.lerp(h, f, alpha * torch.sigmoid(pre[..., first:]))
                elif isinstance(alpha, float):
                    h = torch.lerp(h, f, alpha)
                else:
                    h = h + alpha * (f - h)
            states.append(h)
        return torch.stack(states, dim=2)

    # ------------------------------------------------------------ forward
    def forward(self, x: Tensor, h0: Tensor | None = None, dt: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Run all members over the input's time bins.

        Args:
            x: (E, B, T, I) or (B, T, I); held constant within each bin. For an autonomous
                model (``n_input = 0``) pass ``x`` of shape (B, T, 0).
            h0: (E, B, N) initial state; default :meth:`initial_state` of ``x``.
            dt: optional (B, T) or (E, B, T) bin widths in time units (irregular sampling);
                default ``spec.dt`` for every bin. Discrete-time models ignore it.

        Returns:
            y: (E, B, T, O) readout after each bin; h: (E, B, T, N) states after each bin.
        """
        x = self._expand_input(x)
        e, b, t, _ = x.shape
        h = self.initial_state(x) if h0 is None else h0
        if self.spec.continuous and self.spec.solver != "native":
            states = self._integrate_torchdiffeq(x, h, dt)
        else:
            states = self._scan(x, h, dt)
        return self.readout(states), states

    def readout(self, states: Tensor) -> Tensor:
        """y = h W_o + b_o: (E, B, T, N) -> (E, B, T, O).

        States from :mod:`gnode.scan` are a strided view of its column-layout buffer, or a copy
        in that layout when the members ran in chunks (B the
        fastest dimension); for them the product is taken as W_o^T h^T (one copy of the states
        into (E, N, T B) first), whose output (O, T B) is wide: about 2.5x faster, forward and
        backward, than the (T B, O) one for O of 1 to 3 on the project's CPU (benchmarks/README.md).
        """
        e, b, t, n = states.shape
        if states.stride(1) == 1 and b > 1:
            cols = states.permute(0, 3, 2, 1).reshape(e, n, t * b)
            y = torch.bmm(self.W_o.transpose(1, 2), cols).add_(self.b_o.transpose(1, 2))
            return y.view(e, -1, t, b).permute(0, 3, 2, 1)
        return torch.baddbmm(self.b_o, states.reshape(e, b * t, n), self.W_o).reshape(e, b, t, -1)

    def _bin_scale(self, dt: Tensor | None, t_index: int):
        """Bin width of bin ``t_index`` relative to spec.dt: 1.0 or (E|1, B, 1)."""
        if dt is None:
            return 1.0
        d = dt[..., t_index] if dt.dim() == 3 else dt[:, t_index].unsqueeze(0)
        return (d / self.spec.dt).unsqueeze(-1)

    def _scan(self, x: Tensor, h: Tensor, dt: Tensor | None) -> Tensor:
        if self.spec.continuous:
            return self._fused_euler(x, h, dt)
        chunks = member_chunks(self.n_members, self._step_bytes(x.shape[1]), x.shape[1], x.device)
        if len(chunks) == 1:
            return self._discrete_loop(self, h, x)
        # each parameter split once (one node whose backward is one cat; a slice per chunk would
        # send a whole (E, ...) zero-padded gradient back per chunk), and each chunk projects its
        # own inputs (a slice of all members' projections would do the same per chunk)
        sizes = [c.stop - c.start for c in chunks]
        parts = {n: p.split(sizes) for n, p in self.named_parameters()}
        return torch.cat([self._discrete_loop(_MemberChunk(self, c, {n: v[i] for n, v in parts.items()}), h[c], x[c])
                          for i, c in enumerate(chunks)], 0)

    def _step_bytes(self, batch: int) -> int:
        """One member's parameters and one step's activations of a discrete model, in bytes: what
        :func:`gnode.chunks.member_chunks` fits into a core's cache (the readout and h0 are
        counted too: a few percent, and simpler than listing the step's weights per kind)."""
        params = dict(self.named_parameters())
        rows = sum(p.shape[-1] for n, p in params.items() if n.startswith("W") and n != "W_o")  # N per gate
        return step_bytes(list(params.values()), rows, batch)

    @staticmethod
    def _discrete_loop(model, h: Tensor, x: Tensor) -> Tensor:
        """States (E, B, T, N) of a discrete ``model`` (an ensemble or a chunk of one) from h
        (E, B, N) and inputs x (E, B, T, I)."""
        # unbind, not indexing: the backward of x[:, :, k] allocates and fills a whole
        # (E, B, T, .) zero tensor per bin (O(T^2) work); unbind's backward is one stack
        xp_bins = {n: p.unbind(2) for n, p in model.project_inputs(x).items()}
        step = model.spec.model.step
        states = []
        for k in range(x.shape[2]):
            h = step(model, h, {n: p[k] for n, p in xp_bins.items()})
            states.append(h)
        return torch.stack(states, dim=2)

    def _integrate_torchdiffeq(self, x: Tensor, h: Tensor, dt: Tensor | None) -> Tensor:
        """Bin by bin with torchdiffeq, in the bin's normalised time s in [0, 1].

        Rescaling time per bin makes the input exactly constant over each call and lets every
        sample have its own bin width (irregular sampling) under any solver.
        """
        import torchdiffeq

        spec = self.spec
        odeint = torchdiffeq.odeint_adjoint if spec.adjoint else torchdiffeq.odeint
        kwargs: dict = {"method": spec.solver, "rtol": spec.rtol, "atol": spec.atol}
        if spec.solver in ("euler", "rk4"):
            kwargs["options"] = {"step_size": 1.0 / spec.substeps}
        if spec.adjoint:
            kwargs["adjoint_params"] = tuple(self.parameters())
        s = torch.tensor([0.0, 1.0], device=h.device, dtype=h.dtype)
        states = []
        for k in range(x.shape[2]):
            field = _BinField(self, x[:, :, k], spec.dt * self._bin_scale(dt, k))
            h = odeint(field, h, s, **kwargs)[-1]
            states.append(h)
        return torch.stack(states, dim=2)

    # --------------------------------------------------------- ensembles
    def select(self, members: Sequence[int]) -> RecurrentEnsemble:
        """A new ensemble holding copies of the given members (in that order)."""
        idx = torch.as_tensor(list(members), dtype=torch.long)
        ref = self.W_o
        out = RecurrentEnsemble(
            self.spec, [self.seeds[i] for i in idx.tolist()], device=ref.device, dtype=ref.dtype, initialise=False
        )
        with torch.no_grad():
            for name, p in [*self.named_parameters(), *self.named_buffers()]:
                getattr(out, name).copy_(p[idx.to(p.device)])
        return out


class _MemberChunk:
    """A chunk of an ensemble's members as the step functions read it: ``model.W`` etc. are the
    chunk's parameters (views of the ensemble's, so gradients reach them), methods such as
    ``model.gate(h, xp)`` and ``project_inputs`` are bound to the chunk, buffers are sliced to
    it, and anything else (``spec``) is the ensemble's. Properties such as ``n_members`` are the
    whole ensemble's: nothing in a step reads them."""

    def __init__(self, model: RecurrentEnsemble, members: slice, params: dict[str, Tensor]):
        self._model, self._members = model, members
        self.__dict__.update(params)

    def __getattr__(self, name: str):  # only for what is not a parameter of the chunk
        value = getattr(self._model, name)
        if isinstance(value, Tensor):  # a buffer, (E, ...)
            value = value[self._members]
        elif hasattr(value, "__func__"):  # a method: bound to the chunk, so it reads the chunk's weights
            value = value.__func__.__get__(self)
        setattr(self, name, value)
        return value


class _BinField(nn.Module):
    """Vector field of one bin in normalised time: dh/ds = width * f(h, x_bin)."""

    def __init__(self, model: RecurrentEnsemble, x_bin: Tensor, width):
        super().__init__()
        self.model = model
        self.x_bin = x_bin.unsqueeze(2)  # (E, B, 1, I)
        self.width = width

    def forward(self, s: Tensor, h: Tensor) -> Tensor:
        # projections are recomputed inside the field so that the adjoint sees U and b
        xp = {n: p[:, :, 0] for n, p in self.model.project_inputs(self.x_bin).items()}
        return self.width * self.model.vector_field(h, xp)


# ---------------------------------------------------------------- initialisation
def _draw_member(spec: ModelSpec, shapes: dict[str, tuple[int, int]], seed: int) -> dict[str, Tensor]:
    """Parameters of one member as drawn, before any critical rescaling (CPU, float64, from ``seed``).

    Biases N(0, 1e-3^2) (released scripts). Weights: ``xavier`` Glorot-uniform (the authors'
    default); ``critical`` N(0, 1/fan_in) for every weight, readout and h0 map included (the
    authors' ``our_normal``: Kaiming-normal with gain 1); ``critical_iterated`` the same except
    a Glorot-uniform readout. ``fixed_random`` adds ``h0`` (1, N) ~ N(0, 2/(1 + N)), Flux's
    ``glorot_normal(N)`` of a vector, drawn last so that the other draws do not depend on it.
    """
    g = torch.Generator().manual_seed(seed)
    params: dict[str, Tensor] = {}
    for name, (fan_in, fan_out) in shapes.items():
        if name.startswith("b"):
            params[name] = 1e-3 * torch.randn(fan_in, fan_out, generator=g, dtype=torch.float64)
        elif spec.init == "xavier" or (spec.init == "critical_iterated" and name == "W_o"):
            bound = math.sqrt(6.0 / (fan_in + fan_out)) if fan_in + fan_out else 0.0
            params[name] = (2 * torch.rand(fan_in, fan_out, generator=g, dtype=torch.float64) - 1) * bound
        else:  # N(0, 1/fan_in)
            params[name] = torch.randn(fan_in, fan_out, generator=g, dtype=torch.float64) / math.sqrt(max(fan_in, 1))
    if spec.initial_state == "fixed_random":
        n = spec.n_hidden
        params["h0"] = torch.randn(1, n, generator=g, dtype=torch.float64) * math.sqrt(2.0 / (1 + n))
    return params


def _init_member(
    spec: ModelSpec,
    shapes: dict[str, tuple[int, int]],
    seed: int,
    mean_input: Tensor | None = None,
    mean_first_input: Tensor | None = None,
) -> dict[str, Tensor]:
    """Parameters of one member (CPU, float64): :func:`_draw_member`, then the init's rescaling."""
    params = _draw_member(spec, shapes, seed)
    if spec.init == "critical":
        x_bar = _as_input(spec, mean_input, "mean_input")
        critical_scale(spec, params, x_bar, mean_initial_state(spec, params, mean_first_input))
    elif spec.init == "critical_iterated":
        critical_rescale_iterated(spec, params)
    return params


def _as_input(spec: ModelSpec, x: Tensor | None, name: str) -> Tensor:
    """A mean input (I,) as float64 on the CPU; required when the model has inputs."""
    if x is None:
        if spec.n_input:
            raise ValueError(f"init='critical' needs {name} (the training inputs' mean, shape ({spec.n_input},))")
        return torch.zeros(0, dtype=torch.float64)
    x = torch.as_tensor(x).detach().to("cpu", torch.float64).reshape(-1)
    if x.numel() != spec.n_input:
        raise ValueError(f"{name} must have {spec.n_input} entries, got {x.numel()}")
    return x


def input_means(x: Tensor) -> tuple[Tensor, Tensor]:
    """(mean input over all trials and bins (I,), mean first-bin input over trials (I,)) of x (B, T, I)."""
    x = torch.as_tensor(x)
    return x.mean(dim=(0, 1)), x[:, 0].mean(dim=0)


def mean_initial_state(spec: ModelSpec, params: dict[str, Tensor], mean_first_input: Tensor | None = None) -> Tensor:
    """h0 (N,) of one member at initialisation, averaged over the training trials.

    zeros and learned (initialised at zero): 0; fixed_random: its draw; learned_affine: the
    mean over trials of x_1 A + b, i.e. mean(x_1) A + b (what the authors' rule uses).
    """
    mode = spec.initial_state
    if mode == "fixed_random":
        return params["h0"].reshape(-1)
    if mode == "learned_affine":
        x1 = _as_input(spec, mean_first_input, "mean_first_input")
        return (x1.unsqueeze(0) @ params["A_h0"] + params["b_h0"]).reshape(-1)
    return torch.zeros(spec.n_hidden, dtype=params["W_o"].dtype)


def flow_layers(spec: ModelSpec) -> int:
    """L of the critical rule: the number of layers of F, one per weight on the path h -> F(h)
    (depth + 1 linear maps; 1 for depth 0 and for the discrete models, whose candidate is one
    tanh layer)."""
    return len(recurrent_matrices(spec))


def recurrent_matrices(spec: ModelSpec) -> list[str]:
    """The weights along the path h -> F(h): the ones ``critical_iterated`` rescales."""
    return spec.model.recurrent(spec)


def flow_jacobian(spec: ModelSpec, params: dict[str, Tensor], h: Tensor, x: Tensor | None = None) -> Tensor:
    """Jacobian dF/dh (N, N) of one member's flow F(h, x) at state ``h`` (N,) and input ``x`` (I,).

    ``x`` None: zero input. F is the flow of node/gnode (without the gate) and the candidate
    state of the discrete models (tanh layer; for the GRU with its reset gate at ``h``), so
    that -h + F is the authors' F_theta = (h' - h) / (alpha z) for every kind.
    """
    xin = torch.zeros(1, spec.n_input, dtype=h.dtype) if x is None else x.reshape(1, -1).to(h.dtype)

    def pre(v: Tensor, w: str, u: str, b: str) -> Tensor:
        return v @ params[w] + xin @ params[u] + params[b]

    def flow(v: Tensor) -> Tensor:
        return spec.model.candidate(spec, params, v.unsqueeze(0), pre)

    return torch.autograd.functional.jacobian(flow, h)


def eta_max(spec: ModelSpec, params: dict[str, Tensor], h: Tensor | None = None, x: Tensor | None = None) -> float:
    """Largest real part of the eigenvalues of the Jacobian of -h + F(h, x) at ``h`` (default 0),
    input ``x`` (default 0)."""
    if h is None:
        h = torch.zeros(spec.n_hidden, dtype=params["W_o"].dtype)
    jac = flow_jacobian(spec, params, h, x) - torch.eye(spec.n_hidden, dtype=h.dtype)
    return torch.linalg.eigvals(jac).real.max().item()


def critical_scale(spec: ModelSpec, params: dict[str, Tensor], mean_input: Tensor, h0: Tensor) -> dict:
    """The authors' critical initialisation (``init_type = "our_normal"``), in place, once.

    J = d(-h + F(h, x))/dh at ``h0`` (N,) and ``mean_input`` (I,); eta_max = max Re eig(J);
    every parameter of the dynamics and the gate (:func:`dynamics_parameters`: weights, input
    weights and biases; not the readout, not h0's) is multiplied by
    c = (1 / (eta_max + 1))^(1/L), L = :func:`flow_layers`. For a bias-free, positively
    homogeneous F (ReLU, linear) this multiplies dF/dh by c^L, so eta_max becomes exactly 0;
    otherwise approximately. Returns ``{"eta_max", "layers", "factor"}`` (before the scaling).
    """
    eta = eta_max(spec, params, h0, mean_input)
    lead = eta + 1.0  # largest real part of the eigenvalues of dF/dh
    layers = flow_layers(spec)
    if lead <= 0:
        # (1/(eta_max + 1))^(1/L) is undefined (the authors' code would stop with a DomainError);
        # frequent for small N (about a quarter of draws at N = 2): the member keeps its draw, and
        # the factor 1 says so, rather than one member stopping the whole ensemble
        logger.warning("critical init: dF/dh has no eigenvalue with positive real part (eta_max = %.3g); "
                       "this member is left unscaled", eta)
        return {"eta_max": eta, "layers": layers, "factor": 1.0}
    c = (1.0 / lead) ** (1.0 / layers)
    for n in dynamics_parameters(spec):
        params[n].mul_(c)
    return {"eta_max": eta, "layers": layers, "factor": c}


def critical_rescale_iterated(
    spec: ModelSpec, params: dict[str, Tensor], *, tol: float = 1e-9, max_iter: int = 100
) -> float:
    """Ours (``critical_iterated``): scale the recurrent weights in place until eta_max = 0 at
    h = 0, zero input; return the final eta_max.

    Each of the k matrices on the path h -> F is multiplied by (1 / (eta_max + 1))^(1/k), which
    multiplies the Jacobian of F by 1 / (eta_max + 1) when the activation pattern is unchanged.
    Biases shift the activation pattern slightly, so the step is repeated until converged.
    """
    names = recurrent_matrices(spec)
    eta = eta_max(spec, params)
    for _ in range(max_iter):
        lead = eta + 1.0  # largest real part of the eigenvalues of dF/dh
        if lead <= 0:
            raise ValueError(
                "critical init: the Jacobian of F has no eigenvalue with positive real part; "
                "try another seed or the xavier init"
            )
        if abs(eta) < tol:
            break
        c = (1.0 / lead) ** (1.0 / len(names))
        for n in names:
            params[n].mul_(c)
        eta = eta_max(spec, params)
    return eta


def member_params(model: RecurrentEnsemble, member: int) -> dict[str, Tensor]:
    """Detached copies of one member's parameters (and buffers: a fixed h0): name -> per-member shape."""
    return {n: p[member].detach().clone() for n, p in [*model.named_parameters(), *model.named_buffers()]}


# -------------------------------------------------------------------- files
def save_model(model: RecurrentEnsemble, path, *, extra: dict | None = None) -> None:
    """Write an ensemble to ``path`` (atomic); ``extra`` holds plain metadata (str/int/float/lists)."""
    from gnode.io import atomic_path

    blob = {
        "spec": model.spec.to_dict(),
        "seeds": model.seeds,
        "state": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "extra": extra or {},
    }
    with atomic_path(path) as tmp:
        torch.save(blob, tmp)


def load_model(path, *, device=None, dtype=None) -> tuple[RecurrentEnsemble, dict]:
    """Read a file of :func:`save_model`; returns (model, extra)."""
    from gnode.io import verify_checksum

    verify_checksum(path)  # a flipped byte: CorruptFileError naming the file, before torch reads it
    blob = torch.load(path, map_location="cpu", weights_only=True)
    spec = dict(blob["spec"])
    if "learn_h0" in spec:  # a file from before initial_state; its "critical" was the iterated rule
        spec["initial_state"] = "learned" if spec.pop("learn_h0") else "zeros"
        if spec.get("init") == "critical":
            spec["init"] = "critical_iterated"
    spec = ModelSpec(**spec)
    state = blob["state"]
    dtype = dtype or state["W_o"].dtype
    model = RecurrentEnsemble(spec, blob["seeds"], device=device, dtype=dtype, initialise=False)
    model.load_state_dict(state)
    return model, blob["extra"]
