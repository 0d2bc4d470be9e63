"""Pictures of a result (``Result.plot``, ``ppvi plot``)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import ppvi
from conftest import MODELS, run_cli
from result_fits import components, gmm, quiet_fit  # (gmm: a shared fixture)

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
PNG = b"\x89PNG\r\n\x1a\n"


def test_mixture_figure(gmm):
    from matplotlib.patches import Ellipse

    fig = gmm.plot()
    trace, scatter, *marginals = [ax for ax in fig.axes if ax.get_visible()]
    np.testing.assert_array_equal(trace.lines[0].get_ydata(), gmm.elbo_trace)
    points = scatter.collections[0].get_offsets()
    np.testing.assert_array_equal(points, gmm.data["x"])
    ellipses = [p for p in scatter.patches if isinstance(p, Ellipse)]
    assert len(ellipses) == 2                                      # the two components that are not empty
    centres = sorted(tuple(e.center) for e in ellipses)
    used = components(gmm)[0]
    np.testing.assert_allclose(centres, sorted(map(tuple, np.asarray(gmm.q["mu"]["mean"])[used])))
    k = used[0]
    cov = np.linalg.inv(np.asarray(gmm.q["Lambda"]["df"])[k] * np.asarray(gmm.q["Lambda"]["scale"])[k])
    e1 = next(e for e in ellipses if np.allclose(e.center, np.asarray(gmm.q["mu"]["mean"])[k]))
    assert sorted([e1.width, e1.height]) == pytest.approx(sorted(4 * np.sqrt(np.linalg.eigvalsh(cov))))
    assert [ax.get_title().split(":")[0] for ax in marginals] == ["q(pi)", "q(mu)", "q(Lambda)"]
    assert len(marginals[0].lines) == 2                            # pi of the non-empty components


def test_plot_command_writes_a_picture(gmm, tmp_path, capsys):
    gmm.save(str(tmp_path / "r.json"))
    code, _, err = run_cli(["plot", tmp_path / "r.json", "--out", tmp_path / "fig.png"], capsys)
    assert code == 0 and err == "" and (tmp_path / "fig.png").read_bytes().startswith(PNG)
    code, _, err = run_cli(["plot", tmp_path / "r.json", "--out", tmp_path / "mu.svg", "--var", "mu"], capsys)
    assert code == 0 and b"<svg" in (tmp_path / "mu.svg").read_bytes()[:1000]


def test_plot_mistakes_exit_2(gmm, tmp_path, capsys, monkeypatch):
    gmm.save(str(tmp_path / "r.json"))
    code, _, err = run_cli(["plot", tmp_path / "r.json", "--out", tmp_path / "fig.jpg"], capsys)
    assert code == 2 and "unknown picture format `.jpg`" in err
    code, _, err = run_cli(["plot", tmp_path / "r.json", "--out", tmp_path / "fig.png", "--var", "muu"], capsys)
    assert code == 2 and "did you mean `mu`?" in err
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    code, _, err = run_cli(["plot", tmp_path / "r.json", "--out", tmp_path / "fig.png"], capsys)
    assert code == 2 and "matplotlib is not installed" in err and 'pip install "ppvi[plot]"' in err


def test_without_the_data_the_points_are_left_out(tmp_path, capsys):
    x = np.array([[0.0, 0.1], [0.2, 0.0], [3.0, 3.1], [3.2, 2.9], [0.1, -0.1], [2.9, 3.0]])
    r = quiet_fit(MODELS / "gmm.ppvi", {"x": x}, max_iter=20)       # (K = 6 as fitted: no new kernels)
    r.save(str(tmp_path / "r.json"))
    code, _, err = run_cli(["plot", tmp_path / "r.json", "--out", tmp_path / "a.png"], capsys)
    assert code == 0 and "plot: note: the data are not drawn: the result names no data file" in err
    assert "hint: pass the data" in err
    np.save(tmp_path / "x.npy", x)
    np.savez(tmp_path / "x.npz", x=x)
    code, _, err = run_cli(["plot", tmp_path / "r.json", "--out", tmp_path / "b.png", "--data", tmp_path / "x.npz"],
                           capsys)
    assert code == 0 and err == ""
    fig = ppvi.load_result(str(tmp_path / "r.json")).plot(data={"x": x})
    assert len(fig.axes[1].collections[0].get_offsets()) == 6
