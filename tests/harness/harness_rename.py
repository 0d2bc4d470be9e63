"""Metamorphic rewrites of a model's text: rename every name the user chose, reorder independent statements.

A rename maps every variable, dim (plate) and loop index to a new spelling, consistently; the fit must not
change by a bit (DESIGN §2: nothing a model names reaches the generated code but mangled).  The scanner
knows the few places an identifier is not the user's: keywords, the model's header name, function,
distribution and support names (followed by ``(``, or after ``:`` in a declaration), keyword arguments
(``sd =`` inside parentheses) and the method after ``by`` in an ``approximate`` (after ``by`` in a ``for`` stands
the data a ragged chain rides on, ``for t in T[1:] by seq:``: the user's name).
"""

from __future__ import annotations

import re
from typing import Callable

KEYWORDS = frozenset({"model", "dim", "const", "data", "param", "for", "in", "approximate", "by", "jointly", "sum",
                      "latent", "factor"})
# Names that are words of the language where they stand (functions, distributions, supports) — never given to
# a user's variable, so a rewrite never changes what a call means.
RESERVED = KEYWORDS | frozenset({
    "Normal", "MvNormal", "Gamma", "Beta", "Bernoulli", "Categorical", "Dirichlet", "Poisson", "Exponential",
    "Laplace", "Wishart", "dot", "sigmoid", "exp", "log", "softplus", "eye", "real", "positive", "binary",
    "count", "index", "simplex", "unit_columns", "point"})

# Hostile spellings: Python's and NumPy's names, Numba's, the generated module's own (PLAN, kernels,
# mangled arrays and indices, runtime helpers, temporaries), Python keywords and builtins.
HOSTILE = ("np", "math", "prange", "njit", "lambda", "PLAN", "update_x", "i0_k", "finish_normal", "digamma",
           "xlogy", "add_to", "exp_factor", "local_step_x", "statistics", "expected_log_joint", "range", "min",
           "max", "abs", "len", "float", "int", "print", "None", "True", "self", "class", "import", "def",
           "return", "_B", "_W", "_Phi", "_ch", "_C", "n_N", "v_x", "m_x__x", "q_x__mean", "t_0", "e_x__x",
           "o_m_x__x", "c__damping", "h_x", "l_x", "x__x", "__", "_", "sp", "numba", "vexp")

