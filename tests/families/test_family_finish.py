"""A family's Numba side (its folder's ``finish.py``, found by ``registry.finish``): ``set_q``, its finish over
every element, for the count families' q (a missing count's), which no default warm-start test starts from a
fit (tests/infer/test_warm.py does the others).  Standard parameters -> η (the unit) -> ``set_q`` gives them
back, with E[x] and the entropy relative to the base measure h written here in closed form."""

from __future__ import annotations

import numpy as np
import pytest

from ppvi.codegen.plan import ArrayNames
from ppvi.families.registry import finish, unit_of

RATE = np.array([0.2, 1.0, 3.5, 40.0])
N, P, R = np.array([1.0, 5.0, 12.0, 30.0]), np.array([0.05, 0.3, 0.5, 0.9]), np.array([0.5, 1.0, 3.5, 20.0])

# (family, standard parameters, its moments' arrays, E[x], H relative to h): Poisson with h = 1/x!,
# H = −E[x log r − r]; Binomial with h = C(n, x), H = −n(p log p + (1 − p) log(1 − p)); NegativeBinomial with
# h = Γ(x + r)/(Γ(r) x!), E[x] = rp/(1 − p), H = −(E[x] log p + r log(1 − p))
CASES = [
    ("Poisson", {"rate": RATE}, ("lfact",), RATE, RATE - RATE * np.log(RATE)),
    ("Binomial", {"n": N, "p": P}, ("x", "lchoose"), N * P, -N * (P * np.log(P) + (1 - P) * np.log1p(-P))),
    ("NegativeBinomial", {"r": R, "p": P}, ("x", "lnb"), R * P / (1 - P),
     -(R * P / (1 - P) * np.log(P) + R * np.log1p(-P))),
]


@pytest.mark.parametrize("name, standard, moments, mean, entropy", CASES, ids=[c[0] for c in CASES])
def test_set_q_of_a_count_family_gives_back_its_parameters_mean_and_entropy(name, standard, moments, mean, entropy):
    unit, v = unit_of(name), "y"
    state = {ArrayNames.qparam(v, p): np.zeros(4) for p in unit.standard}
    state |= {ArrayNames.moment(v, s): np.full(4, np.nan) for s in moments} | {ArrayNames.entropy(v): np.zeros(4)}
    finish(name).set_q(state, v, unit.natural(standard))
    for p, value in standard.items():
        np.testing.assert_allclose(state[ArrayNames.qparam(v, p)], value, rtol=1e-13)
    np.testing.assert_allclose(unit.mean(standard), mean, rtol=1e-13)
    if "x" in moments:
        np.testing.assert_allclose(state[ArrayNames.moment(v, "x")], mean, rtol=1e-13)
    np.testing.assert_allclose(state[ArrayNames.entropy(v)], entropy, rtol=1e-12)
