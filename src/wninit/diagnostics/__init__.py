"""Diagnostics at initialization: signal propagation through any model (docs/method.md §3.1-§3.4), the paper's
Figure 1 on synthetic data (docs/method.md §7.1) and the spectral norm of the loss's Hessian (docs/method.md §7.6, Table 2).

Plots are in `wninit.diagnostics.plot`, which imports matplotlib inside its functions.
`wninit.diagnostics.propagation` is the function; its module is `wninit.diagnostics.norm_propagation`.
"""
from wninit.diagnostics import hessian, norm_propagation, plot, synthetic
from wninit.diagnostics.hessian import hessian_spectral_norm
from wninit.diagnostics.norm_propagation import PropagationRow, PropagationTable, propagation
from wninit.diagnostics.plot import plot_figure1, plot_propagation, plot_signal_propagation
from wninit.diagnostics.synthetic import Figure1Row, figure1

__all__ = ["propagation", "PropagationTable", "PropagationRow", "hessian_spectral_norm", "figure1", "Figure1Row",
           "plot_figure1", "plot_propagation", "plot_signal_propagation", "hessian", "norm_propagation", "plot", "synthetic"]
