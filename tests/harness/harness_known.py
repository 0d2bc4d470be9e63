"""The faults the harness finds today, each marked where it shows (xfail, strict: the fix flips it)."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

ORDER_ROUNDING = ("found by the harness: where two variables are exchangeable (PMF's users and items), the generated "
                  "code breaks their tie by declaration order (no structural tie-break exists and codegen has no "
                  "data to break it with: docs/architecture.md), so reordering their declarations changes the fit "
                  "in its last bits")

# Fixed since the harness found them (their strict marks flipped and went): issue 14 item 1 (aliasing: the
# compiled check of issue14:factor_data_W and ppca_em, binary sparse coding's h), item 2 (the bilinear models
# and PMF refused), item 4 (pmf_long_literal's and found:group_mean_and_precision's dense statistics), item 5
# (lda's group block and the kernel-name collision: test_metamorphic), the rounding that followed the names;
# the start of a model with a group block beside a param (a KeyError on the block's entry: issue 14 item 3);
# a latent named `_a` or `x__x` under --damping (Program._natural_from_q cut state names at `__`); the schedule
# and the start that followed the statements (params in declaration order, then globals and locals in draw
# order, random draws in that order; now ppvi.graph.order's canonical order), and the ELBO's terms summed in
# statement order (Program._total) and the generated code's sums in declaration order (Names.rank now
# ppvi.graph.order's: corpus:factor_analysis and PPCA_EM reorder_declarations); feature-sign search that stopped off the L1 optimum with dependent
# active atoms (inline:test_learning:SPARSE_FIXED, found:overcomplete_sparse_codes); sparse coding with fewer
# examples than atoms, whose β diverges and which ended in an internal ElboDecrease (now the divergence is reported
# at β's declaration: test_found, tests/infer/test_learning.py).

# test_kernels: (case, check) -> reason.
KERNELS: dict[tuple[str, str], str] = {}
# test_kernels: (case, check) -> reason, for gaps in the harness itself (not faults of ppvi): the check cannot
# yet read the case's state and fails with whatever error that gives.
ROWS_GAP = ("a gap in the harness, not a fault of ppvi: its reference η and entropy treat an MvNormal row with "
            "imputed entries as a whole row, not as the missing block with the observed entries clamped "
            "(ppvi's own tests check that block against the Gaussian conditional: tests/infer/test_missing_rows.py)")
GAPS: dict[tuple[str, str], str] = {(case, check): ROWS_GAP for case in ("inline:test_missing_rows:MODEL",
                                                                          "inline:test_missing_rows:line142")
                                    for check in ("derivation", "elbo")}
# Cases derive refuses today: every check fails with the PPVIError.
REFUSED: dict[str, str] = {}
# test_metamorphic: cases whose (plain-Python) fit ends in an error -> reason.
FITS: dict[str, str] = {}
# test_metamorphic: (case, rewrite) -> reason, for the rewrites CI runs (one per case, by its name's hash);
# ``rewrite_fault`` names the reason of any other case's difference.
REWRITES: dict[tuple[str, str], str] = {}


@functools.lru_cache(maxsize=None)
def exchangeable(text: str) -> bool:
    """Whether the model has variables its structure cannot tell apart (a permutation symmetry: PMF's P and Q
    with user and item): colour refinement (``ppvi.graph.order``) leaves a class of several, whose tie only
    declaration order or data break — the canonical order then changes when the tie is broken the other way."""
    from ppvi.graph.order import order
    from ppvi.language import loads

    model = loads(text, "harness.ppvi")
    last = {n: f"{len(model.variables) - i:09d}" for i, n in enumerate(model.variables)}
    return order(model).variables != order(model, tiebreak=last.__getitem__).variables


def rewrite_fault(strategy: str, text: str, fits: tuple, rewritten: tuple) -> str | None:
    """The known fault a rewrite's different fits show, if one does: a difference in rounding alone after
    reordering a model (``text``) with exchangeable variables (any other difference is a fault: the schedule,
    the start and the generated sums follow the structure)."""
    from harness_fit import rounding_only

    (seq, damped), (seq2, damped2) = fits, rewritten
    if (strategy.startswith("reorder_") and exchangeable(text) and rounding_only(seq, seq2, {})
            and rounding_only(damped, damped2, {})):
        return ORDER_ROUNDING
    return None


@dataclass(frozen=True)
class Fault:
    """A known fault, recognised in a problem's text by the regular expression ``signature``."""

    reason: str
    signature: str


# The signatures are what the harness writes: a fit's error "the fit ended in …", a MAP code off the L1
# optimum "is not an L1 optimum".  None known today.
FAULTS: tuple[Fault, ...] = ()


def known_fault(problem: str) -> Fault | None:
    return next((f for f in FAULTS if re.search(f.signature, problem)), None)


# test_random_models (CI's derandomised examples): the known faults each group finds today.  A group that
# no longer finds them fails, asking for the entry to go (a strict xfail's flip).
RANDOM_PYTHON: dict[str, set[str]] = {}
RANDOM_COMPILED: dict[str, set[str]] = {}
