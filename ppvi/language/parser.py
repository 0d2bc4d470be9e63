"""Text -> :class:`ppvi.language.ast.Module` (Lark, LALR, Python-style blocks).

Lexical and syntax errors become :class:`ppvi.errors.PPVIError` with the
position, the line, a caret and what was expected there.  Nothing in a model is
ever evaluated as Python: numbers go through ``float``/``int`` only.
"""

from __future__ import annotations

import math
import os
import re
from functools import lru_cache
from importlib import resources
from pathlib import Path

from lark import Lark, Token, Transformer, Tree, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError
from lark.lexer import PatternStr
from lark.indenter import DedentError

from ppvi.errors import Diagnostic, PPVIError, Reporter, Span, source_lines
from ppvi.language import ast

KEYWORDS = frozenset({"model", "dim", "const", "data", "param", "for", "in", "approximate", "by", "jointly", "sum", "factor",
                      "latent", "amortise"})
KEYWORD_TOKENS = frozenset(k.upper() for k in KEYWORDS)
MAX_DEPTH = 64        # nesting of expressions and blocks; deeper is surely a mistake
MAX_BYTES = 4 << 20   # a model is a short text, not a data file


class BlockError(Exception):
    def __init__(self, message: str, token: Token, hint: str | None = None):
        super().__init__(message)
        self.token, self.hint = token, hint


class BlockIndenter:
    """Lark post-lexer: ``_NL`` + leading whitespace -> ``_INDENT`` / ``_DEDENT``.

    Unlike lark's stock Indenter it reports bad dedents and mixed tabs/spaces
    with a position instead of an assertion.
    """

    always_accept = ("_NL",)
    OPEN = frozenset({"LPAR", "LSQB"})
    CLOSE = frozenset({"RPAR", "RSQB"})

    def process(self, stream):
        levels = [0]
        paren = 0
        indent_char: str | None = None
        for tok in stream:
            if tok.type != "_NL":
                yield tok
                if tok.type in self.OPEN:
                    paren += 1
                elif tok.type in self.CLOSE:
                    paren = max(paren - 1, 0)
                continue
            if paren > 0:
                continue  # implicit line joining inside brackets
            yield tok
            last = tok.value.rsplit("\n", 1)[-1]
            if "\n" not in tok.value or "#" in last:
                continue  # a trailing comment at end of file
            if " " in last and "\t" in last:
                raise BlockError("indentation mixes tabs and spaces", tok, "indent with spaces only (4 per level)")
            if last:
                if indent_char is None:
                    indent_char = last[0]
                elif last[0] != indent_char:
                    raise BlockError("inconsistent use of tabs and spaces in indentation", tok,
                                     "indent with spaces only (4 per level)")
            width = len(last)
            if width > levels[-1]:
                levels.append(width)
                yield Token.new_borrow_pos("_INDENT", last, tok)
                continue
            while width < levels[-1]:
                levels.pop()
                yield Token.new_borrow_pos("_DEDENT", last, tok)
            if width != levels[-1]:
                raise BlockError("unindent does not match any outer indentation level", tok,
                                 "line the statement up with the block it belongs to")
        while len(levels) > 1:
            levels.pop()
            yield Token("_DEDENT", "")


@lru_cache(maxsize=1)
def _parser() -> Lark:
    try:
        grammar = resources.files("ppvi.grammar").joinpath("ppvi.lark").read_text(encoding="utf-8")
    except ModuleNotFoundError:  # running from a source tree that was never installed
        grammar = (Path(__file__).resolve().parents[2] / "grammar" / "ppvi.lark").read_text(encoding="utf-8")
    # The LALR tables are kept (≈0.1 s to build) in our private cache folder, never in the shared temporary
    # folder where Lark's cache=True puts them under a predictable name: Lark unpickles the file, so
    # whoever planted it there would run code as us (docs/SECURITY.md).  No private folder: no cache.
    import hashlib
    import lark

    from ppvi.cachefiles import cache_dir

    try:
        key = hashlib.sha256(f"{lark.__version__}\0{grammar}".encode()).hexdigest()[:24]
        cache: str | bool = os.path.join(cache_dir(), f"parser_{key}.lark")
    except PPVIError:
        cache = False
    return Lark(grammar, parser="lalr", postlex=BlockIndenter(), propagate_positions=True,
                maybe_placeholders=False, cache=cache)


def _span_of(x) -> Span:
    if isinstance(x, Token):
        return Span(x.line, x.column, x.end_line, x.end_column)
    m = x.meta
    return Span(m.line, m.column, m.end_line, m.end_column)


