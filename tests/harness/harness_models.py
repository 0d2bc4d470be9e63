"""Random conjugate models (Hypothesis strategies): the harness past the hand-written corpus.

A model is assembled from motifs, each conjugate by construction (PRML ch. 10, Bishop & Winn's
conjugate-exponential class): observations of every family with their conjugate parameters (Normal mean and
Gamma precision, or a Normal–Gamma pair; Gamma rates of Poisson, Exponential and Gamma data; Beta of Bernoulli,
Binomial and NegativeBinomial counts; Dirichlet of Categorical and Multinomial data; MvNormal and Wishart),
some with missing entries,
as one global parameter, a mixture over components (a latent z[n]), or groups read at a data-valued index;
hierarchies (shared latent hyperparameters); products of latents (regression weights, a product of two
scalars, a bilinear factor model, matrix factorisation at data-valued indices; a logistic regression,
conjugate given Pólya-Gamma weights); params beside latents.  Every mean-field update of such a model is in
closed form, so deriving must succeed: a refusal is a false one.

The feature groups are separate strategies, so a known fault in one (issue 14 item 2: bilinear models) is
marked there and the others still guard.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from hypothesis import strategies as st


@dataclass(frozen=True)
class Spec:
    """A generated model: its text and what went into it (for the failure report)."""

    text: str
    features: tuple[str, ...]

    def __repr__(self) -> str:
        return f"Spec(features={self.features!r}, text=\n{self.text})"


@dataclass
class _Model:
    dims: dict = field(default_factory=lambda: {"N": None})
    consts: list = field(default_factory=list)
    decls: list = field(default_factory=list)
    top: list = field(default_factory=list)       # top-level statements (with their own loops)
    local: list = field(default_factory=list)     # statements inside `for n in N:`
    features: list = field(default_factory=list)
    count: itertools.count = field(default_factory=lambda: itertools.count(1))
    mixture: str | None = None                    # z, when a mixture latent exists
    groups: str | None = None                     # the group index data, when one exists
    tail: list = field(default_factory=list)      # `approximate …` lines, after the statements

    def name(self, stem: str) -> str:
        return f"{stem}{next(self.count)}"

    def dim(self, name: str, default: int | None = None) -> str:
        self.dims.setdefault(name, default)
        return name

    def text(self) -> str:
        free = [d for d, v in self.dims.items() if v is None]
        out = [f"dim {', '.join(free)}"] if free else []
        out += [f"dim {d} = {v}" for d, v in self.dims.items() if v is not None]
        out += self.consts + self.decls + self.top
        if self.local:
            out.append("for n in N:")
            out += ["    " + line for line in self.local]
        return "\n".join(out + self.tail) + "\n"


# ------------------------------------------------------------------ pieces
def _positive_value(m: _Model, draw, where: str, hier: bool) -> str:
    """A positive quantity read by a likelihood (a precision or a rate): literal, const, latent Gamma
    (global, or hierarchical with a latent rate), or param."""
    kind = draw(st.sampled_from(["literal", "const", "latent", "latent", "param"]))
    m.features.append(f"{where}:{kind}")
    if kind == "literal":
        return repr(draw(st.sampled_from([0.5, 1.0, 2.0])))
    if kind == "const":
        c = m.name("c")
        m.consts.append(f"const {c} = {draw(st.sampled_from([0.5, 2.0]))!r}")
        return c
    if kind == "param":
        p = m.name("p")
        m.decls.append(f"param {p} : positive")
        return p
    g = m.name("tau")
    rate = "1.0"
    if hier:
        rate = m.name("b")
        m.top.append(f"{rate} ~ Gamma(2.0, 1.0)")
        m.features.append("hierarchy:gamma-rate")
    m.top.append(f"{g} ~ Gamma(2.0, {rate})")
    return g


def _index(m: _Model, mode: str) -> tuple[str, str, str]:
    """(loop header over the parameter's plate, subscript of a draw, subscript where the data read it)."""
    if mode == "mixture":
        return "for k in K:", "[k]", f"[{m.mixture}[n]]"
    if mode == "group":
        return "for g in G:", "[g]", f"[{m.groups}[n]]"
    return "", "", ""


def _declare(m: _Model, head: str, lines: list[str]) -> None:
    if head:
        m.top.append(head)
        m.top += ["    " + line for line in lines]
    else:
        m.top += lines


def _ensure_mixture(m: _Model, draw) -> None:
    if m.mixture is not None:
        return
    m.dim("K", draw(st.sampled_from([2, 3])))
    z = m.mixture = m.name("z")
    weights = draw(st.sampled_from(["dirichlet", "dirichlet", "param", "grouped"]))
    m.features.append(f"mixture:{weights}")
    if weights == "param":
        w = m.name("w")
        m.decls.append(f"param {w}[K] : simplex")
        m.local.append(f"{z}[n] ~ Categorical({w})")
    elif weights == "grouped":      # LDA's θ[doc[t]]: a Dirichlet per group, read at a data-valued index
        _ensure_groups(m, draw)
        a, th = m.name("a"), m.name("theta")
        m.consts.append(f"const {a}[K] = 0.7")
        m.top += ["for g in G:", f"    {th}[g] ~ Dirichlet({a})"]
        m.local.append(f"{z}[n] ~ Categorical({th}[{m.groups}[n]])")
    else:
        a, pi = m.name("a"), m.name("pi")
        m.consts.append(f"const {a}[K] = 1.0")
        m.top.append(f"{pi} ~ Dirichlet({a})")
        m.local.append(f"{z}[n] ~ Categorical({pi})")


def _ensure_groups(m: _Model, draw) -> None:
    if m.groups is None:
        m.dim("G")
        m.groups = m.name("grp")
        m.decls.append(f"data {m.groups}[N] : index(G)")


def _mode(m: _Model, draw, modes: list[str]) -> str:
    mode = draw(st.sampled_from(modes))
    if mode == "mixture":
        _ensure_mixture(m, draw)
    elif mode == "group":
        _ensure_groups(m, draw)
    return mode


# ------------------------------------------------------------------ observation motifs
def normal_obs(m: _Model, draw, modes: list[str]) -> None:
    """x[n] ~ Normal(μ, precision = τ): μ a Normal latent (hierarchical: its mean and precision latent and
    shared), a param, or a const; τ any positive value (latents indexed like μ, or not)."""
    mode = _mode(m, draw, modes)
    head, at, read = _index(m, mode)
    x = m.name("x")
    m.decls.append(f"data {x}[N]{_missing(m, draw)}")
    mean_kind = draw(st.sampled_from(["latent", "latent", "hierarchical", "param"]))
    m.features.append(f"normal:{mode}:{mean_kind}")
    if mode == "global" and mean_kind == "latent" and draw(st.integers(0, 2)) == 0:
        _normal_gamma(m, x, m.name("mu"), draw(st.booleans()))
        return
    if mean_kind == "param":
        mu = m.name("m")
        m.decls.append(f"param {mu}{'[K]' if mode == 'mixture' else '[G]' if mode == 'group' else ''}")
    else:
        mu = m.name("mu")
        loc, prec = "0.0", "0.1"
        if mean_kind == "hierarchical":
            loc, prec = m.name("m"), m.name("s")
            m.top += [f"{loc} ~ Normal(0.0, precision = 0.1)", f"{prec} ~ Gamma(2.0, 2.0)"]
        _declare(m, head, [f"{mu}{at} ~ Normal({loc}, precision = {prec})"])
    per = draw(st.booleans()) and mode != "global"
    if per:
        tau = m.name("tau")
        _declare(m, head, [f"{tau}{at} ~ Gamma(2.0, 1.0)"])
        tau_read = f"{tau}{read}"
        m.features.append("normal:precision-indexed")
    else:
        tau_read = _positive_value(m, draw, "normal-precision", hier=draw(st.booleans()))
    m.local.append(f"{x}[n] ~ Normal({mu}{read}, precision = {tau_read})")


def _normal_gamma(m: _Model, x: str, mu: str, joint: bool) -> None:
    """PRML 10.1.3's coupled prior, μ | λ ~ N(m₀, (β₀ λ)⁻¹), as one Normal–Gamma q(μ, λ) or factorised."""
    lam = m.name("lam")
    m.top.append(f"{lam} ~ Gamma(2.0, 1.0)")
    m.top.append(f"{mu} ~ Normal(0.0, precision = 0.1 * {lam})")
    m.local.append(f"{x}[n] ~ Normal({mu}, precision = {lam})")
    m.features.append(f"normal-gamma:{'joint' if joint else 'factorised'}")
    if joint:
        m.tail.append(f"approximate {mu}, {lam} jointly")


def _missing(m: _Model, draw, support: str = "") -> str:
    """A data variable's support, ``: missing`` added at random (q imputes the empty entries)."""
    if draw(st.integers(0, 3)) == 0:
        m.features.append("missing")
        return f" : {support + ' ' if support else ''}missing"
    return f" : {support}" if support else ""


def rate_obs(m: _Model, draw, modes: list[str]) -> None:
    """Poisson counts, Exponential or Gamma(known shape) data with a Gamma rate (hierarchical: its own rate
    a shared latent)."""
    mode = _mode(m, draw, modes)
    head, at, read = _index(m, mode)
    family = draw(st.sampled_from(["Poisson", "Exponential", "Gamma"]))
    y, lam = m.name("y"), m.name("lam")
    rate = "1.0"
    if draw(st.booleans()):
        rate = m.name("b")
        m.top.append(f"{rate} ~ Gamma(2.0, 2.0)")
    m.features.append(f"{family}:{mode}:{'hierarchical' if rate != '1.0' else 'plain'}")
    _declare(m, head, [f"{lam}{at} ~ Gamma(2.0, {rate})"])
    m.decls.append(f"data {y}[N]")
    arg = f"{lam}{read}"
    m.local.append(f"{y}[n] ~ {family}({'1.5, ' if family == 'Gamma' else ''}{arg})")


def beta_obs(m: _Model, draw, modes: list[str]) -> None:
    """Binary data with a Beta probability."""
    mode = _mode(m, draw, modes)
    head, at, read = _index(m, mode)
    y, p = m.name("y"), m.name("p")
    m.features.append(f"Bernoulli:{mode}")
    _declare(m, head, [f"{p}{at} ~ Beta(1.5, 1.5)"])
    m.decls.append(f"data {y}[N] : binary")
    m.local.append(f"{y}[n] ~ Bernoulli({p}{read})")


def count_obs(m: _Model, draw, modes: list[str]) -> None:
    """Counts with a known total or stopping rule: Binomial(n[n], p) and NegativeBinomial(r, p) with a Beta
    p, Multinomial(n[n], θ) with a Dirichlet θ (each conjugate: 19.56's updates of a Beta or Dirichlet)."""
    mode = _mode(m, draw, modes)
    head, at, read = _index(m, mode)
    family = draw(st.sampled_from(["Binomial", "NegativeBinomial", "Multinomial"]))
    y, p, n = m.name("y"), m.name("p"), m.name("n")
    m.features.append(f"{family}:{mode}")
    if family == "Multinomial":
        m.dim("V", 3)
        a = m.name("a")
        m.consts.append(f"const {a}[V] = 0.5")
        _declare(m, head, [f"{p}{at} ~ Dirichlet({a})"])
        m.decls += [f"data {n}[N] : count", f"data {y}[N, V] : count"]
        m.local.append(f"{y}[n] ~ Multinomial({n}[n], {p}{read})")
        return
    _declare(m, head, [f"{p}{at} ~ Beta(1.5, 1.5)"])
    if family == "Binomial":
        m.decls += [f"data {n}[N] : count", f"data {y}[N]{_missing(m, draw, 'count')}"]
        m.local.append(f"{y}[n] ~ Binomial({n}[n], {p}{read})")
    else:
        m.decls.append(f"data {y}[N]{_missing(m, draw, 'count')}")
        r = draw(st.sampled_from(["2.5", "data"]))
        if r == "data":
            r = n
            m.decls.append(f"data {n}[N]")
        m.local.append(f"{y}[n] ~ NegativeBinomial({r}{'[n]' if r == n else ''}, {p}{read})")


def categorical_obs(m: _Model, draw, modes: list[str]) -> None:
    """Categorical data (V values) with Dirichlet probabilities."""
    mode = _mode(m, draw, modes)
    head, at, read = _index(m, mode)
    m.dim("V", 3)
    y, th, a = m.name("y"), m.name("phi"), m.name("a")
    m.features.append(f"Categorical:{mode}")
    m.consts.append(f"const {a}[V] = 0.5")
    _declare(m, head, [f"{th}{at} ~ Dirichlet({a})"])
    m.decls.append(f"data {y}[N] : index(V)")
    m.local.append(f"{y}[n] ~ Categorical({th}{read})")


def mvnormal_obs(m: _Model, draw, modes: list[str]) -> None:
    """x[n] ~ MvNormal(μ, precision = Λ): μ MvNormal, Λ Wishart (or a const precision)."""
    mode = _mode(m, draw, modes)
    head, at, read = _index(m, mode)
    m.dim("D", 2)
    x, mu, lam = m.name("x"), m.name("mu"), m.name("L")
    m0, p0, nu, w0 = m.name("m"), m.name("P"), m.name("nu"), m.name("W")
    m.consts += [f"const {m0}[D] = 0.0", f"const {p0}[D, D] = 0.1 * eye(D)", f"const {nu} = D + 2",
                 f"const {w0}[D, D] = eye(D) / {nu}"]
    wishart = draw(st.booleans())
    m.features.append(f"MvNormal:{mode}:{'wishart' if wishart else 'known'}")
    lines = [f"{mu}{at} ~ MvNormal({m0}, precision = {p0})"]
    if wishart:
        lines.append(f"{lam}{at} ~ Wishart({nu}, {w0})")
    _declare(m, head, lines)
    m.decls.append(f"data {x}[N, D]")
    prec = f"{lam}{read}" if wishart else p0
    m.local.append(f"{x}[n] ~ MvNormal({mu}{read}, precision = {prec})")


# ------------------------------------------------------------------ products
def regression(m: _Model, draw) -> None:
    """y[n] ~ Normal(Σ_d X[n, d] w[d], precision = τ), or y[n] ~ Bernoulli(sigmoid(Σ_d X[n, d] w[d])) (conjugate
    given a Pólya-Gamma weight per observation, which ppvi adds): weights per coordinate (each reads the
    others) or one MvNormal."""
    m.dim("D", 2)
    X, y, w = m.name("X"), m.name("y"), m.name("w")
    logistic = draw(st.booleans())
    m.decls += [f"data {X}[N, D]", f"data {y}[N]{' : binary' if logistic else ''}"]
    joint = draw(st.booleans())
    m.features.append(f"regression:{'mvnormal' if joint else 'factorised'}")
    if joint:
        m0, p0 = m.name("m"), m.name("P")
        m.consts += [f"const {m0}[D] = 0.0", f"const {p0}[D, D] = eye(D)"]
        m.top.append(f"{w} ~ MvNormal({m0}, precision = {p0})")
        mean = f"dot({X}[n], {w})"
    else:
        m.top += ["for d in D:", f"    {w}[d] ~ Normal(0.0, precision = 1.0)"]
        mean = f"sum(d in D: {X}[n, d] * {w}[d])"
    if logistic:
        m.features.append("regression:logistic")
        m.local.append(f"{y}[n] ~ Bernoulli(sigmoid({mean}))")
        return
    tau = _positive_value(m, draw, "regression-precision", hier=False)
    m.local.append(f"{y}[n] ~ Normal({mean}, precision = {tau})")


def scalar_product(m: _Model, draw) -> None:
    """y[n] ~ Normal(a b, precision = τ) with a, b independent Normal latents (each conjugate given the
    other: the expected log joint is linear in a's statistics for fixed ⟨b⟩, ⟨b²⟩)."""
    y, a, b = m.name("y"), m.name("a"), m.name("b")
    m.decls.append(f"data {y}[N]")
    m.top += [f"{a} ~ Normal(1.0, precision = 1.0)", f"{b} ~ Normal(1.0, precision = 1.0)"]
    tau = _positive_value(m, draw, "product-precision", hier=False)
    m.features.append("product:scalar")
    m.local.append(f"{y}[n] ~ Normal({a} * {b}, precision = {tau})")


def bilinear(m: _Model, draw) -> None:
    """Y[n, d] ~ Normal(Σ_k W[d, k] f[n, k], precision = ψ): factor analysis / PCA.  f local Normal; W a
    latent, a param (PPCA by EM) or data; ψ per dimension or one scalar of any kind."""
    m.dim("D", draw(st.sampled_from([2, 3])))
    m.dim("M", 2)
    Y, W, f = m.name("Y"), m.name("W"), m.name("f")
    loading = draw(st.sampled_from(["latent", "latent", "param", "data"]))
    m.features.append(f"bilinear:{loading}")
    if loading == "latent":
        m.top += ["for d in D:", "    for j in M:", f"        {W}[d, j] ~ Normal(0.0, precision = 1.0)"]
    else:
        m.decls.append(f"{'param' if loading == 'param' else 'data'} {W}[D, M]")
    m.decls.append(f"data {Y}[N, D]")
    if draw(st.booleans()):
        psi = m.name("psi")
        m.top += ["for d in D:", f"    {psi}[d] ~ Gamma(2.0, 1.0)"]
        prec = f"{psi}[d]"
        m.features.append("bilinear-precision:per-dim")
    else:
        prec = _positive_value(m, draw, "bilinear-precision", hier=False)
    m.local += ["for j in M:", f"    {f}[n, j] ~ Normal(0.0, precision = 1.0)", "for d in D:",
                f"    {Y}[n, d] ~ Normal(sum(j in M: {W}[d, j] * {f}[n, j]), precision = {prec})"]


def pmf(m: _Model, draw) -> None:
    """Probabilistic matrix factorisation in long format: y[n] ~ Normal(Σ_k P[u[n], k] Q[i[n], k], τ) with u, i
    data-valued indices (issue 14 item 4's scatters over the data plate); P, Q Normal (their means latent and
    shared, or 0) or MvNormal rows."""
    m.dim("U")
    m.dim("I")
    m.dim("M", 2)
    y, u, i, P, Q = m.name("y"), m.name("u"), m.name("i"), m.name("P"), m.name("Q")
    m.decls += [f"data {u}[N] : index(U)", f"data {i}[N] : index(I)", f"data {y}[N]"]
    rows = draw(st.sampled_from(["normal", "mvnormal"]))
    m.features.append(f"pmf:{rows}")
    if rows == "mvnormal":
        m0, p0 = m.name("m"), m.name("P")
        m.consts += [f"const {m0}[M] = 0.0", f"const {p0}[M, M] = eye(M)"]
        m.top += ["for a in U:", f"    {P}[a] ~ MvNormal({m0}, precision = {p0})",
                  "for b in I:", f"    {Q}[b] ~ MvNormal({m0}, precision = {p0})"]
        mean = f"dot({P}[{u}[n]], {Q}[{i}[n]])"
    else:
        m.top += ["for a in U:", "    for j in M:", f"        {P}[a, j] ~ Normal(0.0, precision = 1.0)",
                  "for b in I:", "    for j in M:", f"        {Q}[b, j] ~ Normal(0.0, precision = 1.0)"]
        mean = f"sum(j in M: {P}[{u}[n], j] * {Q}[{i}[n], j])"
    tau = _positive_value(m, draw, "pmf-precision", hier=False)
    m.local.append(f"{y}[n] ~ Normal({mean}, precision = {tau})")


OBSERVATIONS = [normal_obs, rate_obs, beta_obs, categorical_obs, mvnormal_obs, count_obs]


@st.composite
def models(draw, group: str) -> Spec:
    """A random conjugate model of one feature group: mixtures, groups (data-valued indices), hierarchies,
    products, params."""
    m = _Model()
    if group == "mixtures":
        for motif in draw(st.lists(st.sampled_from(OBSERVATIONS), min_size=1, max_size=2)):
            motif(m, draw, ["mixture"])
    elif group == "groups":
        for motif in draw(st.lists(st.sampled_from(OBSERVATIONS), min_size=1, max_size=2)):
            motif(m, draw, ["group", "global"])
    elif group == "hierarchies":
        for _ in range(draw(st.integers(1, 2))):
            draw(st.sampled_from([normal_obs, rate_obs]))(m, draw, ["group", "mixture", "global"])
    elif group == "products":
        draw(st.sampled_from([regression, scalar_product, bilinear, pmf]))(m, draw)
        if draw(st.booleans()):
            draw(st.sampled_from(OBSERVATIONS))(m, draw, ["global"])
    elif group == "bilinear":
        bilinear(m, draw)
    else:
        raise ValueError(group)
    return Spec(m.text(), tuple(m.features))


GROUPS = ("mixtures", "groups", "hierarchies", "products", "bilinear")
