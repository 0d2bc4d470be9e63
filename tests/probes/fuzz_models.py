"""Models for the fuzz (issue 21, item 9): generated from the grammar, and mutations of the examples.

Both take a ``random.Random`` seeded with the case's number, so a failure names the seed that
replays it (``generated_model(random.Random(seed))``).  :func:`outcome` runs one model
through check, derive (every rendering) and the kernel source, each step bounded in time,
and says what came out.
"""

from __future__ import annotations

import random
import signal
import traceback
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
CORPUS = {p.name: p.read_text() for p in sorted((ROOT / "models").glob("*.ppvi"))
          + sorted((ROOT / "tests" / "derive" / "literature").glob("*.ppvi"))}

DISTRIBUTIONS = ["Normal", "MvNormal", "Gamma", "Beta", "Bernoulli", "Categorical", "Dirichlet", "Poisson",
                 "Exponential", "Laplace", "Wishart"]
SUPPORTS = ["real", "positive", "binary", "count", "index(K)", "simplex", "unit_columns", "index(N)", "index"]
# Names with a meaning somewhere below ppvi: Python keywords and builtins, dunders, SymPy's names, the prefixes
# of the generated code, and a name as long as a file name may be.
HOSTILE_NAMES = ["lambda", "class", "def", "import", "None", "True", "print", "exec", "eval", "__import__",
                 "__class__", "__builtins__", "_", "E", "I", "pi", "S", "N", "Sum", "oo", "beta", "gamma", "zoo",
                 "nan", "Symbol", "Idx", "math", "np", "numba", "v_x", "m_mu__x", "q_mu__mean", "n_N", "i0_n",
                 "digamma", "lgamma", "softplus", "sigmoid", "self", "x" * 240, "X" * 64]
HOSTILE_TEXT = ["\x00", "\x0c", "\u2028", "\x1b[2J", "\t", "\r", "\r\n", "\\", "#", "é", "\u202e", "😀",
                "\ufeff", "  ", "\n    ", "\n\n", "'", '"', "`", "$", "{", "}", ";"]
NUMBERS = ["0", "1", "2", "0.5", "1e-300", "1e300", "1e7", "1e-7", "1000", "171.7", "200.5", "1e308", "5e-324",
           "123456789012345", "0.0", "3", "-1", "1e15", "2147483648", "4294967296"]


# ------------------------------------------------------------------ generation
@dataclass
class _Scope:
    """What a generated statement may read: names by kind and shape."""

    scalars: list[str]            # scalar values (consts, latents, data) usable anywhere
    plate: dict[str, list[str]]   # dim -> arrays over that dim (indexed by the loop variable)
    vectors: list[str]            # arrays over K, read whole (Dirichlet's alpha, Categorical's p)


def _number(rng: random.Random, positive: bool = False) -> str:
    """A literal: a plain one mostly, now and then an extreme one (or, for a positive parameter, 0 or −1)."""
    if rng.random() < 0.85:
        return rng.choice(["1", "2", "0.5", "3", "10", "0.1"] if positive else ["0", "1", "-1", "2.5", "0.5"])
    return rng.choice(NUMBERS)


def _expr(rng: random.Random, scope: _Scope, loops: dict[str, str], depth: int = 0) -> str:
    """A scalar expression over what is in scope (loop variables index the arrays of their plates)."""
    atoms = [_number(rng)] + scope.scalars
    for var, dim in loops.items():
        atoms += [f"{a}[{var}]" for a in scope.plate.get(dim, [])]
    roll = rng.random()
    if depth > 2 or roll < 0.45:
        return rng.choice(atoms)
    if roll < 0.75:
        op = rng.choice(["+", "-", "*", "/", "^", "*", "+"])
        right = _number(rng) if op == "^" and rng.random() < 0.8 else _expr(rng, scope, loops, depth + 1)
        return f"{_expr(rng, scope, loops, depth + 1)} {op} {right}"
    if roll < 0.85:
        return f"{rng.choice(['exp', 'log', 'sigmoid', 'softplus'])}({_expr(rng, scope, loops, depth + 1)})"
    if roll < 0.92 and "K" in scope.plate and "k" not in loops:
        return f"sum(k in K: {_expr(rng, scope, {**loops, 'k': 'K'}, depth + 1)})"
    if roll < 0.96:
        return f"-{_expr(rng, scope, loops, depth + 1)}"
    return f"({_expr(rng, scope, loops, depth + 1)})"


