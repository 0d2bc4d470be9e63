"""The typed interface between code generation and the engine: the plan, and every mangled array name.

The generated module ends in ``PLAN = Plan(...)``, built from literals only (emit.literal prints these
dataclasses, whose names are the module's own: emit.FIXED); the engine (ppvi.infer) reads its attributes.
Every array the kernels take is named by :class:`ArrayNames`, here and nowhere else: the code generator
(emit.Names hands the names out and records which kernel reads them) and the engine (which binds arrays
to them) spell them alike.  No SymPy, nothing but the standard library: a warm run imports this module with
the cached kernels and nothing of the compiler (docs/architecture.md, "The ABI").
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

KERNEL_NAME_MAX = 64  # characters of a kernel's name kept whole (ArrayNames.kernel); Numba names a cache file after it
# The kind prefixes of generated names: no one is a prefix of another, nor of a fixed name (emit.FIXED).
KINDS = ("v_", "n_", "q_", "m_", "h_", "l_", "e_", "o_", "g_", "t_", "c_", "update_", "damped_", "local_step_",
         "colour_", "rows_")
# The arrays a sweep writes (Program.snapshot): q's parameters, moments, entropies, log-normalisers, η, gradients.
SWEPT = ("q_", "m_", "h_", "l_", "e_", "g_")
# The arrays a chunk's local step writes (ppvi.infer.chunks): q's, η, the statistics.
LOCAL_STATE = ("q_", "m_", "h_", "l_", "t_", "e_")


class ArrayNames:
    """How every name of the generated module that is made from a model's name is spelt (the scheme:
    emit.Names, which hands them out while kernels are written), and how one is read back."""

    @staticmethod
    def variable(name: str) -> str:
        """Data, params, constants, MAP points: ``v_<name>``."""
        return f"v_{name}"

    @staticmethod
    def size(dim: str) -> str:
        """A size the data determine: ``n_<dim>``."""
        return f"n_{dim}"

    @staticmethod
    def qparam(var: str, param: str) -> str:
        """q(var)'s standard parameter: ``q_<var>__<param>``."""
        return f"q_{var}__{param}"

    @staticmethod
    def moment(var: str, stat: str) -> str:
        """The moment ⟨stat⟩ of q(var) by its own name, before aliases are resolved: ``m_<var>__<stat>``."""
        return f"m_{var}__{stat}"

    @staticmethod
    def entropy(var: str) -> str:
        return f"h_{var}"

    @staticmethod
    def log_normaliser(var: str) -> str:
        """log Σ e^η of a Categorical (Σ log Z of a chain): ``l_<var>``."""
        return f"l_{var}"

    @staticmethod
    def natural(var: str, stat: str) -> str:
        """η of ``stat`` (the damped schedule moves from it): ``e_<var>__<stat>``."""
        return f"e_{var}__{stat}"

    @staticmethod
    def snapshot(name: str) -> str:
        """A copy of the array ``name`` taken before a damped update: ``o_<name>``."""
        return f"o_{name}"

    @staticmethod
    def gradient(var: str) -> str:
        return f"g_{var}"

    @staticmethod
    def statistic(number: int) -> str:
        return f"t_{number}"

    @staticmethod
    def constant(what: str, name: str) -> str:
        """Derived at bind time: ``c_<what>__<name>`` (inv, logdet, order, start, missing, colour, colours)."""
        return f"c_{what}__{name}"

    @staticmethod
    def damping() -> str:
        """The damped step α."""
        return "c__damping"

    @staticmethod
    def kernel(kind: str, var: str) -> str:
        """``<kind>_<var>``; past :data:`KERNEL_NAME_MAX` characters, its first 44 then ``_`` and 20 hex digits of
        its SHA-256 (exactly ``KERNEL_NAME_MAX + 1`` long, so never a kept name; distinct long names differ in
        their hash).  Numba's cache file is ``<module>.<kernel>-<line>.py3XY.<n>.nbc``: the file system's
        255-byte limit bounds the name, the language does not bound identifiers."""
        assert kind + "_" in KINDS
        name = f"{kind}_{var}"
        if len(name) <= KERNEL_NAME_MAX:
            return name
        return f"{name[:44]}_{hashlib.sha256(name.encode()).hexdigest()[:KERNEL_NAME_MAX - 44]}"

    @staticmethod
    def owned(var: str, role: str, what: str = "") -> str:
        """An array q(var) owns, by its role: ``q`` a standard parameter, ``m`` a moment, ``h`` the entropy,
        ``l`` the log-normaliser (``what`` names the parameter or moment)."""
        if role in ("q", "m"):
            return (ArrayNames.qparam if role == "q" else ArrayNames.moment)(var, what)
        return {"h": ArrayNames.entropy, "l": ArrayNames.log_normaliser}[role](var)

    # ---------------------------------------------------------------- reading a name back
    @staticmethod
    def is_statistic(name: str) -> bool:
        return name.startswith("t_")

    @staticmethod
    def is_swept(name: str) -> bool:
        """An array a sweep writes (SWEPT): q's, or a param's gradient."""
        return name[:2] in SWEPT

    @staticmethod
    def is_local_state(name: str) -> bool:
        """An array a chunk's local step writes (LOCAL_STATE): copied per chunk, gathered back."""
        return name[:2] in LOCAL_STATE

    @staticmethod
    def is_input(name: str) -> bool:
        """Data, params, constants, MAP points, and what the program derives from them (``v_``, ``c_``)."""
        return name.startswith(("v_", "c_"))

    @staticmethod
    def is_qparam(name: str) -> bool:
        return name.startswith("q_")

    @staticmethod
    def is_natural(name: str) -> bool:
        return name.startswith("e_")

    @staticmethod
    def is_natural_of(name: str, var: str) -> bool:
        """``name`` is an η of q(var) (or of a var whose name begins ``<var>__``: a caller that must tell them
        apart asks by statistic, ArrayNames.natural)."""
        return name.startswith(ArrayNames.natural(var, ""))

    @staticmethod
    def is_gradient(name: str) -> bool:
        return name.startswith("g_")

    @staticmethod
    def variable_of(name: str) -> str | None:
        """The model's name behind ``v_<name>`` (None for any other kind)."""
        return name[2:] if name.startswith("v_") else None

    @staticmethod
    def size_of(name: str) -> str | None:
        """The dim behind ``n_<dim>`` (None for any other kind)."""
        return name[2:] if name.startswith("n_") else None

    @staticmethod
    def snapshot_of(name: str) -> str | None:
        """The array ``o_<name>`` is a copy of (None for any other kind)."""
        return name[2:] if name.startswith("o_") else None

    @staticmethod
    def natural_of_qparam(name: str) -> str:
        """``e_<var>__<param>`` for ``q_<var>__<param>``: η's array with the axes of q's parameter (the
        standard and natural parameters of a family share their shapes, one η per parameter)."""
        assert name.startswith("q_")
        return "e_" + name[2:]


