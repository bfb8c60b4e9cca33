"""The paper's numbers as data (docs/method.md §7), each with its source tag, so reports print them beside ours.

Values read off the poster's plots carry `PLOT_NOTE` (±0.02 on accuracies, 5% steps on Fig. 3-right);
Table 1 and Table 2 are printed numbers. The keys of every table are this project's own names: a scheme is
`(scheme, direction)` as in [`wninit.suite.train.RunConfig`][wninit.suite.train.config.RunConfig] ("proposed"/"datadep"/"hanin"/
"pytorch-default", direction "orthogonal"/"gaussian"; the paper's "(He)" is the gaussian direction).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from wninit.init.schemes import REGISTRY

__all__ = ["Reference", "PLOT_NOTE", "REFERENCES", "FIG1", "FIG2_MLP_DEPTH", "FIG2_MLP_HPARAMS", "FIG2_CNN_DEPTH",
           "FIG3_DEPTH_10K", "FIG3_LR_WARMUP", "TABLE1", "TABLE2", "scheme_label", "SCHEME_ORDER"]

PLOT_NOTE = "values read off the poster's plot, ±0.02"

# Legend order of every figure and table: the proposed scheme first, then the paper's baselines (docs/method.md §4).
SCHEME_ORDER = (("proposed", "orthogonal"), ("proposed", "gaussian"), ("datadep", "orthogonal"),
                ("datadep", "gaussian"), ("hanin", "orthogonal"), ("hanin", "gaussian"),
                ("pytorch-default", "orthogonal"), ("pytorch-default", "gaussian"),
                ("proposed-backward", "orthogonal"), ("proposed-backward", "gaussian"))
def scheme_label(scheme: str, direction: str = "orthogonal") -> str:
    """The paper's legend name: `("datadep", "gaussian")` -> "Data-dependent (He)" (docs/method.md §7.2)."""
    known = REGISTRY.get(scheme)
    name = known.label if known else scheme
    if known and known.norm == "plain":  # plain schemes already name their direction
        return name
    return f"{name} ({'He' if direction == 'gaussian' else 'orthogonal'})"


@dataclass(frozen=True)
class Reference:
    """One of the paper's figures or tables: `data` is keyed as its docstring in this module says. `key` is the
    experiment that reproduces it (its title is the registry's, wninit.suite.experiments), or "figure1"."""
    key: str
    source: str
    note: str
    data: dict = field(default_factory=dict)


P_ORTH, P_HE, D_ORTH, D_HE = ("proposed", "orthogonal"), ("proposed", "gaussian"), ("datadep", "orthogonal"), ("datadep", "gaussian")
H_ORTH, T_ORTH = ("hanin", "orthogonal"), ("pytorch-default", "orthogonal")

# docs/method.md §7.1 [NB/SIM]: expected Figure 1 curves, mean ± std over 1000 samples, seed 0.
# data[(net, init, width)] = {(panel, index): (mean, std)}; panel "forward"/"backward", index the layer
# (feed-forward) or block (ResNet) number as in the spec's table header.
_FIG1_COLUMNS = (("forward", 1), ("forward", 5), ("forward", 10), ("forward", 20),
                 ("backward", 2), ("backward", 10), ("backward", 19))
_FIG1_RESNET_COLUMNS = (("forward", 1), ("forward", 7), ("forward", 20), ("forward", 40),
                        ("backward", 2), ("backward", 20), ("backward", 39))