def _args(rng: random.Random, dist: str, scope: _Scope, loops: dict[str, str], latent_of: dict[str, str]) -> str:
    """Arguments for ``dist``: usually of the right kind (a conjugate parent where one is at hand)."""
    def pick(kind: str) -> str:
        cands = [n for n, d in latent_of.items() if d == kind]
        if cands and rng.random() < 0.6:
            name = rng.choice(cands)
            for var, dim in loops.items():
                if name in scope.plate.get(dim, []):
                    return f"{name}[{var}]"
            return name if name in scope.scalars else _number(rng)
        if kind in ("Gamma", "Beta"):
            return _number(rng, positive=True) if rng.random() < 0.8 else f"exp({_expr(rng, scope, loops)})"
        return _expr(rng, scope, loops) if rng.random() < 0.3 else _number(rng)

    match dist:
        case "Normal":
            second = rng.choice(["", "sd = ", "precision = ", "variance = "])
            scale = pick("Gamma") if second == "precision = " else _number(rng, positive=True)
            return f"{pick('Normal')}, {second}{scale}"
        case "Gamma":
            return f"{_number(rng, positive=True)}, {pick('Gamma')}"
        case "Beta":
            return f"{_number(rng, positive=True)}, {_number(rng, positive=True)}"
        case "Bernoulli":
            return rng.choice([pick("Beta"), f"sigmoid({_expr(rng, scope, loops)})", "0.5"])
        case "Poisson" | "Exponential":
            return pick("Gamma")
        case "Laplace":
            return f"{pick('Normal')}, {_number(rng, positive=True)}"
        case "Categorical":
            return rng.choice(["pk"] + [n for n, d in latent_of.items() if d == "Dirichlet"] * 3
                              + (["alpha0"] if rng.random() < 0.1 else []))
        case "Dirichlet":
            return rng.choice(scope.vectors)
        case "MvNormal":
            return f"m0, precision = {rng.choice(['P0', 'eye(D)', 'Lam', '2 * P0'])}"
        case "Wishart":
            return f"{rng.choice(['D + 2', '3', '1', 'nu0'])}, {rng.choice(['P0', 'W0', 'eye(D)'])}"
    return _number(rng)


def generated_model(rng: random.Random) -> str:
    """A model from the grammar: dims, constants, data, params, latents at three plate depths, draws of
    every distribution with argument expressions over what is in scope, and ``approximate``."""
    lines = ["model fuzz", "dim N", f"dim K = {rng.choice([2, 3, 5])}", "dim D = 2",
             "const alpha0[K] = 1.0", "const pk[K] = 1 / K", "const m0[D] = 0.0", "const P0[D, D] = eye(D)", "const W0[D, D] = eye(D) / 4",
             "const nu0 = D + 2"]
    scope = _Scope(scalars=[], plate={"N": [], "K": [], "D": []}, vectors=["alpha0"])
    latent_of: dict[str, str] = {}
    for i in range(rng.randint(0, 2)):
        name = f"c{i}"
        lines.append(f"const {name} = {_expr(rng, scope, {})}")
        scope.scalars.append(name)
    if rng.random() < 0.3:
        name = rng.choice(["w", "b0"])
        lines.append(f"param {name}{rng.choice(['', '[K]'])}{rng.choice(['', ' : positive'])}")
        if "[K]" in lines[-1]:
            scope.plate["K"].append(name)
        else:
            scope.scalars.append(name)
    body: list[str] = []
    # global latents
    for i in range(rng.randint(1, 3)):
        dist = rng.choice(["Normal", "Gamma", "Beta", "Dirichlet", "Normal", "Gamma"])
        name = f"g{i}"
        if rng.random() < 0.4 and dist != "Dirichlet":
            body += ["for k in K:", f"    {name}[k] ~ {dist}({_args(rng, dist, scope, {'k': 'K'}, latent_of)})"]
            scope.plate["K"].append(name)
        else:
            body.append(f"{name} ~ {dist}({_args(rng, dist, scope, {}, latent_of)})")
            if dist == "Dirichlet":
                scope.vectors.append(name)
            else:
                scope.scalars.append(name)
        latent_of[name] = dist
    if rng.random() < 0.2:
        body += ["Lam ~ Wishart(nu0, W0)", "mu ~ MvNormal(m0, precision = Lam)"]
        latent_of.update(Lam="Wishart", mu="MvNormal")
    # the data plate: locals, then observations
    data: list[str] = []
    inner = ["for n in N:"]
    loops = {"n": "N"}
    if rng.random() < 0.4:
        inner.append(f"    z[n] ~ Categorical({_args(rng, 'Categorical', scope, loops, latent_of)})")
        latent_of["z"] = "Categorical"
    if rng.random() < 0.3:
        dist = rng.choice(["Normal", "Bernoulli", "Gamma"])
        inner.append(f"    u[n] ~ {dist}({_args(rng, dist, scope, loops, latent_of)})")
        scope.plate["N"].append("u")
    for i in range(rng.randint(1, 3)):
        dist = rng.choice(["Normal", "Normal", "MvNormal", "Gamma", "Beta", "Bernoulli", "Categorical", "Poisson",
                           "Exponential", "Laplace", "Poisson", "Bernoulli"])
        name = f"y{i}"
        support = {"Bernoulli": " : binary", "Poisson": " : count", "Categorical": " : index(K)",
                   "Gamma": " : positive", "Exponential": " : positive", "Beta": ""}.get(dist, "")
        if rng.random() < 0.15:
            support = " : " + rng.choice(SUPPORTS)
        if dist == "MvNormal":
            data.append(f"data {name}[N, D]")
            inner.append(f"    {name}[n] ~ MvNormal({rng.choice(['mu', 'm0'])}, precision = "
                         f"{rng.choice(['P0', 'Lam', 'eye(D)'])})")
            continue
        data.append(f"data {name}[N]{support}")
        if "z" in latent_of and scope.plate["K"] and dist in ("Normal", "Poisson", "Bernoulli") and rng.random() < 0.5:
            mixed = rng.choice(scope.plate["K"])
            args = {"Normal": f"{mixed}[z[n]], 1", "Poisson": f"{mixed}[z[n]]", "Bernoulli": f"{mixed}[z[n]]"}[dist]
        else:
            args = _args(rng, dist, scope, loops, latent_of)
        inner.append(f"    {name}[n] ~ {dist}({args})")
    lines += data + body + inner
    if rng.random() < 0.25:
        target = rng.choice(list(latent_of) * 4 + ["y0", "nothing"])
        lines.append(f"approximate {target} by {rng.choice(['point'] * 8 + ['jointly', 'magic'])}")
    return "\n".join(lines) + "\n"


