"""Energy terms in the derivation: 19.56 from log p̃; q of a latent without a prior; what is refused, and where."""

from __future__ import annotations

import pytest
import sympy as sp

from ppvi.derive import derive
from ppvi.errors import PPVIError
from ppvi.language import loads


def derived(text: str):
    return derive(loads(text, "m.ppvi"))


def refused(text: str) -> str:
    with pytest.raises(PPVIError) as e:
        derived(text)
    return str(e.value)


def test_binary_latent_gets_a_bernoulli_whose_eta_is_the_expected_energy_coefficient():
    """log p̃ = Σ_i b_i s_i + Σ_ij W_ij s_i t_j:  η(s_i) = b_i + Σ_j W_ij ⟨t_j⟩ (the RBM's visible units)."""
    d = derived("dim V, H\ndata W[V, H]\ndata b[V]\nlatent s[V] : binary\nlatent t[H] : binary\n"
                "for i in V:\n    factor b[i] * s[i]\n    for j in H:\n        factor W[i, j] * s[i] * t[j]\n")
    q = d.q["s"]
    assert q.family == "Bernoulli" and set(q.natural) == {"x"}
    eta = sp.sstr(q.natural["x"])
    assert "b[v]" in eta and "W[v, h" in eta and "t" in eta
    assert d.q["t"].family == "Bernoulli"
    assert d.model.unnormalised


def test_real_latent_with_quadratic_energy_gets_a_normal():
    d = derived("dim N\ndata b[N]\nlatent x[N] : real\nfor i in N:\n    factor b[i] * x[i] - 2 * x[i] ^ 2\n")
    q = d.q["x"]
    assert q.family == "Normal" and sp.simplify(q.natural["x2"] + 2) == 0


@pytest.mark.parametrize("body, at, words", [
    ("factor b[i] * x[i]", "m.ppvi:3:8:", "no energy term has `x`² in it"),
    ("factor b[i] * x[i] + x[i] ^ 2", "m.ppvi:5:5:", "coefficient of `x`² in the energy is 1, not negative"),
    ("factor b[i] * x[i] - x[i] ^ 4", "m.ppvi:5:12:", "`x` enters as x[i]**4"),
])
def test_real_latent_refusals_are_positioned(body, at, words):
    msg = refused(f"dim N\ndata b[N]\nlatent x[N] : real\nfor i in N:\n    {body}\n")
    assert msg.startswith(at) and words in msg
    assert "hint:" in msg


def test_a_non_multilinear_energy_says_what_works():
    msg = refused("dim N\ndata b[N]\nlatent s[N] : binary\nfor i in N:\n    factor b[i] * exp(s[i])\n")
    assert msg.startswith("m.ppvi:5:12:") and "exp(s[i])" in msg
    assert "multilinear in binary latents" in msg and "at most quadratic in real ones" in msg