_FIG1_ROWS = {
    ("ff", "he", 200): ((0.439, 0.036), (0.110, 0.016), (0.018, 0.003), (0.000, None), (0.002, 0.001), (0.030, 0.007), (0.708, 0.054)),
    ("ff", "he", 1000): ((1.013, 0.034), (0.261, 0.017), (0.047, 0.004), (0.001, None), (0.002, None), (0.030, 0.003), (0.730, 0.022)),
    ("ff", "proposed-orthogonal", 200): ((1.000, 0.063), (0.886, 0.102), (0.895, 0.119), (1.187, 0.172), (1.171, 0.270), (1.111, 0.194), (1.018, 0.056)),
    ("ff", "proposed-orthogonal", 1000): ((1.000, 0.027), (0.967, 0.048), (0.951, 0.053), (1.006, 0.063), (0.976, 0.099), (1.066, 0.080), (0.961, 0.025)),
    ("ff", "proposed-he", 200): ((0.997, 0.071), (1.024, 0.147), (0.777, 0.135), (0.726, 0.138), (0.705, 0.221), (0.732, 0.172), (0.883, 0.069)),
    ("ff", "proposed-he", 1000): ((1.000, 0.033), (1.036, 0.068), (0.971, 0.078), (0.921, 0.081), (0.972, 0.138), (1.004, 0.104), (0.967, 0.033)),
    ("resnet", "he", 200): ((1.221, 0.043), (4.037, 0.350), (53.7, 6.2), (2725, 348), (2586, 556), (66.0, 10.0), (1.229, 0.039)),
    ("resnet", "he", 1000): ((1.219, 0.033), (4.038, 0.257), (55.2, 4.9), (3273, 364), (2248, 456), (62.3, 8.8), (1.228, 0.034)),
    ("resnet", "proposed-orthogonal", 200): ((1.013, 0.007), (1.088, 0.020), (1.281, 0.040), (1.636, 0.073), (1.595, 0.080), (1.280, 0.043), (1.013, 0.007)),
    ("resnet", "proposed-orthogonal", 1000): ((1.012, 0.007), (1.090, 0.019), (1.273, 0.038), (1.611, 0.065), (1.612, 0.081), (1.286, 0.045), (1.012, 0.007)),
    ("resnet", "proposed-he", 200): ((1.012, 0.007), (1.089, 0.020), (1.269, 0.040), (1.634, 0.075), (1.603, 0.084), (1.280, 0.045), (1.013, 0.007)),
    ("resnet", "proposed-he", 1000): ((1.013, 0.007), (1.090, 0.020), (1.284, 0.039), (1.639, 0.069), (1.582, 0.080), (1.273, 0.044), (1.012, 0.007)),
}
FIG1 = Reference(
    "figure1", "[NB]/[SIM], docs/method.md §7.1",
    "mean ± std over 1000 samples, seed 0 (numpy re-run of the official notebook)",
    {key: dict(zip(_FIG1_RESNET_COLUMNS if key[0] == "resnet" else _FIG1_COLUMNS, values))
     for key, values in _FIG1_ROWS.items()})

# docs/method.md §7.2 [POSTER]: data[depth][(scheme, direction)] = test accuracy of the best configuration; 0.0 = fails.
# "train" holds the dashed curves: ≈1.0 for the proposed inits at every depth.
FIG2_MLP_DEPTH = Reference(
    "fig2_mlp_depth", "[POSTER], docs/method.md §7.2", PLOT_NOTE,
    {"test": {2: {P_HE: 0.99, P_ORTH: 0.99, D_HE: 0.985, D_ORTH: 0.985},
              5: {P_HE: 0.99, P_ORTH: 0.99, D_HE: 0.985, D_ORTH: 0.985},
              10: {P_HE: 0.99, P_ORTH: 0.99, D_HE: 0.985, D_ORTH: 0.985},
              20: {P_HE: 0.99, P_ORTH: 0.99, D_HE: 0.98, D_ORTH: 0.98},
              100: {P_HE: 0.97, P_ORTH: 0.98, D_HE: 0.0, D_ORTH: 0.0},
              200: {P_HE: 0.96, P_ORTH: 0.96, D_HE: 0.0, D_ORTH: 0.0}},
     "train": {d: {P_HE: 1.0, P_ORTH: 1.0} for d in (2, 5, 10, 20, 100, 200)}})

# docs/method.md §7.2 [POSTER]: about 47 configurations, sorted by accuracy. data["good"][scheme] = configurations
# with test accuracy >= 0.9 (a range where the plot allows no single reading); data["curve"][scheme] =
# piecewise (first config, last config, accuracy) segments of the sorted curve, 1-based.
FIG2_MLP_HPARAMS = Reference(
    "fig2_mlp_hparams", "[POSTER], docs/method.md §7.2", PLOT_NOTE + "; about 47 configurations, depth not found",
    {"n_configs": 47,
     "good": {P_ORTH: (37, 37), P_HE: (39, 39), D_ORTH: (23, 23), D_HE: (23, 23)},
     "curve": {D_HE: ((1, 23, 0.93), (24, 47, 0.0)), D_ORTH: ((1, 23, 0.93), (24, 47, 0.0)),
               P_ORTH: ((1, 37, 0.93), (38, 40, 0.5), (41, 47, 0.12)),
               P_HE: ((1, 39, 0.9), (40, 44, 0.12), (45, 47, 0.0))}})

# docs/method.md §7.2 [POSTER]: CIFAR-10 CNN, data["test"][depth][(scheme, direction)].
FIG2_CNN_DEPTH = Reference(
    "fig2_cnn_depth", "[POSTER], docs/method.md §7.2", PLOT_NOTE,
    {"test": {5: {P_ORTH: 0.86, P_HE: 0.86, D_HE: 0.85, D_ORTH: 0.85},
              25: {P_ORTH: 0.855, P_HE: 0.85, D_HE: 0.835, D_ORTH: 0.835},
              100: {P_ORTH: 0.81, P_HE: 0.79, D_HE: 0.0, D_ORTH: 0.0}},
     "train": {5: {P_ORTH: 1.0, P_HE: 1.0}, 25: {P_ORTH: 1.0, P_HE: 1.0, D_HE: 1.0},
               100: {P_ORTH: 1.0, P_HE: 1.0, D_HE: 0.0}}})