# ---------------------------------------------------------------------------- the plan
@dataclass(frozen=True)
class KernelSpec:
    """A kernel of the module: its name, and the arrays it reads or writes, in the order it takes them."""

    name: str
    args: tuple[str, ...]


@dataclass(frozen=True)
class ChainPlan:
    """A chain's block (codegen.chain): its pair moments' array (a Categorical chain's pairwise marginals, a
    Gaussian chain's lag-one covariances), jointly (forward–backward, Kalman/RTS) or a mean-field sweep, and
    the first step t the chain's transition is read."""

    pair: str
    jointly: bool
    start: int


@dataclass(frozen=True)
class LatentPlan:
    """A latent's q: its family, its update, the arrays it owns (name -> shape in dim names and ints; a scalar
    is (1,)), its aliases (a moment that is another of its arrays: alias -> owner), scope, plate and event
    dims.  ``sequential``: its elements read each other (Gauss–Seidel); ``feeds``: the statistics read it;
    ``damped``: the Jacobi update; ``local_step``: the update that also sums the statistics (passes.fuse);
    ``colour``: the update of colour 0, then colour 1, each colour's elements in parallel, where the graph of
    the ``pattern`` arrays' nonzero entries (data matrices over the latent's axis) is bipartite
    (passes.two_colour; the engine colours it, ppvi.infer.colouring); no ``pattern``: the colours are the
    parity of the sum of the element's indices (a grid written with offsets), always."""

    family: str
    update: KernelSpec
    state: dict[str, tuple]
    aliases: dict[str, str]
    scope: str
    index: tuple
    event: str | int | None
    sequential: bool
    damped: KernelSpec | None = None
    local_step: KernelSpec | None = None
    feeds: bool = False
    chain: ChainPlan | None = None
    # `approximate mu, lam jointly`: mu's plan names lam; the engine updates both in one step (printed only if set)
    pair: str | None = field(default=None, metadata={"omit_default": True})
    colour: KernelSpec | None = field(default=None, metadata={"omit_default": True})
    pattern: tuple[str, ...] = field(default=(), metadata={"omit_default": True})
    # the update with its scatters over the data plate summed row by row, the rows in parallel, over the data
    # sorted by row when they are bound (passes.scatter_rows; Plan.orders): the engine takes it on a large plate
    rows: KernelSpec | None = field(default=None, metadata={"omit_default": True})