# ------------------------------------------------------------------ lexing aids
_FRIENDLY = {"_NL": "end of line", "_INDENT": "an indented block", "_DEDENT": "end of the block",
             "$END": "end of file", "NAME": "a name", "NUMBER": "a number", "INT": "a whole number", "SIGNED_INT": "a whole number",
             }


def _describe(term: str) -> str:
    if term in _FRIENDLY:
        return _FRIENDLY[term]
    for t in _parser().terminals:
        if t.name == term and isinstance(t.pattern, PatternStr):
            return f"`{t.pattern.value}`"
    return term.lower()


def _describe_token(tok: Token) -> str:
    if tok.type in ("_NL", "_INDENT", "_DEDENT", "$END"):
        return _FRIENDLY[tok.type]
    return f"`{tok.value}`"


_CLOSER = {"(": ")", "[": "]"}
_KEYWORD_TARGET = re.compile(r"^\s*(" + "|".join(sorted(KEYWORDS)) + r")\b\s*(\[[^\]]*\])?\s*[~=]")


def _unclosed_bracket(text: str, tok: Token) -> tuple[tuple[int, int], str] | None:
    """The innermost bracket still open before an unexpected end of line, if any."""
    if tok.type not in ("_NL", "$END", "_DEDENT") and tok.type not in KEYWORD_TOKENS:
        return None
    end = tok.start_pos if tok.start_pos is not None and tok.start_pos >= 0 else len(text)
    stack: list[tuple[tuple[int, int], str]] = []
    line, col = 1, 0
    in_comment = False
    for ch in text[:end]:
        col += 1
        if ch == "\n":
            line, col, in_comment = line + 1, 0, False
        elif in_comment:
            continue
        elif ch == "#":
            in_comment = True
        elif ch in "([":
            stack.append(((line, col), ch))
        elif ch in ")]" and stack:
            stack.pop()
    return stack[-1] if stack else None


def _syntax_error(rep: Reporter, err: UnexpectedInput) -> PPVIError:
    line, col = getattr(err, "line", None), getattr(err, "column", None)
    if isinstance(err, UnexpectedCharacters):
        ch = rep.text[err.pos_in_stream] if err.pos_in_stream < len(rep.text) else ""
        hint = None
        if ch == '"' or ch == "'":
            hint = "ppvi has no strings; names are written bare"
        elif ch in "{}":
            hint = "blocks are made by indentation, not braces"
        return rep.fail(f"unexpected character {ch!r}", Span(line, col, line, col + 1), hint)
    if isinstance(err, UnexpectedToken):
        tok = err.token
        unclosed = _unclosed_bracket(rep.text, tok)
        if unclosed is not None:
            (ln, col), ch = unclosed
            return rep.fail(f"`{ch}` was never closed", Span(ln, col, ln, col + 1),
                            f"add the matching `{_CLOSER[ch]}`")
        line_text = rep.line(tok.line) if tok.line and tok.line > 0 else None
        if line_text is not None:
            kw = _KEYWORD_TARGET.match(line_text)
            if kw:
                col = kw.start(1) + 1
                return rep.fail(f"`{kw.group(1)}` is a keyword and cannot be used as a name",
                                Span(tok.line, col, tok.line, col + len(kw.group(1))), "choose another name")
        expected = sorted({_describe(t) for t in err.expected if not t.startswith("__")})
        if tok.type == "$END" or tok.line is None or tok.line < 0:
            last = max(1, len(source_lines(rep.text)))
            span = Span(last, len((rep.line(last) or "")) + 1)
        elif tok.type in ("_NL", "_DEDENT"):
            # Point at the end of the offending line, not the start of the next one.
            ln = tok.line
            span = Span(ln, len(rep.line(ln) or "") + 1)
        else:
            span = _span_of(tok)
        what = _describe_token(tok)
        if tok.type == "NAME" and tok.value in KEYWORDS:
            return rep.fail(f"`{tok.value}` is a keyword and cannot be used here", span,
                            "choose another name")
        hint = None
        if expected:
            hint = "expected " + (expected[0] if len(expected) == 1 else "one of " + ", ".join(expected))
        if tok.type == "_INDENT":
            return rep.fail("unexpected indentation", Span(tok.line + 1, 1), "only the body of a `for` loop is indented")
        return rep.fail(f"unexpected {what}", span, hint)
    if isinstance(err, UnexpectedEOF):
        last = max(1, len(source_lines(rep.text)))
        return rep.fail("unexpected end of file", Span(last, len(rep.line(last) or "") + 1),
                        "a statement or block is unfinished")
    return rep.fail("syntax error", Span(line or 1, col or 1))


