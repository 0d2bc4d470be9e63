"""`amortise h by mlp(…)`: parsed, checked, and every mistake a positioned error (golden files in bad/).

``bad/NAME.ppvi`` with the expected stderr in ``bad/NAME.expected``; ``pytest --update-golden`` rewrites them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import assert_golden, run_cli
from ppvi.language import loads

BAD = Path(__file__).parent / "bad"
CASES = sorted(p.name for p in BAD.glob("*.ppvi"))

MODEL = """\
dim N, D
dim M = 3
data v[N, D]
param W[D, M]
for n in N:
    for i in M:
        h[n, i] ~ Bernoulli(0.2)
    for j in D:
        v[n, j] ~ Normal(sum(i in M: W[j, i] * h[n, i]), 1)
"""


@pytest.mark.parametrize("name", CASES)
def test_error_message(name, capsys, monkeypatch, update_golden):
    monkeypatch.chdir(BAD)
    code, out, err = run_cli(["check", name], capsys)
    assert code == 2, f"exit {code}, stderr:\n{err}"
    assert out == "" and "Traceback" not in err
    assert err.splitlines()[0].startswith(f"{name}:") and ": error: " in err
    expected = BAD / (name[:-5] + ".expected")
    assert_golden(expected, err, update_golden)


@pytest.mark.parametrize("statement, hidden, layers", [
    ("amortise h by mlp", 64, 1),
    ("amortise h by mlp()", 64, 1),
    ("amortise h by mlp(hidden = 16)", 16, 1),
    ("amortise h by mlp(layers = 2, hidden = 8)", 8, 2),
])
def test_options_and_defaults(statement, hidden, layers):
    spec = loads(MODEL + statement + "\n").amortised["h"]
    assert (spec.latent, spec.method, spec.hidden, spec.layers) == ("h", "mlp", hidden, layers)
    assert spec.span.line == 10


def test_a_point_latent_may_be_amortised():
    """A MAP code (sparse coding's `approximate h by point`): the encoder predicts the point (LISTA, PSD)."""
    m = loads(MODEL.replace("Bernoulli(0.2)", "Laplace(0, 1)") + "approximate h by point\namortise h by mlp(hidden = 4)\n")
    assert m.approximations["h"] == "point" and m.amortised["h"].hidden == 4


@pytest.mark.parametrize("statement, steps", [("amortise h by lista", 3), ("amortise h by lista(steps = 7)", 7)])
def test_lista_and_its_steps(statement, steps):
    spec = loads(MODEL.replace("Bernoulli(0.2)", "Laplace(0, 1)") + "approximate h by point\n" + statement + "\n")
    assert (spec.amortised["h"].method, spec.amortised["h"].steps) == ("lista", steps)


def test_without_the_statement_nothing_is_amortised():
    assert loads(MODEL).amortised == {}
