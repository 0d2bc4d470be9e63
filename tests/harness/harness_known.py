"""The faults the harness finds today, each marked where it shows (xfail, strict: the fix flips it)."""

from __future__ import annotations

import re
from dataclasses import dataclass

ITEM_1 = ("issue 14 item 1: the local step reads q(X)'s mean under a second name (m_X__x beside q_X__mean); "
          "under parfor's no-alias assumption a point's elements, and the statistics summed with them, see stale "
          "means")
ITEM_2 = "issue 14 item 2: a conjugate bilinear model is refused (`not linear in its statistics`)"
ITEM_4 = "issue 14 item 4: a product at data-valued indices makes statistics over [items, users, …]"
ITEM_5 = ("issue 14 item 5: the group block is decided on SymPy's alphabetical order of index names (a document "
          "index sorting after k drops it)")
ITEM_5_NAMES = "issue 14 item 5: latents x and x_damped both produce a kernel update_x_damped"
ITEM_4_GROUPS = ("issue 14 item 4 (found by the harness, same cause): a per-group mean and precision read at one "
                 "data-valued index, mu[grp[n]] and tau[grp[n]], make statistics over [G, G]")
FEATURE_SIGN = ("found by the harness: feature-sign search (codegen.runtime.feature_sign) ends at a point that is "
                "not the L1 optimum when the active atoms are dependent (more nonzeros than dimensions: an "
                "overcomplete dictionary), after up to (20 M + 100)² steps with a least-squares solve each")
BLOCK_START = ("found by the harness: a model with a group block and a param starts with an E-step over "
               "Program.schedule(), whose block entry ('theta, z') is neither a latent nor a point: KeyError")

# test_kernels: (case, check) -> reason.
KERNELS = {
    ("issue14:factor_data_W", "compiled"): ITEM_1,
    ("issue14:factor_data_W", "derivation"): ITEM_1,
    ("issue14:factor_data_W", "statistics"): ITEM_1,
    ("issue14:ppca_em", "compiled"): ITEM_1,
    ("issue14:ppca_em", "derivation"): ITEM_1,
    ("issue14:ppca_em", "statistics"): ITEM_1,
    ("issue14:pmf_long_literal", "structure"): ITEM_4,
    ("found:group_mean_and_precision", "structure"): ITEM_4_GROUPS,
    # item 1 also hits binary sparse coding's Bernoulli h (q_h__p read as m_h__x) when M is small (3, 4)
    ("inline:test_numerics:text", "compiled"): ITEM_1,
    ("inline:test_numerics:text", "derivation"): ITEM_1,
    ("inline:test_numerics:text", "statistics"): ITEM_1,
    ("inline:test_parser:line85", "compiled"): ITEM_1,
    ("inline:test_parser:line85", "derivation"): ITEM_1,
    ("inline:test_parser:line85", "statistics"): ITEM_1,
    ("inline:test_learning:SPARSE_FIXED", "derivation"): FEATURE_SIGN,
    ("found:overcomplete_sparse_codes", "derivation"): FEATURE_SIGN,
}
# Cases derive refuses today: every check fails with the PPVIError.
REFUSED = {"issue14:bilinear_const_tau": ITEM_2, "issue14:bilinear_gamma_tau": ITEM_2, "issue14:pmf_long": ITEM_2}
# test_metamorphic: cases whose (plain-Python) fit ends in an error -> reason.
FITS = {"found:grouped_mixture_with_param": BLOCK_START}
# test_metamorphic: (case, rewrite) -> reason.
REWRITES: dict[tuple[str, str], str] = {}


@dataclass(frozen=True)
class Fault:
    """A known fault, recognised in a problem's text by the regular expression ``signature``."""

    reason: str
    signature: str


# The signatures are what the harness writes: an aliased kernel is labelled "[aliased: …]", a refusal keeps
# derive's message, a dense statistic is "not linear in the data and q", a fit's error "the fit ended in …".
FAULTS = (Fault(ITEM_1, r"\[aliased: "), Fault(ITEM_2, r"not linear in its statistics"),
          Fault(ITEM_4, r"is not linear in the data and q"),
          Fault(BLOCK_START, r"the fit ended in KeyError: '\w+, \w+'"), Fault(FEATURE_SIGN, r"is not an L1 optimum"))


def known_fault(problem: str) -> Fault | None:
    return next((f for f in FAULTS if re.search(f.signature, problem)), None)


# test_random_models (CI's derandomised examples): the known faults each group finds today.  A group that
# no longer finds them fails, asking for the entry to go (a strict xfail's flip).
RANDOM_PYTHON: dict[str, set[str]] = {}
RANDOM_COMPILED: dict[str, set[str]] = {}
