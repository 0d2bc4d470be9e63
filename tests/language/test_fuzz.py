"""Property: whatever text comes in, only ppvi's own error type comes out (never a traceback)."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ppvi.errors import PPVIError
from ppvi.language import loads
from ppvi.language.parser import decode

MODELS = sorted((Path(__file__).resolve().parents[2] / "models").glob("*.ppvi"))
CORPUS = [p.read_text() for p in MODELS]
TOKENS = ["dim", "const", "data", "param", "for", "in", "model", "approximate", "by", "point", "sum", "~", "=",
          "(", ")", "[", "]", ",", ":", "+", "-", "*", "/", "^", "\n", "    ", "\t", "N", "K", "x", "mu", "n",
          "k", "Normal", "Gamma", "Dirichlet", "Categorical", "MvNormal", "Wishart", "eye", "dot", "sigmoid",
          "0", "1", "2.5", "-3", "1e999", "#", "lambda", "sd", "precision", "index(K)", ": positive"]


def _accepts_or_reports(text: str) -> None:
    try:
        loads(text, "fuzz.ppvi")
    except PPVIError as e:
        msg = e.format()
        assert msg.startswith("fuzz.ppvi") and ": error: " in msg


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=200))
def test_random_text(text):
    _accepts_or_reports(text)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), max_size=40).map(" ".join))
def test_random_token_soup(text):
    _accepts_or_reports(text)


@st.composite
def mutated_model(draw):
    text = draw(st.sampled_from(CORPUS))
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(text)))
        op = draw(st.sampled_from(["delete", "insert", "swap", "dup_line"]))
        if op == "delete":
            j = draw(st.integers(i, min(len(text), i + 10)))
            text = text[:i] + text[j:]
        elif op == "insert":
            text = text[:i] + draw(st.sampled_from(TOKENS)) + text[i:]
        elif op == "swap" and i + 1 < len(text):
            text = text[:i] + text[i + 1] + text[i] + text[i + 2:]
        elif op == "dup_line":
            lines = text.splitlines(keepends=True)
            k = draw(st.integers(0, max(len(lines) - 1, 0)))
            text = "".join(lines[:k + 1] + lines[k:])
    return text


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_model())
def test_mutated_models(text):
    _accepts_or_reports(text)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes(raw):
    try:
        _accepts_or_reports(decode("fuzz.ppvi", raw))
    except PPVIError as e:
        assert e.format().startswith("fuzz.ppvi")