@dataclass(frozen=True)
class PointPlan:
    """A param or MAP point: its update, ``kind`` (param, point), ``method`` (closed_form, gradient,
    feature_sign, simplex, unit_columns...), whether its elements read each other, whether the statistics
    read it, and its local step (passes.fuse)."""

    update: KernelSpec
    kind: str
    method: str
    sequential: bool
    feeds: bool = False
    local_step: KernelSpec | None = None


@dataclass(frozen=True)
class ElboPlan:
    """Σ_f E_q[log f], one term per factor (``labels``); ``fast``: the same right after ``fast_after``'s
    update, its data-plate terms read off that update (passes.fast_elbo); ``large``: the same, its sums over the
    data plate ``plate`` in chunks on threads (passes.chunk_elbo)."""

    kernel: KernelSpec
    labels: tuple[str, ...]
    fast: KernelSpec | None = None
    fast_after: str | None = None
    # the same terms with their sums over the data plate (dim ``plate``) in chunks on threads (passes.chunk_elbo):
    # the engine takes it on a large plate
    large: KernelSpec | None = field(default=None, metadata={"omit_default": True})
    plate: str | None = field(default=None, metadata={"omit_default": True})


@dataclass(frozen=True)
class StatsPlan:
    """The statistics pass (codegen.statistics) and its arrays (name -> shape in dim names and ints)."""

    kernel: KernelSpec
    arrays: dict[str, tuple]


@dataclass(frozen=True)
class BlockPlan:
    """The group block (ModuleWriter.block_kernel): the group latent and the local latent (``members``), its
    step's name in the schedule, the index data that group the members (``by``), the groups' dim, and the
    statistics' arrays whose rows it reads."""

    kernel: KernelSpec
    members: tuple[str, str]
    name: str
    by: str
    groups: str | int
    rows: tuple[str, ...]


@dataclass(frozen=True)
class Plan:
    """What the engine runs of a generated module.  ``derived``: arrays computed when the data are bound
    (mangled name -> (inv or logdet, the const's name)); ``point``: the latents approximated by a point;
    ``exact_em``: the ELBO after the local step is the log-likelihood; ``missing``: data with missing entries
    -> their mask's array; ``orders``: the index data the engine sorts when they are bound (the rows kernels'
    ``c_order__<data>`` and ``c_start__<data>``, as a group block's, ppvi.infer.program.group_index)."""

    latents: dict[str, LatentPlan]
    points: dict[str, PointPlan]
    elbo: ElboPlan
    derived: dict[str, tuple[str, str]] = field(default_factory=dict)
    point: tuple[str, ...] = ()
    exact_em: bool = False
    stats: StatsPlan | None = None
    block: BlockPlan | None = None
    missing: dict[str, str] = field(default_factory=dict)
    orders: tuple[str, ...] = field(default=(), metadata={"omit_default": True})

    def entry(self, var: str) -> LatentPlan | PointPlan:
        """The latent's or the point's plan."""
        return self.latents.get(var) or self.points[var]

    def aliases(self) -> dict[str, str]:
        """Every latent's aliases: alias -> the array that owns it."""
        return {a: t for info in self.latents.values() for a, t in info.aliases.items()}


# The classes the generated module constructs PLAN from (emit.literal prints exactly these, by name).
PLAN_TYPES = (KernelSpec, ChainPlan, LatentPlan, PointPlan, ElboPlan, StatsPlan, BlockPlan, Plan)
