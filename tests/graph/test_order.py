"""The canonical order (ppvi.graph.order) the schedule and the start follow: a function of the model's
structure, the same whatever the names and the order of the statements (issue 14: "no decision depends on
the spelling or order").  No compilation: the order is read off the checked model."""

from __future__ import annotations

import numpy as np
import pytest

from codegen.programs import FA_BAYES, PMF
from conftest import MODELS
from ppvi.graph.order import order
from ppvi.infer.start import analyse
from ppvi.language import loads

# Bayesian factor analysis (tests/codegen/programs.py), its statements in two orders and with every name
# changed.
FA = FA_BAYES
FA_REORDERED = """
dim D, N
dim M = 2
data y[N, D]
for n in N:
    for d in D:
        y[n, d] ~ Normal(sum(m in M: X[n, m] * W[d, m]), precision = psi[d])
    for m in M:
        X[n, m] ~ Normal(0, 1)
for d in D:
    for m in M:
        W[d, m] ~ Normal(0, 1)
    psi[d] ~ Gamma(1, 1)
"""
FA_RENAMED = (FA.replace("psi", "a").replace("W", "b").replace("X", "c").replace("y[", "z[")
              .replace(" D", " Q").replace("D]", "Q]").replace("d ", "j ").replace("[d", "[j").replace("d]", "j]"))
RENAMING = {"psi": "a", "W": "b", "X": "c", "y": "z"}


def test_the_order_does_not_follow_names_or_statements():
    o = order(loads(FA, "fa.ppvi"))
    assert order(loads(FA_REORDERED, "fa.ppvi")).variables == o.variables
    assert order(loads(FA_RENAMED, "fa.ppvi")).variables == {RENAMING[n]: i for n, i in o.variables.items()}


def test_factors_in_the_same_canonical_order_after_a_reordering():
    """The ELBO's terms are summed in this order (Program._total): each factor keeps its place."""
    def by_target(text):
        m = loads(text, "fa.ppvi")
        return {f.target: order(m).factors[f.id] for f in m.factors}

    assert by_target(FA) == by_target(FA_REORDERED)


def test_a_prior_comes_before_what_it_reads_in_any_statement_order():
    text = """
dim N
data x[N]
for n in N:
    x[n] ~ Normal(mu, precision = tau)
mu ~ Normal(m, precision = tau)
m ~ Normal(0, 1)
tau ~ Gamma(1, 1)
"""
    o = order(loads(text, "h.ppvi"))
    assert o.sort(["mu", "tau", "m"])[-1] == "mu"
    assert o.level == {"m": 0, "tau": 0, "mu": 1}


@pytest.mark.parametrize("first, second", [("a", "b"), ("b", "a")])
def test_operands_of_a_difference_are_told_apart(first, second):
    """a − b: a and b are alike but for their place in the mean; the order sees the place, not the text."""
    text = f"""
dim N
data x[N]
{first} ~ Normal(0, 1)
{second} ~ Normal(0, 1)
for n in N:
    x[n] ~ Normal(a - b, 1)
"""
    o = order(loads(text, "d.ppvi"))
    assert o.variables["a"] != o.variables["b"]
    assert o.variables == order(loads(text.replace(f"{first} ~", "@").replace(f"{second} ~", f"{first} ~")
                                       .replace("@", f"{second} ~"), "d.ppvi")).variables


PMF_SWAPPED = PMF.replace("data user[R] : index(U)\ndata item[R] : index(I)",
                          "data item[R] : index(I)\ndata user[R] : index(U)")


def test_a_symmetric_model_is_ordered_by_its_data_and_consistently():
    """Users and items are alike in structure (an automorphism swaps user, U, P with item, I, Q): the data
    decide which comes first, whatever the declarations' order; and a choice carries over (the latent read at
    the first index array comes first)."""
    rng = np.random.default_rng(0)
    values = {"user": rng.integers(0, 4, 12), "item": rng.integers(0, 5, 12), "r": rng.normal(size=12)}
    assert "data user[R] : index(U)\ndata item[R] : index(I)" in PMF
    for text in (PMF, PMF_SWAPPED):
        o = analyse(loads(text, "pmf.ppvi"), values).order
        assert (o.variables["user"] < o.variables["item"]) == (o.variables["P"] < o.variables["Q"])
    assert (analyse(loads(PMF, "pmf.ppvi"), values).order.variables
            == analyse(loads(PMF_SWAPPED, "pmf.ppvi"), values).order.variables)
    # without data the tie goes to the first declared, and the automorphism follows it
    a, b = order(loads(PMF, "pmf.ppvi")), order(loads(PMF_SWAPPED, "pmf.ppvi"))
    swap = {"user": "item", "item": "user", "P": "Q", "Q": "P", "r": "r"}
    assert b.variables == {swap[n]: i for n, i in a.variables.items()}


def test_a_location_is_updated_before_its_precision():
    """EM for a mixture (models/em_gmm): the M-step of the means, then of the precisions around the new means,
    is EM's joint maximiser (PRML 9.24–9.25; tests/infer/test_learning.py follows scikit-learn's trajectory),
    whatever order the params are declared in."""
    text = (MODELS / "em_gmm.ppvi").read_text()
    swapped = text.replace("param mu[K]\nparam tau[K] : positive", "param tau[K] : positive\nparam mu[K]")
    assert swapped != text
    for t in (text, swapped):
        assert order(loads(t, "em.ppvi")).sort(["tau", "weights", "mu"]) == ["mu", "weights", "tau"]
