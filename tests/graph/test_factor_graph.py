"""The factor graph of example models, asserted in detail: blankets, local/global, plates."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import MODELS, run_cli
from ppvi.graph import build
from ppvi.language import load, loads


def graph(stem: str):
    return build(load(str(MODELS / f"{stem}.ppvi")))


def test_gmm_1d():
    g = graph("gmm_1d")
    assert g.data_plate == "N"
    scope = {n.name: n.scope for n in g.latents()}
    assert scope == {"pi": "global", "mu": "global", "tau": "global", "z": "local"}
    assert set(g.blankets["z"]) == {"pi", "eruptions", "mu", "tau"}
    assert set(g.blankets["mu"]) == {"eruptions", "z", "tau"}
    assert set(g.blankets["pi"]) == {"z"}
    assert g.nodes["z"].prior == "Categorical" and g.nodes["eruptions"].kind == "data"


def test_binary_sparse_coding_blankets_include_params_and_co_parents():
    g = graph("binary_sparse_coding")
    h = g.nodes["h"]
    assert h.scope == "local" and h.shape == ("N", "M") and h.support == "binary"
    # h[n, i]'s blanket: its prior's param b, and through v the other units (h itself), W and beta.
    assert set(g.blankets["h"]) == {"b", "v", "W", "beta"}
    assert {g.nodes[p].kind for p in ("b", "W", "beta")} == {"param"}


def test_sparse_coding_is_map():
    g = graph("sparse_coding")
    assert g.nodes["h"].approximation == "point" and g.nodes["h"].scope == "local"


def test_lda_long_format():
    g = graph("lda")
    assert g.data_plate is not None
    scope = {n.name: n.scope for n in g.latents()}
    assert scope["z"] == "local" and scope["theta"] == "global" and scope["phi"] == "global"
    assert set(g.blankets["z"]) >= {"theta", "doc", "word", "phi"}


def test_no_data_plate_means_all_global():
    g = build(loads("dim H = 2\nconst w[H] = [1.0, -0.5]\ndata v\nfor i in H:\n    h[i] ~ Normal(0, 1)\n"
                    "v ~ Normal(sum(i in H: w[i] * h[i]), 1)\n"))
    assert g.data_plate is None
    assert g.nodes["h"].scope == "global"
    assert g.blankets["h"] == ("v",)


@pytest.mark.parametrize("path", sorted(MODELS.glob("*.ppvi")), ids=lambda p: p.stem)
def test_every_example_model_checks(path, capsys):
    code, out, err = run_cli(["check", path], capsys)
    assert code == 0, err
    assert "markov blankets" in out
    code, out, _ = run_cli(["check", path, "--format", "json"], capsys)
    data = json.loads(out)
    assert set(data) >= {"model", "variables", "factors", "plates", "markov_blankets"}
    # Every example ships its data beside it, with the same stem.
    assert any(path.with_suffix(s).exists() for s in (".npz", ".csv", ".json"))
    # Every example has a comment header.
    assert path.read_text().lstrip().startswith("#")
