"""Constants that are large, tiny or not numbers at all (issue 21, item 3).

Γ of a prior's shape is never evaluated: ``Gamma(1000, 1000)`` used to become
``log(<2,565-digit factorial>)`` and then ``math.log(inf)`` in the kernel, and
``Gamma(1e7, 1)`` made the derivation hang.  Such priors must fit, and give the
closed-form evidence.  A constant that is not a finite real number, or a derived
number no double holds (1/sd² for sd = 1e-300), is the user's mistake at the
expression that made it: golden messages in ``constants/``, through ``derive``
and ``derive --code`` alike.
"""

from __future__ import annotations

import signal
from contextlib import contextmanager
from math import lgamma, log
from pathlib import Path

import numpy as np
import pytest

import ppvi
from conftest import assert_golden, run_cli

HERE = Path(__file__).parent / "constants"
CASES = sorted(p.name for p in HERE.glob("*.ppvi"))
COUNTS = np.array([1, 2, 0, 3, 4, 1, 0, 2])
FLIPS = np.array([1, 0, 1, 1, 0, 1, 1])


@contextmanager
def deadline(seconds: int):
    """Fail instead of hanging (Gamma(1e7, 1) hung in SymPy's exact factorial)."""
    def expire(signum, frame):
        raise TimeoutError(f"still running after {seconds} s")

    old = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _gamma_poisson_evidence(a: float, b: float, y: np.ndarray) -> float:
    """log p(y) = a log b − log Γ(a) + log Γ(a + Σy) − (a + Σy) log(b + N) − Σ log y!  (conjugacy)."""
    s, n = float(y.sum()), len(y)
    return a * log(b) - lgamma(a) + lgamma(a + s) - (a + s) * log(b + n) - sum(lgamma(v + 1.0) for v in y)


def _beta_bernoulli_evidence(a: float, b: float, y: np.ndarray) -> float:
    """log p(y) = log B(a + k, b + n − k) − log B(a, b)."""
    def lbeta(p, q):
        return lgamma(p) + lgamma(q) - lgamma(p + q)

    k, n = float(y.sum()), len(y)
    return lbeta(a + k, b + n - k) - lbeta(a, b)


def _fit(tmp_path: Path, prior: str, likelihood: str, data: dict):
    path = tmp_path / "m.ppvi"
    path.write_text(f"dim N\ndata y[N] : {'count' if 'Poisson' in likelihood else 'binary'}\n"
                    f"{prior}\nfor n in N:\n    y[n] ~ {likelihood}\n")
    with deadline(300):
        return ppvi.load(str(path)).fit(data, tol=1e-12)


@pytest.mark.parametrize("shape, rate", [(1000, 1000), (200.5, 1), (1e7, 1), (2.5e5, 3e5)])
def test_a_gamma_prior_with_a_large_shape_fits_the_closed_form_evidence(shape, rate, tmp_path):
    """log Γ(1000) is 5905.2; Γ(1000) itself is no double.  The mean field is exact here: ELBO = log p(y)."""
    r = _fit(tmp_path, f"rate ~ Gamma({shape}, {rate})", "Poisson(rate)", {"y": COUNTS})
    exact = _gamma_poisson_evidence(shape, rate, COUNTS)
    assert r.elbo == pytest.approx(exact, rel=1e-12, abs=1e-8)
    post = r.q["rate"]
    assert float(post["shape"]) == pytest.approx(shape + COUNTS.sum(), rel=1e-12)
    assert float(post["rate"]) == pytest.approx(rate + len(COUNTS), rel=1e-12)


def test_a_beta_prior_with_large_parameters_fits_the_closed_form_evidence(tmp_path):
    r = _fit(tmp_path, "p ~ Beta(500, 500)", "Bernoulli(p)", {"y": FLIPS})
    assert r.elbo == pytest.approx(_beta_bernoulli_evidence(500, 500, FLIPS), abs=1e-8)


def test_a_derivation_never_evaluates_the_gamma_function_of_a_number():
    """The derivation of Gamma(1e7, 1) is as quick as that of Gamma(2, 1), and prints log Γ(10000000)."""
    from ppvi.derive import derive
    from ppvi.derive.render import to_text
    from ppvi.language import loads

    with deadline(60):
        d = derive(loads("dim N\ndata y[N] : count\nr ~ Gamma(1e7, 1)\nfor n in N:\n    y[n] ~ Poisson(r)\n"))
    assert "log Γ(10000000)" in to_text(d)


@pytest.mark.parametrize("name", CASES)
def test_a_constant_that_is_no_double_is_a_positioned_error(name, capsys, monkeypatch, update_golden):
    monkeypatch.chdir(HERE)
    code, out, err = run_cli(["derive", name], capsys)
    assert code == 2, f"exit {code}, stderr:\n{err}"
    assert out == "" and "internal error" not in err
    first = err.splitlines()[0]
    assert first.startswith(f"{name}:") and ": error: " in first
    expected = HERE / (name[:-5] + ".expected")
    assert_golden(expected, err, update_golden)
    # the same mistake stops `derive --code` (the kernels are never generated from it)
    assert run_cli(["derive", name, "--code"], capsys)[::2] == (2, err)


def test_a_constant_that_is_not_finite_for_the_data_sizes_is_an_error_at_run_time(tmp_path, capsys):
    """1 / (N - 4) is finite for the checker (N is unknown) and infinite once the data give N = 4."""
    path = tmp_path / "m.ppvi"
    path.write_text("dim N\ndata y[N]\nconst c = 1 / (N - 4)\nmu ~ Normal(c, 1)\nfor n in N:\n"
                    "    y[n] ~ Normal(mu, 1)\n")
    (tmp_path / "m.csv").write_text("y\n1\n2\n0\n3\n")
    code, _, err = run_cli(["run", path, "--quiet"], capsys)
    assert code == 2, err
    assert err.startswith(f"{path}:3:16: error: division by zero")


def test_every_golden_file_has_a_model():
    assert not [p.name for p in HERE.glob("*.expected") if not (HERE / (p.stem + ".ppvi")).exists()]
