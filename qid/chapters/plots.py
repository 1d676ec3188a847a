"""One shared figure style for every chapter, and small helpers that several chapters use."""

from __future__ import annotations

import matplotlib as mpl
import matplotlib.pyplot as plt
import seaborn as sns

# Bit widths get fixed colours in every figure of the book, so "3 bits" looks the same everywhere.
BIT_COLORS = {2: "#c0392b", 3: "#e67e22", 4: "#2980b9", 8: "#27ae60", 16: "#7f8c8d"}


def use_book_style() -> None:
    """Seaborn's ticks style with a light grid; vector-sharp PNGs in the built book."""
    sns.set_theme(context="notebook", style="ticks", rc={"axes.grid": True, "grid.alpha": 0.3})
    mpl.rcParams.update({"figure.dpi": 110, "savefig.dpi": 150, "figure.figsize": (7.0, 4.2), "legend.frameon": False})


def bit_color(bits: int) -> str:
    return BIT_COLORS.get(int(bits), "#34495e")


def log_axes(ax, x: bool = True, y: bool = True) -> None:
    if x:
        ax.set_xscale("log")
    if y:
        ax.set_yscale("log")


def subplots(*args, **kwargs):
    """plt.subplots with the book style applied and a tight layout."""
    use_book_style()
    kwargs.setdefault("constrained_layout", True)
    return plt.subplots(*args, **kwargs)
