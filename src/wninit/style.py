"""One colour per scheme, shared by every figure the package draws (report and diagnostics)."""
from __future__ import annotations

__all__ = ["SCHEME_COLOURS", "FIGURE1_COLOURS"]

SCHEME_COLOURS = {  # (dark = orthogonal directions, light = Gaussian/He directions) per scheme
    "proposed": ("#1f4e9c", "#5aa9e6"), "datadep": ("#c0392b", "#f39c12"), "hanin": ("#1e7b4a", "#72c98f"),
    "pytorch-default": ("#444444", "#a0a0a0"), "proposed-backward": ("#6c3483", "#bb8fce"),
    "he": ("#8d5524", "#8d5524"), "orthogonal": ("#8d5524", "#8d5524"), "xavier": ("#b7950b", "#b7950b")}

# Figure 1's curves (docs/method.md §7.1): the proposed init in the proposed scheme's colours, and the unit-gain
# baseline "He (g=1)" (a WN net with g = 1, a scheme of its own) in a colour no scheme uses.
FIGURE1_COLOURS = {"Proposed (orthogonal)": SCHEME_COLOURS["proposed"][0],
                   "Proposed (He)": SCHEME_COLOURS["proposed"][1], "He (g=1)": "#c2185b"}
