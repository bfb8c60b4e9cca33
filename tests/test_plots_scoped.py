"""Every figure of wninit leaves matplotlib as the caller set it: the backend (a notebook's inline one, say), the
rcParams, and pyplot unimported."""
import sys
from collections import Counter
from types import SimpleNamespace

import pytest
import torch

from wninit import models
from wninit.diagnostics import Figure1Row, plot_figure1, plot_propagation, propagation
from wninit.diagnostics.plot import plot_signal_propagation
from wninit.diagnostics.synthetic import INITS, PANELS
from wninit.suite.report import plots
from wninit.suite.report.peers import plot_peers
from wninit.suite.report.reference import FIG3_LR_WARMUP
from wninit.suite.report.tables import ConfigResult, DepthCell, Stat, Survival

matplotlib = pytest.importorskip("matplotlib")
SERIES = [("proposed", "orthogonal"), ("datadep", "gaussian")]


def _draw_every_figure(out):
    table = propagation(models.MLP(8, 16, 2, 4), torch.randn(16, 8, generator=torch.Generator().manual_seed(0)))
    depth = {(s, d): DepthCell(Stat([0.9, 0.8]), Stat([0.95, 0.9]), {}, Counter(), 1) for s in SERIES for d in (2, 10)}
    curves = {s: [ConfigResult({"lr": lr}, Stat([0.9 - lr, 0.8])) for lr in (0.01, 0.1)] for s in SERIES}
    surv = {(lr, w, s): Survival(2, 4, Counter(), 3) for s in SERIES for lr in (0.1, 0.5) for w in (False, True)}
    peer = {("wrn", m, d): SimpleNamespace(test=Stat([0.8, 0.7]), trains_pct=50.0) for m in ("a", "b") for d in (10, 40)}
    return [plot_figure1([Figure1Row(p, i, 200, b, 1.0, 0.1) for p in PANELS for i in INITS for b in (1, 2)],
                         out / "figure1.png"),
            plot_propagation(table, out / "propagation.png", title="t"),
            plot_signal_propagation({"a": table}, out / "signal.png"),
            plots.plot_depth(depth, out / "depth.png", title="d", scale="q"),
            plots.plot_hparams(curves, out / "hparams.png", title="h", scale="q"),
            # with the paper's panels: a second row of axes
            plots.plot_survival(surv, out / "survival.png", title="s", scale="q", reference=FIG3_LR_WARMUP),
            plot_peers(peer, out / "peers.png", title="p", scale="q")]


def test_no_figure_switches_the_backend_changes_rcparams_or_imports_pyplot(tmp_path, monkeypatch):
    before = matplotlib.get_backend()
    # None in sys.modules makes `import matplotlib.pyplot` raise, wherever a figure would reach for it
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    try:
        matplotlib.use("svg")  # a backend that is not Agg: a switch to Agg would show
        with matplotlib.rc_context({"font.size": 7.0, "axes.grid": False}):
            pngs = _draw_every_figure(tmp_path)
            assert (matplotlib.rcParams["font.size"], matplotlib.rcParams["axes.grid"]) == (7.0, False)
        assert matplotlib.get_backend() == "svg"
    finally:
        monkeypatch.undo()
        matplotlib.use(before)
    assert len(pngs) == 7 and all(p.read_bytes()[:4] == b"\x89PNG" for p in pngs)
