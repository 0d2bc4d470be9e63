"""Each generated kernel compiled by Numba against the same kernel run by the interpreter (``py_func``), on the
same valid state: a parallel loop that relied on distinct arguments not overlapping, or on one iteration not
reading what another writes, gives different numbers compiled (issue 14, item 1).  The runtime's helpers are
compiled in both runs; only the kernel's own loops differ."""

from __future__ import annotations

import numpy as np
import pytest

from programs import all_models, kernels, program


def _state(p) -> dict:
    """A copy of the program's state, the aliases bound to their owners again."""
    out = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in p.state.items()}
    for alias, owner in p.plan.aliases().items():
        out[alias] = out[owner]
    return out


# By default one model for each kind of kernel and loop the generator writes (a parallel local step and its
# statistics over MvNormal/Wishart globals and a stick-breaking Beta: dp_gmm; a group block: lda; gathers and
# scatters at data-valued indices: bpmf; Pólya–Gamma and exp-link Newton steps; MAP codes by feature-sign;
# Bernoulli locals and an Ising field that read each other; missing entries and a mixture's labels over Normal
# globals: iris_missing; Gamma locals and auxiliary counts: poisson_factorisation; a factor model's bilinear
# terms; param updates: sparse_coding, binary_sparse_coding); every model with --long.  Each compiles kernels no
# fit does (the damped variants, the stand-alone statistics): 20–45 CPU-s a model cold.  With --long only, as
# they add no kind of kernel: gmm (its parallel kernels are dp_gmm's: the labels' update, damped update and
# local step, the same three statistics), em_gmm (a mixture's labels as iris_missing's, param updates as the
# sparse codings') and robust_regression (a Student-t's local scales: a Gamma local read through E[w wᵀ] in a
# chunked parallel loop, as poisson_factorisation's Gamma locals and fa_bayes' factors read theirs).
DEFAULT = {"dp_gmm", "lda", "bpmf", "logistic_regression", "poisson_regression", "sparse_coding",
           "binary_sparse_coding", "ising", "iris_missing", "poisson_factorisation", "fa_bayes"}


@pytest.fixture(scope="module", params=[pytest.param(n, id=n, marks=() if n in DEFAULT else pytest.mark.long)
                                        for n in all_models()])
def swept(request):
    """A model after one compiled sweep from its start: a generic valid state, every kernel compiled."""
    name = request.param
    p = program(name, e_step=True)
    for var in p.schedule():
        p.update(var)
    p.elbo()
    for var in p.plan.latents:
        p._natural_from_q(var)
    p.state["c__damping"] = np.array([0.5])
    rows = request.config.getoption("--long", default=False)      # (the rows kernels compile in seconds each)
    for label, info in kernels(p.plan, rows):
        for a in info.args:
            if a.startswith("o_"):
                p.state[a] = p.state[a[2:]].copy()
            elif a.startswith("g_"):
                p.state.setdefault(a, np.zeros_like(p.state["v_" + a[2:]]))
    return name, p, rows


def test_every_kernel_compiled_equals_the_interpreted_kernel(swept):
    name, p, rows = swept
    for label, info in kernels(p.plan, rows):
        kernel = getattr(p.module, info.name)
        one, two = _state(p), _state(p)
        got = kernel(*(one[a] for a in info.args))
        want = kernel.py_func(*(two[a] for a in info.args))
        if want is not None:
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12, err_msg=f"{name}: {label}")
        for a in info.args:
            if isinstance(one[a], np.ndarray):
                np.testing.assert_allclose(one[a], two[a], rtol=1e-12, atol=1e-12, err_msg=f"{name}: {label}: {a}")