# -------------------------------------------------------------------- mutation
def mutated_model(rng: random.Random) -> str:
    """An example model (or one of the literature's) with one to four mutations."""
    name = rng.choice(sorted(CORPUS))
    text = CORPUS[name]
    for _ in range(rng.choice([1, 1, 1, 2, 2, 3, 4])):
        text = rng.choice(_MUTATIONS)(rng, text)
    return text


def _swap_distribution(rng, text):
    present = [d for d in DISTRIBUTIONS if f"{d}(" in text]
    if not present:
        return text
    old = rng.choice(present)
    return text.replace(f"{old}(", f"{rng.choice(DISTRIBUTIONS)}(", 1 if rng.random() < 0.5 else -1)


def _rename(rng, text):
    import re

    names = sorted(set(re.findall(r"\b[A-Za-z_][A-Za-z0-9_]*\b", text)))
    if not names:
        return text
    old = rng.choice(names)
    new = rng.choice(HOSTILE_NAMES + names)
    return re.sub(rf"\b{re.escape(old)}\b", new, text, count=0 if rng.random() < 0.7 else 1)


def _change_index(rng, text):
    import re

    spots = list(re.finditer(r"\[([^\[\]]+)\]", text))
    if not spots:
        return text
    m = rng.choice(spots)
    new = rng.choice(["n", "k", "0", "1", "z[n]", "n, k", "", "d", "K", "n + 1", "-1", "c[n]", "doc[t]"])
    return text[:m.start(1)] + new + text[m.end(1):]


def _change_number(rng, text):
    import re

    spots = list(re.finditer(r"(?<![A-Za-z_])\d+(\.\d*)?([eE][+-]?\d+)?", text))
    if not spots:
        return text
    m = rng.choice(spots)
    return text[:m.start()] + rng.choice(NUMBERS) + text[m.end():]


def _drop_line(rng, text):
    lines = text.split("\n")
    del lines[rng.randrange(len(lines))]
    return "\n".join(lines)


def _duplicate_line(rng, text):
    lines = text.split("\n")
    i = rng.randrange(len(lines))
    lines.insert(rng.randrange(len(lines) + 1), lines[i])
    return "\n".join(lines)


def _swap_lines(rng, text):
    lines = text.split("\n")
    i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
    lines[i], lines[j] = lines[j], lines[i]
    return "\n".join(lines)


def _change_support(rng, text):
    import re

    spots = list(re.finditer(r"(data|param) ([^\n:]+)( : [^\n]+)?", text))
    if not spots:
        return text
    m = rng.choice(spots)
    return text[:m.start()] + f"{m.group(1)} {m.group(2)} : {rng.choice(SUPPORTS)}" + text[m.end():]


def _insert_hostile(rng, text):
    i = rng.randrange(len(text) + 1)
    return text[:i] + rng.choice(HOSTILE_TEXT) + text[i:]