_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\d+\.\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?|\d+(?:[eE][+-]?\d+)?"
                    r"|#[^\n]*|\\[ \t]*\r?\n|\r?\n|[ \t]+|.")


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def _is_name(tok: str) -> bool:
    return bool(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", tok))


def _significant(tok: str) -> bool:
    return not (tok.isspace() or tok.startswith("#") or tok.startswith("\\"))


def user_name_positions(text: str) -> tuple[list[str], list[int]]:
    """The text's tokens, and the positions of those that are names the user chose."""
    toks = _tokens(text)
    sig = [i for i, t in enumerate(toks) if _significant(t)]
    nxt = {a: b for a, b in zip(sig, sig[1:])}
    prev = {b: a for a, b in zip(sig, sig[1:])}
    out = []
    depth = 0
    head = None          # the first word of the current statement
    after_colon = False  # in a data/param declaration, past its `:`
    start = True
    for i, t in enumerate(toks):
        if t in ("\n", "\r\n") and depth == 0:
            start, head, after_colon = True, None, False
            continue
        if not _significant(t):
            continue
        if start:
            head, start = t, False
        if t == "(":
            depth += 1
        elif t == ")":
            depth -= 1
        elif t == ":" and depth == 0 and head in ("data", "param", "latent"):
            after_colon = True
        if not _is_name(t) or t in KEYWORDS:
            continue
        before, after = toks[prev[i]] if i in prev else None, toks[nxt[i]] if i in nxt else None
        if before == "model" or after == "(" or (depth > 0 and after == "=") or (before == "by" and head != "for"):
            continue
        if after_colon and depth == 0:
            continue      # a support (`: binary`); `index(K)`'s K is inside the parentheses
        out.append(i)
    return toks, out


def names(text: str) -> list[str]:
    """Every name the user chose, sorted."""
    toks, pos = user_name_positions(text)
    return sorted({toks[i] for i in pos})


def rename(text: str, mapping: dict[str, str]) -> str:
    toks, pos = user_name_positions(text)
    for i in pos:
        toks[i] = mapping.get(toks[i], toks[i])
    return "".join(toks)


def _checked(mapping: dict[str, str]) -> dict[str, str]:
    new = list(mapping.values())
    assert len(set(new)) == len(new), mapping
    assert not set(new) & RESERVED, mapping
    return mapping


# ------------------------------------------------------------------ strategies
def before(ns: list[str]) -> dict[str, str]:
    """Every name to one sorting before every original (the same order among themselves)."""
    return _checked({n: "A" + n for n in ns})


def after(ns: list[str]) -> dict[str, str]:
    """Every name to one sorting after every original."""
    return _checked({n: "zz" + n for n in ns})


def reversed_order(ns: list[str]) -> dict[str, str]:
    """The names' sort order reversed (what decides by alphabetical order flips)."""
    return _checked({n: f"r{len(ns) - i:03d}_{n}" for i, n in enumerate(ns)})


def hostile(ns: list[str]) -> dict[str, str]:
    """Every name to a hostile one (Python, NumPy, Numba, the generated module's own names)."""
    pool = list(HOSTILE) + [f"{h}{j}" for j in range(2, 9) for h in HOSTILE]
    return _checked(dict(zip(ns, pool)))


def hostile_reversed(ns: list[str]) -> dict[str, str]:
    """Hostile names assigned from the end of the list, so each name meets another."""
    pool = list(reversed(HOSTILE)) + [f"{h}{j}" for j in range(2, 9) for h in HOSTILE]
    return _checked(dict(zip(ns, pool)))


def kernel_suffixes(ns: list[str]) -> dict[str, str]:
    """Names that end like a kernel's suffix: x, x_damped, x_damped_damped, … (update_x_damped is both the
    damped update of x and the update of x_damped)."""
    return _checked({n: "x" + "_damped" * i for i, n in enumerate(ns)})


STRATEGIES: dict[str, Callable[[list[str]], dict[str, str]]] = {
    "before": before, "after": after, "reversed": reversed_order, "hostile": hostile,
    "hostile_reversed": hostile_reversed, "kernel_suffixes": kernel_suffixes,
}


# ------------------------------------------------------------------ reordering
def _blocks(lines: list[str]) -> list[list[str]]:
    """Top-level statements with their indented bodies and continuation lines (comments and blank lines
    go with the statement after them; those at the end with the last)."""
    out, cur, pending = [], [], []
    depth = 0
    for line in lines:
        stripped = line.split("#", 1)[0].strip()
        cont = bool(cur) and (depth > 0 or cur[-1].rstrip().endswith("\\"))
        if not stripped:
            (cur if cont else pending).append(line)
            continue
        if line[:1] in (" ", "\t") or cont:
            cur.append(line)
        else:
            if cur:
                out.append(cur)
            cur, pending = pending + [line], []
            depth = 0
        depth += stripped.count("(") - stripped.count(")")
    if cur:
        out.append(cur + pending)
    return out


def reorder(text: str, rng, what: str) -> str:
    """Top-level statements of one kind shuffled (never left as they were when they can move):
    ``declarations`` — dims among dims, data and params among data and params (consts keep their order, as
    one may read another); ``draws`` — draws and loops of draws among themselves, each kept whole."""
    # (lines split at "\n" alone, as the grammar ends them: str.splitlines would also split at a form feed or a
    # U+2028 inside a comment, and move its tail as a statement)
    blocks = _blocks(text.removesuffix("\n").split("\n"))

    def kind(b) -> str:
        words = next((x.split("#", 1)[0].split() for x in b if x.split("#", 1)[0].strip()), ["#"])
        return {"dim": "dim", "const": "const", "data": "var", "param": "var", "latent": "var", "approximate": "approx",
                "model": "head", "#": "head"}.get(words[0], "draw")

    moving = {"declarations": ("dim", "var"), "draws": ("draw",)}[what]
    for k in moving:
        at = [i for i, b in enumerate(blocks) if kind(b) == k]
        if len(at) < 2:
            continue
        order = list(rng.permutation(len(at)))
        if order == sorted(order):
            order = order[1:] + order[:1]
        moved = [blocks[at[j]] for j in order]
        for i, b in zip(at, moved):
            blocks[i] = b
    return "\n".join(x for b in blocks for x in b) + "\n"