# Chains of one precedence level: an operator, and the one that undoes it (a − b = a + (−b)).
_CHAINS = {"add": ("add", "sub"), "sub": ("add", "sub"), "mul": ("mul", "div"), "div": ("mul", "div")}


def _balance(tree: Tree) -> Tree:
    """Left-deep chains of + and − (and of * and /) as balanced trees, without recursion.

    LALR builds a + b + … + z as n levels of nesting; a regression on 60 covariates would be refused as
    too deep, and 10⁴ terms would overflow every recursive pass after the parser.  Balanced, the chain is
    log₂ n deep and means the same: L ∘ R where R's first operand is subtracted (divided) becomes
    L − R̄, R̄ being R with its operators swapped (a − (c − d) = a − c + d)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        for n, child in enumerate(node.children):
            if isinstance(child, Tree) and child.data in _CHAINS:
                node.children[n], operands = _balanced_chain(child)
                stack += [o for o in operands if isinstance(o, Tree)]     # (not the chain's own nodes again)
            elif isinstance(child, Tree):
                stack.append(child)
    return tree


def _balanced_chain(node: Tree) -> tuple[Tree, list]:
    """The chain at ``node`` balanced, and its operands."""
    plus, minus = _CHAINS[node.data]
    ops = []                     # (operator, operand), left to right; the first operator is `plus`
    while isinstance(node, Tree) and node.data in (plus, minus):
        ops.append((node.data, node.children[1]))
        node = node.children[0]
    ops.append((plus, node))
    ops.reverse()

    def build(lo: int, hi: int, flip: bool) -> object:
        """ops[lo:hi] as one tree, its first operator read as `plus` (``flip``: every operator swapped)."""
        if hi - lo == 1:
            return ops[lo][1]
        mid = (lo + hi) // 2
        swapped = (ops[mid][0] == minus) != flip
        left, right = build(lo, mid, flip), build(mid, hi, flip != swapped)
        return Tree(minus if swapped else plus, [left, right], _meta_over(left, right))

    return build(0, len(ops), False), [o for _, o in ops]


def _meta_over(first, last):
    """The position of an operation spanning two operands (Trees or Tokens)."""
    from lark.tree import Meta

    meta = Meta()
    a = first.meta if isinstance(first, Tree) else first
    b = last.meta if isinstance(last, Tree) else last
    meta.line, meta.column, meta.start_pos = a.line, a.column, a.start_pos
    meta.end_line, meta.end_column, meta.end_pos = b.end_line, b.end_column, b.end_pos
    meta.empty = False
    return meta


def _tree_depth_check(rep: Reporter, tree: Tree) -> None:
    """Reject absurd nesting before the recursive passes see it (no RecursionError)."""
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise rep.fail(f"nesting deeper than {MAX_DEPTH} levels", _span_of(node),
                           "split the expression with intermediate `const`s or flatten the loops")
        for child in node.children:
            if isinstance(child, Tree):
                stack.append((child, depth + 1))


def decode(path: str, raw: bytes) -> str:
    """Bytes -> text, or a positioned error for binary or non-UTF-8 input."""
    rep = Reporter(path, "")
    if len(raw) > MAX_BYTES:
        raise rep.fail(f"file is {len(raw)} bytes; a model is at most {MAX_BYTES}", None,
                       "is this a data file? pass data with --data")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        before = raw[: e.start].decode("utf-8", "replace")
        line = before.count("\n") + 1
        col = len(before.rsplit("\n", 1)[-1]) + 1
        raise PPVIError(Diagnostic("file is not UTF-8 text (binary data?)", path, Span(line, col), None,
                                   "a .ppvi model is plain text")) from None
    if "\x00" in text:
        i = text.index("\x00")
        line = text.count("\n", 0, i) + 1
        raise PPVIError(Diagnostic("file contains a NUL byte (binary data?)", path,
                                   Span(line, i - (text.rfind("\n", 0, i) + 1) + 1), None,
                                   "a .ppvi model is plain text")) from None
    return text.lstrip("\ufeff")


def parse(text: str, path: str = "<model>") -> ast.Module:
    """Parse model text; raise :class:`PPVIError` on any lexical or syntax error."""
    rep = Reporter(path, text)
    if not text.strip() or all(not l.strip() or l.lstrip().startswith("#") for l in source_lines(text)):
        raise rep.fail("empty model: no statements", Span(1, 1),
                       "a model declares its data and draws variables, e.g. `x ~ Normal(0, 1)`")
    src = text if text.endswith("\n") else text + "\n"
    try:
        tree = _parser().parse(src)
    except BlockError as e:
        raise rep.fail(str(e), Span(e.token.end_line or 1, 1), e.hint) from None
    except UnexpectedInput as e:
        raise _syntax_error(rep, e) from None
    except DedentError:  # pragma: no cover - our indenter never raises it
        raise rep.fail("bad indentation", Span(1, 1)) from None
    _tree_depth_check(rep, _balance(tree))
    try:
        return _ToAst(rep).transform_module(tree)
    except VisitError as e:
        if isinstance(e.orig_exc, PPVIError):
            raise e.orig_exc from None
        raise


def _binop(op: str):
    """The transformer rule for one arithmetic operator."""
    @v_args(meta=True)
    def rule(self, meta, children):
        return ast.BinOp(op, children[0], children[1], _span_of_meta(meta))
    return rule


@v_args(meta=False, inline=False)
class _ToAst(Transformer):
    """Lark tree -> AST dataclasses with spans."""

    def __init__(self, rep: Reporter):
        super().__init__(visit_tokens=False)
        self.rep = rep

    def transform_module(self, tree: Tree) -> ast.Module:
        kids = self.transform(tree).children
        name = name_span = None
        stmts = []
        for k in kids:
            if isinstance(k, tuple) and k and k[0] == "header":
                name, name_span = k[1].id, k[1].span
            elif k is not None:
                stmts.append(k)
        return ast.Module(name, name_span, tuple(stmts), self.rep.path, self.rep.text)

    # -- helpers
    def _name(self, tok: Token) -> ast.Name:
        if tok.value in KEYWORDS:
            raise self.rep.fail(f"`{tok.value}` is a keyword and cannot be used as a name", _span_of(tok),
                                "choose another name")
        return ast.Name(str(tok), _span_of(tok))

    def _int(self, tok: Token, what: str) -> int:
        if len(tok.value.lstrip("+-")) > 12:
            raise self.rep.fail(f"{what} {tok.value[:15]}… is absurdly large", _span_of(tok),
                                "sizes and indices must be below 2^31")
        return int(tok.value)

    # -- statements
    def __default__(self, data, children, meta):  # pragma: no cover - every rule has a method
        raise AssertionError(f"unhandled grammar rule {data}")

    def start(self, children):
        return Tree("start", children)

    def header(self, children):
        return ("header", self._name(children[0]))

    @v_args(meta=True)
    def dim_decl(self, meta, children):
        return ast.DimDecl(tuple(children), _span_of_meta(meta))

    def dim_item(self, children):
        name = self._name(children[0])
        if len(children) == 1:
            return ast.DimItem(name, None, None)
        return ast.DimItem(name, self._int(children[1], "dim size"), _span_of(children[1]))

    @v_args(meta=True)
    def const_decl(self, meta, children):
        name = self._name(children[0])
        shape = children[1] if len(children) == 3 else ()
        return ast.ConstDecl(name, shape, children[-1], _span_of_meta(meta))

    @v_args(meta=True)
    def var_decl(self, meta, children):
        kind, name, rest = str(children[0]), self._name(children[1]), children[2:]
        shape: tuple = ()
        support, missing = None, None
        for r in rest:
            if isinstance(r, tuple) and len(r) == 2 and isinstance(r[0], (ast.Support, type(None))):
                support, missing = r
            else:
                shape = r
        return ast.VarDecl(kind, name, shape, support, _span_of_meta(meta), missing)

    def shape(self, children):
        out = []
        for tok in children:
            if tok.type == "INT":
                out.append(ast.Extent(None, self._int(tok, "size"), _span_of(tok)))
            else:
                out.append(ast.Extent(self._name(tok).id, None, _span_of(tok)))
        return tuple(out)

    @v_args(meta=True)
    def support(self, meta, children):
        """``real``, ``index(K)``, either followed by ``missing``; ``missing`` alone is the default support.
        Returns (the support or None, the span of ``missing`` or None)."""
        flag = children.pop() if isinstance(children[-1], ast.Name) else None
        first = self._name(children[0])
        if flag is None and len(children) == 1 and first.id == "missing":
            return None, first.span
        arg = self._name(children[1]) if len(children) > 1 else None
        span = _span_of_meta(meta)
        if flag is not None:                  # (the support's span stops before `missing`)
            end = (arg or first).span
            span = Span(first.span.line, first.span.col, end.end_line, end.end_col + (1 if arg else 0))
        support = ast.Support(first, arg, span)
        return support, None if flag is None else flag.span

    def support_flag(self, children):
        word = self._name(children[0])
        if word.id != "missing":
            raise self.rep.fail(f"`{word.id}` after a support", word.span,
                                "only `missing` may follow a support, e.g. `data y[N] : count missing`")
        return word

    @v_args(meta=True)
    def draw(self, meta, children):
        (name, indices), dist = children
        return ast.Draw(name, indices, dist, _span_of_meta(meta))

    def target(self, children):
        return self._name(children[0]), tuple(children[1:])

    @v_args(meta=True)
    def distribution(self, meta, children):
        return ast.Distribution(self._name(children[0]), tuple(children[1:]), _span_of_meta(meta))

    @v_args(meta=True)
    def positional(self, meta, children):
        return ast.Argument(None, children[0], _span_of_meta(meta))

    @v_args(meta=True)
    def keyword(self, meta, children):
        return ast.Argument(self._name(children[0]), children[1], _span_of_meta(meta))

    @v_args(meta=True)
    def loop(self, meta, children):
        var, dim, *body = children
        start, start_span, stop, by = 0, None, None, None
        if body and isinstance(body[0], tuple) and body[0][0] == "slice":
            _, start, start_span = body.pop(0)
        elif body and isinstance(body[0], tuple) and body[0][0] == "head":
            _, stop, start_span = body.pop(0)
        if body and isinstance(body[0], tuple) and body[0][0] == "by":
            by = body.pop(0)[1]
        return ast.Loop(self._name(var), self._name(dim), tuple(body), _span_of_meta(meta), start, start_span,
                        stop, by)

    @v_args(meta=True)
    def plate_slice(self, meta, children):
        return "slice", self._int(children[0], "a plate slice's start"), _span_of_meta(meta)

    @v_args(meta=True)
    def plate_head(self, meta, children):
        return "head", self._int(children[0], "a plate slice's end"), _span_of_meta(meta)

    def plate_by(self, children):
        return "by", self._name(children[0])

    @v_args(meta=True)
    def energy(self, meta, children):
        return ast.Energy(children[0], _span_of_meta(meta))

    @v_args(meta=True)
    def approximate(self, meta, children):
        *names, method = children
        return ast.Approximate(tuple(self._name(n) for n in names), self._name(method), _span_of_meta(meta))

    @v_args(meta=True)
    def approximate_jointly(self, meta, children):
        span = _span_of_meta(meta)
        return ast.Approximate(tuple(self._name(n) for n in children), ast.Name("jointly", span), span)

    @v_args(meta=True)
    def amortise(self, meta, children):
        name, method, *options = children
        return ast.Amortise(self._name(name), self._name(method), tuple(o for o in options if o is not None),
                            _span_of_meta(meta))

    # -- expressions
    @v_args(meta=True)
    def number(self, meta, children):
        tok = children[0]
        text = tok.value
        is_int = text.isdigit()
        value = float(text)
        if not math.isfinite(value) or (is_int and len(text) > 15):
            raise self.rep.fail(f"number {text[:20]} is too large", _span_of(tok),
                                "numbers must be finite double-precision values")
        return ast.Num(value, is_int, _span_of(tok))

    def name(self, children):
        return self._name(children[0])

    @v_args(meta=True)
    def index(self, meta, children):
        return ast.Index(self._name(children[0]), tuple(children[1:]), _span_of_meta(meta))

    @v_args(meta=True)
    def call(self, meta, children):
        return ast.Call(self._name(children[0]), tuple(children[1:]), _span_of_meta(meta))

    @v_args(meta=True)
    def plate_sum(self, meta, children):
        var, dim, body = children
        return ast.PlateSum(self._name(var), self._name(dim), body, _span_of_meta(meta))

    @v_args(meta=True)
    def vector(self, meta, children):
        return ast.Vector(tuple(children), _span_of_meta(meta))

    add, sub, mul, div, pow = (_binop(o) for o in "+-*/^")

    @v_args(meta=True)
    def neg(self, meta, children):
        return ast.Neg(children[0], _span_of_meta(meta))


def _span_of_meta(meta) -> Span:
    return Span(meta.line, meta.column, meta.end_line, meta.end_column)


def parse_file(path: str) -> ast.Module:
    """Read and parse a model file; unreadable files are user errors too."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_BYTES + 1)
    except OSError as e:
        raise PPVIError(Diagnostic(f"cannot read model: {e.strerror or e}", path,
                                   hint="check the path")) from None
    return parse(decode(path, raw), path)
