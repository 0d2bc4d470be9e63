"""Training an encoder by regression on CAVI-refined targets (Salakhutdinov & Larochelle 2010).

After the fit, with the global q and params it found held:

1. regress the encoder onto the fit's own local q (the refined values from the fit's start); a LISTA
   encoder (``by lista(steps = T)``, a point q) starts at ISTA's weights for the dictionary the codes imply
   and learns by backpropagation through its T + 1 steps (:mod:`ppvi.amortise.lista`);
2. ``rounds`` times: set q(h) to the encoder's output on the training rows, run ``sweeps`` exact sweeps
   of the local updates (every local latent, in the fit's order), and regress onto the refined q.

Or, with ``sleep = S`` (wake–sleep's sleep phase, the seed's 19.5.1): S data sets of the fit's size are
dreamed from the model — the global latents drawn from their q, params as fitted, then h and the data
by ancestral sampling — and the encoder is fitted to maximise log q(h | v) of the dreamed pairs (the
cross-entropy against the dreamed h: Bernoulli and Categorical q).  Its optimum is the model's exact
posterior p(h | v), whatever the mean field makes of it.

Targets that the encoder's own output was refined into keep it in the basin it already points at
(a posterior with several modes); exact sweeps make every target at least as good as the encoder's
q in ELBO.  Then the amortisation gap on the training data is measured — the ELBO refined from the
encoder to convergence minus the ELBO at the encoder (≥ 0: every sweep is an exact coordinate update) —
and the fit's q is put back, untouched.  Deterministic given the seed.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from ppvi.amortise import lista
from ppvi.amortise.encoder import FAMILIES, Encoder, gaussian_loss, loss_of, rows, targets, width
from ppvi.amortise.mlp import Adam, initial
from ppvi.errors import Reporter
from ppvi.families.registry import unit_of
from ppvi.infer.program import Program
from ppvi.language.check import Amortised

BATCH = 64
STEPS = 3000          # Adam steps of the first regression (fewer epochs for more rows), a quarter per round
ROUNDS = 3
SWEEPS = 2
LISTA_RATE = 1e-3    # Adam's step for LISTA: it starts at ISTA's weights, which a step of 1e-2 would undo
GAP_SWEEPS = 500      # at most, refining to convergence for the gap (relative change 1e-9)


def family_of(program: Program, latent: str) -> str | None:
    plan = program.plan
    if latent in plan.latents:
        return plan.latents[latent].family
    if latent in plan.point:
        return "point"
    return None


def local_steps(program: Program) -> list[str]:
    """The steps of a sweep that update local latents only (a prediction's sweep, ppvi.infer.given)."""
    from ppvi.infer.given import Roles

    local = set(Roles.of(program.model, program.plan).local)
    return [s for s in program.schedule() if s in local]


def inputs_of(program: Program, spec: Amortised) -> tuple[str, ...]:
    """The data h's factors read at n: data in its Markov blanket whose first axis is the data plate."""
    from ppvi.graph.factor_graph import build

    graph = build(program.model)
    return tuple(v for v in graph.blankets[spec.latent]
                 if graph.nodes[v].kind == "data" and graph.nodes[v].shape[:1] == (graph.data_plate,))


def check(program: Program, spec: Amortised) -> tuple[str, tuple[str, ...]]:
    """The family of q(h) and the encoder's inputs; what no encoder covers is the user's error, at the
    ``amortise`` statement."""
    rep = Reporter(program.model.path, program.model.text)
    family = family_of(program, spec.latent)
    block = program.plan.block
    if block and spec.latent in block.members:
        raise rep.fail(f"`{spec.latent}` is updated in a group block with `{block.name}` (ppvi check shows it): "
                       "its q depends on the whole group, not on one data row", spec.span,
                       "remove the `amortise` statement")
    if spec.method == "lista" and family != "point":
        raise rep.fail(f"LISTA predicts a MAP code, a point q; q({spec.latent}) is a {family}", spec.span,
                       f"add `approximate {spec.latent} by point`, or write `amortise {spec.latent} by mlp(hidden = 64)`")
    if family not in FAMILIES:
        raise rep.fail(f"no encoder for q({spec.latent}), a {family}: an encoder predicts a Bernoulli, Categorical "
                       "or Normal q, or a point", spec.span, "remove the `amortise` statement")
    inputs = inputs_of(program, spec)
    if not inputs:
        raise rep.fail(f"no data along the data plate is read where `{spec.latent}` is: an encoder has no row to "
                       "read", spec.span, "amortise a latent whose factors read the data of its point")
    if spec.sleep and spec.every:
        raise rep.fail("the sleep phase dreams from the fitted model, so it trains after the fit, not during it",
                       spec.span, "drop `every = …` or `sleep = …`")
    observed = {f.target for f in program.model.factors if f.observed}
    if spec.sleep and not set(inputs) <= observed:
        covariates = ", ".join(f"`{v}`" for v in inputs if v not in observed)
        raise rep.fail(f"the sleep phase dreams the data an encoder reads, but {covariates} is not drawn by the "
                       "model", spec.span, "drop `sleep = …`")
    return family, inputs


def set_q(program: Program, encoders: dict[str, Encoder]) -> None:
    """q of every amortised latent from its encoder (through the warm start's checks and finishes)."""
    from ppvi.infer.warm import Start, apply

    apply(program, Start(start_entries(program, encoders), {}, "<encoder>"))


def start_entries(program: Program, encoders: dict[str, Encoder]) -> dict[str, dict]:
    """The encoders' q as entries of a start (ppvi.infer.warm.Start)."""
    return {name: enc.entry(program.state, q_shape(program, name, enc.family)) for name, enc in encoders.items()}


def q_shape(program: Program, latent: str, family: str) -> tuple[int, ...]:
    """The shape of q(latent)'s parameter arrays: the latent's, and a Categorical's categories last."""
    from ppvi.infer.program import _shape

    v = program.model.variables[latent]
    shape = _shape(list(v.shape), program.sizes)
    return shape + _shape([v.support_dim], program.sizes) if unit_of(family).labelled else shape


def sweep(program: Program, order: list[str], count: int) -> None:
    for _ in range(count):
        for var in order:
            program.update(var)


def refine_to_convergence(program: Program, order: list[str], tol: float = 1e-9) -> float:
    """Sweeps until the ELBO changes by at most ``tol`` (relative), at most GAP_SWEEPS; the final ELBO."""
    last = program.elbo()
    for _ in range(GAP_SWEEPS):
        sweep(program, order, 1)
        now = program.elbo()
        if abs(now - last) <= tol * max(1.0, abs(now)):
            return now
        last = now
    return last


def train(program: Program, spec: Amortised, *, seed: int, rounds: int = ROUNDS, sweeps: int = SWEEPS,
          result=None, previous: Encoder | None = None) -> Encoder:
    """An encoder for ``spec.latent`` trained on the program's data with its current (fitted) global q held;
    afterwards the program's q is as it was, in the very arrays it was in (a Result's views of them stay
    the fit's).  The sleep phase (``spec.sleep``) dreams from ``result``, the fit's Result.  ``previous``
    (an earlier refresh during the fit, :class:`During`) is trained further: its network, standardisations
    and gaps are kept, and the first regression is as short as a round's."""
    family, inputs = check(program, spec)
    order = local_steps(program)
    saved = program.snapshot()
    own = {k: program.state[k] for k in saved}
    try:
        if spec.sleep:
            return _sleep(program, result, spec, family, inputs, order, seed=seed)
        return _train(program, spec, family, inputs, order, seed=seed, rounds=rounds, sweeps=sweeps,
                      previous=previous)
    finally:
        for k, a in own.items():
            a[...] = saved[k]
            program.state[k] = a
        program.relink()
        program.stale = True


class During:
    """Training along with the fit (``amortise h by mlp(…, every = k)``): an ``on_iteration`` callback of the
    fit that, every k sweeps, trains each encoder further from the fit's current q (:func:`train` with the
    previous refresh as ``previous``).  The fit's q is put back each time, so the fit runs exactly as it would
    without it: the encoder only proposes, at ``predict``.  ``encoders`` holds the latest refreshes."""

    def __init__(self, program: Program, specs: dict[str, Amortised], *, seed: int):
        self.program, self.seed = program, seed
        self.specs = {name: spec for name, spec in specs.items() if spec.every and not spec.sleep}
        self.encoders: dict[str, Encoder] = {}

    def __call__(self, iteration: int, elbo: float, change: float) -> None:
        for name, spec in self.specs.items():
            if iteration % spec.every == 0:
                self.encoders[name] = train(self.program, spec, seed=self.seed, previous=self.encoders.get(name))


def _train(program: Program, spec: Amortised, family: str, inputs: tuple[str, ...], order: list[str], *,
           seed: int, rounds: int, sweeps: int, previous: Encoder | None = None) -> Encoder:
    refreshes = 0 if previous is None else len(previous.trace) + 1
    rng = np.random.default_rng([seed, 19, refreshes])
    shape = q_shape(program, spec.latent, family)
    units = shape[0]
    raw = rows(program.state, inputs, units)
    t = targets(family, program.state, spec.latent, units)
    loss = loss_of(family, shape[-1] if unit_of(family).labelled else 1)
    epochs = max(5, min(400, math.ceil(STEPS / math.ceil(units / BATCH))))
    adam = Adam(rate=LISTA_RATE) if spec.method == "lista" else Adam()
    if previous is not None:
        x_mean, x_scale, y_mean, y_scale = previous.x_mean, previous.x_scale, previous.y_mean, previous.y_scale
        hidden, layers, net = previous.hidden, previous.layers, previous.net
        first = max(2, epochs // 4)
    elif spec.method == "lista":
        # (ISTA's structure works in the data's units: the standardisations are the identity)
        x_mean, x_scale = np.zeros(raw.shape[1]), np.ones(raw.shape[1])
        y_mean, y_scale = np.zeros(t.shape[1]), np.ones(t.shape[1])
        hidden, layers, net = t.shape[1], 1, lista.from_codes(raw, t, spec.steps)
        first = epochs
    else:
        x_mean, x_scale = raw.mean(axis=0), _spread(raw.std(axis=0))
        scaled = unit_of(family).head in ("gaussian", "value")      # (regression onto numbers, not logits)
        y_mean = t.mean(axis=0) if scaled else np.zeros(t.shape[1])
        y_scale = _spread(t.std(axis=0)) if scaled else np.ones(t.shape[1])
        hidden, layers = spec.hidden, spec.layers
        net = initial([raw.shape[1], *([hidden] * layers), width(family, shape)], rng)
        first = epochs
    x = (raw - x_mean) / x_scale
    net, _ = adam.fit(net, x, (t - y_mean) / y_scale, loss, epochs=first, batch=BATCH, rng=rng)
    trace = () if previous is None else (*previous.trace, previous.gap)

    def encoder(gap: float = math.nan) -> Encoder:
        return Encoder(spec.latent, family, inputs, hidden, layers, x_mean, x_scale, y_mean, y_scale,
                       net, sweeps, rounds, gap, method=spec.method, steps=spec.steps, trace=trace)

    for _ in range(rounds):
        set_q(program, {spec.latent: encoder()})
        sweep(program, order, sweeps)
        t = targets(family, program.state, spec.latent, units)
        net, _ = adam.fit(net, x, (t - y_mean) / y_scale, loss, epochs=max(2, epochs // 4), batch=BATCH, rng=rng)
    set_q(program, {spec.latent: encoder()})
    at_encoder = program.elbo()
    refined = refine_to_convergence(program, order)
    return encoder(refined - at_encoder)


def _sleep(program: Program, result, spec: Amortised, family: str, inputs: tuple[str, ...], order: list[str], *,
           seed: int) -> Encoder:
    """The sleep phase: maximise Σ log q(h | v) over (h, v) dreamed from the model."""
    from ppvi.infer.given import Roles
    from ppvi.io import posterior
    from ppvi.simulate.ancestral import simulate
    from ppvi.simulate.inputs import from_result

    rng = np.random.default_rng([seed, 19, 1])
    shape = q_shape(program, spec.latent, family)
    units, copies = shape[0], spec.sleep
    held = Roles.of(program.model, program.plan).held
    setting = from_result(result, None, "amortise", observed=False)
    drawn = {v: posterior.sample(result.q[v].family, dict(result.q[v].params), copies, rng) for v in held}
    dreams = simulate(setting, copies, rng, given=drawn)
    x = np.concatenate([np.asarray(dreams[v], dtype=float).reshape(copies * units, -1) for v in inputs], axis=1)
    h = np.asarray(dreams[spec.latent]).reshape(copies * units, -1)
    if unit_of(family).labelled:
        h = (h[..., None] == np.arange(shape[-1])).reshape(copies * units, -1)
    t = h.astype(float)
    x_mean, x_scale = x.mean(axis=0), _spread(x.std(axis=0))
    head = unit_of(family).head
    if head == "gaussian":
        # outputs (η₁, log τ) = o ⊙ scale + mean: o = 0 is the dreams' own marginal, N(m, s²)
        m, sd = t.mean(axis=0), _spread(t.std(axis=0))
        y_mean, y_scale = np.concatenate([m / sd ** 2, -2 * np.log(sd)]), np.concatenate([1 / sd, np.ones_like(sd)])
        loss = gaussian_loss(y_mean, y_scale)
    elif head == "value":
        # (squared error: its optimum is the posterior mean E[h | v], a start from which sweeps find the MAP)
        y_mean, y_scale = t.mean(axis=0), _spread(t.std(axis=0))
        t = (t - y_mean) / y_scale
        loss = loss_of(family, 1)
    else:
        y_mean, y_scale = np.zeros(t.shape[1]), np.ones(t.shape[1])
        loss = loss_of(family, shape[-1] if unit_of(family).labelled else 1)
    net = initial([x.shape[1], *([spec.hidden] * spec.layers), width(family, shape)], rng)
    epochs = max(5, min(400, math.ceil(STEPS / math.ceil(len(x) / BATCH))))
    net, _ = Adam().fit(net, (x - x_mean) / x_scale, t, loss, epochs=epochs, batch=BATCH, rng=rng)
    enc = Encoder(spec.latent, family, inputs, spec.hidden, spec.layers, x_mean, x_scale, y_mean, y_scale, net,
                  0, 0, math.nan, "sleep")
    set_q(program, {spec.latent: enc})
    at_encoder = program.elbo()
    return replace(enc, gap=refine_to_convergence(program, order) - at_encoder)


def _spread(sd: np.ndarray) -> np.ndarray:
    """A standard deviation to divide by: 1 where a column is constant."""
    return np.where(sd > 1e-12 * max(1.0, float(np.max(sd, initial=0.0))), sd, 1.0)