# docs/method.md §7.3 [POSTER]: WN-WRN on CIFAR-10, accuracy after one epoch, data[layers][(scheme, direction)].
FIG3_DEPTH_10K = Reference(
    "fig3_depth_10k", "[POSTER], docs/method.md §7.3", PLOT_NOTE + "; the PyTorch-default error bar at 100 layers reaches ≈0.11",
    {10: {P_ORTH: 0.38, H_ORTH: 0.37, D_ORTH: 0.43, T_ORTH: 0.39},
     100: {P_ORTH: 0.38, H_ORTH: 0.355, D_ORTH: 0.44, T_ORTH: 0.04},
     1000: {P_ORTH: 0.385, H_ORTH: 0.355, D_ORTH: 0.33, T_ORTH: 0.0},
     10000: {P_ORTH: 0.34, H_ORTH: 0.31, D_ORTH: 0.16, T_ORTH: 0.0}})

# docs/method.md §7.4 [POSTER]: WRN-40-10 / CIFAR-10, 20 seeds, percentage reaching epoch 3 without diverging.
# data[(lr, warmup)][(scheme, direction)] in percent.
_LR_ROWS = {
    (0.001, False): (100, 100, 100, 0), (0.005, False): (0, 100, 95, 0), (0.01, False): (0, 100, 0, 0),
    (0.05, False): (0, 80, 0, 0), (0.1, False): (0, 0, 0, 0),
    (0.001, True): (100, 100, 100, 100), (0.005, True): (100, 100, 100, 100), (0.01, True): (95, 100, 95, 100),
    (0.05, True): (15, 100, 85, 80), (0.1, True): (5, 90, 60, 20)}
FIG3_LR_WARMUP = Reference(
    "fig3_lr_warmup", "[POSTER], docs/method.md §7.4", "bar heights read off the poster's plot, multiples of 5%",
    {key: dict(zip((D_ORTH, P_ORTH, H_ORTH, T_ORTH), values)) for key, values in _LR_ROWS.items()})

# docs/method.md §7.5 [POSTER]: test error (%), exactly as printed. data[(dataset, architecture)] = list of
# (method, mean, std or None). Methods: "datadep", "proposed", "proposed+warmup", "bn", "shang" (quoted).
TABLE1 = Reference(
    "table1_wn_vs_bn", "[POSTER], docs/method.md §7.5",
    "printed numbers; ± presumably std over seeds (count not found); BN rows of ResNet-56/110 quoted "
    "from He et al.; cutout on WRN-40-10 and ResNet-164",
    {("cifar10", "ResNet-56"): [("datadep", 9.19, 0.24), ("proposed", 7.87, 0.14), ("proposed+warmup", 7.20, 0.12),
                                ("bn", 6.97, None)],
     ("cifar10", "ResNet-110"): [("datadep", 9.33, 0.10), ("proposed", 7.71, 0.14), ("proposed+warmup", 6.69, 0.11),
                                 ("shang", 7.46, None), ("bn", 6.61, 0.16)],
     ("cifar10", "WRN-40-10"): [("datadep", 6.10, 0.23), ("proposed", 4.74, 0.14), ("proposed+warmup", 4.75, 0.08),
                                ("bn", 3.53, 0.38)],
     ("cifar100", "ResNet-164"): [("datadep", 30.26, 0.51), ("proposed", 27.30, 0.49),
                                  ("proposed+warmup", 25.31, 0.26), ("bn", 25.52, 0.17)]})

# docs/method.md §7.6 [POSTER]: log spectral norm of the Hessian at init (log base not found; this project uses
# the natural log). data[(dataset, architecture)][scheme] = (mean, std); "hanin" is N/A on ResNet-164.
TABLE2 = Reference(
    "table2_hessian", "[POSTER], docs/method.md §7.6",
    "printed numbers; ± over seeds (count not found); the log's base is not found (natural log here)",
    {("cifar10", "WRN-40-10"): {"pytorch-default": (4.68, 0.60), "datadep": (3.01, 0.02), "hanin": (7.14, 0.72),
                                "proposed": (1.31, 0.12)},
     ("cifar100", "ResNet-164"): {"pytorch-default": (9.56, 0.54), "datadep": (2.68, 0.09), "proposed": (1.56, 0.18)}})

REFERENCES = {ref.key: ref for ref in (FIG1, FIG2_MLP_DEPTH, FIG2_MLP_HPARAMS, FIG2_CNN_DEPTH, FIG3_DEPTH_10K,
                                       FIG3_LR_WARMUP, TABLE1, TABLE2)}