def _reindent(rng, text):
    lines = text.split("\n")
    i = rng.randrange(len(lines))
    lines[i] = rng.choice(["", "    ", "  ", "\t", "        "]) + lines[i].lstrip()
    return "\n".join(lines)


def _add_statement(rng, text):
    extra = rng.choice(["approximate mu by point", "approximate z by point", "approximate theta by point",
                        "approximate h by point", "approximate w, tau by point", "const extra = log(0)",
                        "dim K = 0", "dim Q = 2147483647", "param extra[K] : simplex", "data extra[N, N]",
                        "for k in K:\n    extra[k] ~ Normal(0, 1)", "extra ~ Normal(extra, 1)"])
    return text.rstrip("\n") + "\n" + extra + "\n"


_MUTATIONS = [_swap_distribution, _rename, _change_index, _change_number, _drop_line, _duplicate_line,
              _swap_lines, _change_support, _insert_hostile, _reindent, _add_statement,
              _swap_distribution, _rename, _rename, _change_number, _change_number, _add_statement]


# --------------------------------------------------------------------- running
class Deadline(Exception):
    """A stage ran past its time bound: a hang."""


@contextmanager
def deadline(seconds: float):
    """Interrupt the (pure-Python) work inside after ``seconds`` (SIGALRM; the main thread only)."""
    def expire(signum, frame):
        raise Deadline(f"still running after {seconds} s")

    old = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@dataclass(frozen=True)
class Outcome:
    """How far a model went and how it stopped: ``kind`` is ok, user (a positioned PPVIError), or one of the
    faults: internal (an exception of ours), unpositioned (a PPVIError without FILE:), hang."""

    kind: str
    stage: str
    detail: str = ""

    @property
    def fault(self) -> bool:
        return self.kind not in ("ok", "user")


def outcome(text: str, path: str = "fuzz.ppvi", seconds: float = 60.0, code: bool = True) -> Outcome:
    """Run ``text`` through check, derive (text, LaTeX, JSON) and, with ``code``, the kernel source."""
    from ppvi.errors import PPVIError

    stage = "check"
    try:
        with deadline(seconds):
            from ppvi.language import loads

            model = loads(text, path)
            stage = "derive"
            from ppvi.derive import derive
            from ppvi.derive.render import to_json, to_latex, to_text

            d = derive(model)
            for render in (to_text, to_latex, to_json):
                render(d)
            if code:
                stage = "code"
                from ppvi.codegen.cache import fixed_sizes
                from ppvi.codegen.module import generate

                generate(d, fixed_sizes(d.model))
    except PPVIError as e:
        msg = e.format()
        ok = msg.startswith(f"{path}:") and ": error: " in msg.splitlines()[0]
        return Outcome("user" if ok else "unpositioned", stage, msg)
    except Deadline as e:
        return Outcome("hang", stage, str(e))
    except RecursionError:
        return Outcome("internal", stage, "RecursionError")
    except Exception as e:  # noqa: BLE001  (what the fuzz looks for)
        return Outcome("internal", stage, f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=-6)}")
    return Outcome("ok", stage)


# ------------------------------------------------------------------------ data
def tiny_data(model, rng: np.random.Generator, n: int = 4) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Arrays for every data variable of a checked model, within its support, with small sizes: N (and any
    dim without a size) = n; dims with a size above 8 are set to 3 by ``--dim``."""
    sizes = {d.name: (d.default if d.default is not None and d.default <= 8 else n if d.default is None else 3)
             for d in model.dims.values()}
    flags = {d.name: 3 for d in model.dims.values() if d.default is not None and d.default > 8}
    arrays = {}
    for v in model.of_kind("data"):
        shape = tuple(sizes[s] if isinstance(s, str) else int(s) for s in v.shape)
        s = v.support
        if s == "binary":
            a = rng.integers(0, 2, shape).astype(float)
        elif s == "count":
            a = rng.integers(0, 5, shape).astype(float)
        elif s == "index":
            k = v.support_dim
            a = rng.integers(0, sizes[k] if isinstance(k, str) else int(k or 1), shape).astype(float)
        elif s in ("positive",):
            a = rng.gamma(2.0, 1.0, shape)
        elif s == "unit_interval":
            a = rng.uniform(0.1, 0.9, shape)
        elif s == "simplex":
            a = rng.dirichlet(np.ones(shape[-1] if shape else 1), shape[:-1]) if shape else np.ones(())
        elif s == "pd_matrix":
            a = np.broadcast_to(np.eye(shape[-1]) if shape else np.ones(()), shape).copy()
        else:
            a = rng.normal(0.0, 1.0, shape)
        arrays[v.name] = a
    return arrays, flags
