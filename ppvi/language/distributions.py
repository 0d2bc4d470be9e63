"""Signatures of the distributions a model may use (docs/language.md).

Only what the front end needs to check a call: parameter names in positional
order, which keyword groups are alternatives, each parameter's domain and rank,
and the support and event rank of the value.  The mathematics of each family
lives in :mod:`ppvi.families`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Param:
    name: str
    domain: str  # real | positive | unit | simplex | pd | df | count
    rank: int    # 0 scalar; 1 vector over the event axis; 2 matrix over it


@dataclass(frozen=True)
class Signature:
    name: str
    params: tuple[Param, ...]
    positional: tuple[str, ...]            # names filled by positional arguments, in order
    one_of: tuple[str, ...] = ()           # exactly one of these must be given
    support: str = "real"                 # support of the value
    event_rank: int = 0                    # 0 scalar, 1 vector (D), 2 matrix (D, D)

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)

    def required(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params if p.name not in self.one_of)

    def usage(self) -> str:
        if self.one_of:
            alts = " | ".join(f"{n}=" for n in self.one_of[1:])
            return f"{self.name}({', '.join(self.required())}, {self.one_of[0]} | {alts})"
        return f"{self.name}({', '.join(p.name for p in self.params)})"


def _p(name: str, domain: str = "real", rank: int = 0) -> Param:
    return Param(name, domain, rank)


SIGNATURES: dict[str, Signature] = {s.name: s for s in [
    Signature("Normal", (_p("mean"), _p("sd", "positive"), _p("precision", "positive"), _p("variance", "positive")),
              ("mean", "sd"), one_of=("sd", "precision", "variance")),
    Signature("MvNormal", (_p("mean", "real", 1), _p("precision", "pd", 2), _p("cov", "pd", 2)),
              ("mean", "precision"), one_of=("precision", "cov"), support="real_vector", event_rank=1),
    Signature("Gamma", (_p("shape", "positive"), _p("rate", "positive")), ("shape", "rate"), support="positive"),
    Signature("Beta", (_p("a", "positive"), _p("b", "positive")), ("a", "b"), support="unit_interval"),
    Signature("Bernoulli", (_p("p", "unit"),), ("p",), support="binary"),
    Signature("Categorical", (_p("p", "simplex", 1),), ("p",), support="index"),
    Signature("Dirichlet", (_p("alpha", "positive", 1),), ("alpha",), support="simplex", event_rank=1),
    Signature("Poisson", (_p("rate", "positive"),), ("rate",), support="count"),
    Signature("Exponential", (_p("rate", "positive"),), ("rate",), support="positive"),
    Signature("Laplace", (_p("loc"), _p("scale", "positive")), ("loc", "scale")),
    Signature("Binomial", (_p("n", "count"), _p("p", "unit")), ("n", "p"), support="count"),
    Signature("NegativeBinomial", (_p("r", "positive"), _p("p", "unit")), ("r", "p"), support="count"),
    Signature("Multinomial", (_p("n", "count"), _p("p", "simplex", 1)), ("n", "p"), support="count", event_rank=1),
    Signature("StickBreaking", (_p("alpha", "positive", 1),), ("alpha",), support="simplex", event_rank=1),
    Signature("StudentT", (_p("nu", "positive"), _p("mean"), _p("sd", "positive"), _p("precision", "positive")),
              ("nu", "mean", "sd"), one_of=("sd", "precision")),
    Signature("Wishart", (_p("df", "df"), _p("scale", "pd", 2)), ("df", "scale"), support="pd_matrix", event_rank=2),
]}

# Supports a `data`/`param` declaration may carry, and whether they take a dim argument.
SUPPORT_ANNOTATIONS = {"real": False, "positive": False, "binary": False, "count": False, "index": True,
                       "simplex": False, "unit_columns": False}
PARAM_SUPPORTS = frozenset({"real", "positive", "simplex", "unit_columns"})

# Which value supports an annotated data variable may take for a distribution's support.
COMPATIBLE = {
    "real": {"real"}, "real_vector": {"real"}, "positive": {"positive", "real"},
    "unit_interval": {"real", "positive"}, "binary": {"binary", "count", "real"},
    "index": {"index", "count"}, "count": {"count", "real"}, "simplex": {"simplex"},
    "pd_matrix": {"real"},
}

# Laws whose `p = sigmoid(ψ)` (ψ reading a latent) is made conjugate by a Pólya-Gamma weight per element.
LOGISTIC_LINKS = ("Bernoulli", "Binomial", "NegativeBinomial")

ELEMENTWISE = frozenset({"sigmoid", "exp", "log", "softplus"})
FUNCTIONS = ELEMENTWISE | {"dot"}
CONST_FUNCTIONS = frozenset({"eye"})

# Parameters the derivation needs as one named matrix (its inverse and log-determinant are taken
# once, from the values), and the kinds of variable that may stand there.
NAMED_MATRIX = {("MvNormal", "precision"): ("const", "data", "latent"),
                ("MvNormal", "cov"): ("const", "data"),
                ("Wishart", "scale"): ("const", "data")}

# The supports a variable standing alone as a parameter of each domain may have, and the support a
# `data` variable declared without one takes there (its values are then checked on load).
DOMAIN_SUPPORTS = {"positive": ("positive", "unit_interval"), "df": ("positive", "unit_interval"),
                   "unit": ("unit_interval",), "simplex": ("simplex",), "pd": ("pd_matrix",)}
DOMAIN_DATA_SUPPORT = {"positive": "positive", "df": "positive", "unit": "unit_interval", "simplex": "simplex",
                       "pd": "pd_matrix"}
DOMAIN_WORDS = {"positive": "positive", "df": "positive", "unit": "a probability in (0, 1)",
                "simplex": "a simplex (non-negative, summing to 1 along its last axis)",
                "pd": "a symmetric positive-definite matrix"}
SUPPORT_WORDS = {"real": "real-valued", "positive": "positive", "unit_interval": "in (0, 1)", "binary": "0 or 1",
                 "count": "a count (0 included)", "index": "a category index", "simplex": "a simplex",
                 "unit_columns": "a matrix with unit-norm columns", "real_vector": "a real vector",
                 "pd_matrix": "a positive-definite matrix"}
# Parameters a latent reaches only through log Γ (or a shape of the law): no q family absorbs them, only a point.
LOG_GAMMA_SHAPES = frozenset({("Gamma", "shape"), ("Beta", "a"), ("Beta", "b"), ("NegativeBinomial", "r"),
                              ("StudentT", "nu")})
# The prior that gives a latent each domain's support, for hints.
DOMAIN_PRIOR = {"positive": "Gamma", "df": "Gamma", "unit": "Beta", "simplex": "Dirichlet", "pd": "Wishart"}
# Latents a point (MAP) approximation does not handle: what they are, and their mean-field q.
POINT_REFUSED = {"binary": ("binary", "Bernoulli"), "index": ("a category index", "Categorical"),
                 "count": ("a count", None), "pd_matrix": ("a positive-definite matrix", "Wishart")}
