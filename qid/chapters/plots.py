"""One shared figure style for every chapter, drawn for the page it is shown on, and small helpers that several
chapters use.

Figures are drawn at the width they are displayed at: the book's text column is about 690 px on a desktop and
about 350 px on a phone, and an image is scaled down to fit it. What a reader sees of a font is therefore its
size in the image times displayed/natural width, so the style fixes the figure width (`PAGE_FIGURE_WIDTH`) and
the smallest font together, and multi-panel figures stack or use 2×2 grids at that width instead of growing
sideways. Every PNG the chapters produce carries the size of its smallest text in pixels of the image (PNG text
key `MIN_FONT_KEY`), so the browser test can compute the effective font size of each figure as shown.
"""

from __future__ import annotations

import base64
import io

import matplotlib as mpl
import matplotlib.pyplot as plt
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.text import Text

# Bit widths get fixed colours in every figure of the book, so "3 bits" looks the same everywhere.
BIT_COLORS = {2: "#c0392b", 3: "#e67e22", 4: "#2980b9", 8: "#27ae60", 16: "#7f8c8d"}

PAGE_FIGURE_WIDTH = 5.0  # inches: one figure across the text column. On a phone (~350 px) 10 pt text shows at 9.7 px
SMALLEST_FONT = 10.0  # points: ticks and legends; labels one point larger
MIN_FONT_KEY = "qid-min-font-px"  # PNG text key: the smallest text of the figure, in pixels of the PNG


def use_book_style() -> None:
    """Seaborn's ticks style with a light grid, fonts sized for the page width, and the font-recording PNG output."""
    sns.set_theme(context="notebook", style="ticks", rc={"axes.grid": True, "grid.alpha": 0.3})
    mpl.rcParams.update({
        "figure.dpi": 110, "savefig.dpi": 150, "figure.figsize": (PAGE_FIGURE_WIDTH, 3.3), "legend.frameon": False,
        "font.size": SMALLEST_FONT + 1, "axes.labelsize": SMALLEST_FONT + 1, "axes.titlesize": SMALLEST_FONT + 1,
        "xtick.labelsize": SMALLEST_FONT, "ytick.labelsize": SMALLEST_FONT, "legend.fontsize": SMALLEST_FONT,
        "legend.title_fontsize": SMALLEST_FONT,
    })


def smallest_font_px(fig: Figure, dpi: float | None = None) -> float:
    """Size of the smallest visible text of `fig` in pixels of an image saved at `dpi` (default savefig.dpi)."""
    dpi = float(dpi or mpl.rcParams["savefig.dpi"])
    sizes = [text.get_fontsize() for text in fig.findobj(Text) if text.get_visible() and text.get_text().strip()]
    return min(sizes) * dpi / 72 if sizes else float("nan")


def figure_png(fig: Figure, dpi: float | None = None) -> bytes:
    """The figure as the book's PNG: tight bounding box, savefig.dpi, its smallest font recorded under MIN_FONT_KEY."""
    dpi = float(dpi or mpl.rcParams["savefig.dpi"])
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight", facecolor="white",
                metadata={MIN_FONT_KEY: f"{smallest_font_px(fig, dpi):.2f}"})
    return buffer.getvalue()


def save_figure(fig: Figure, path) -> None:
    """Write a figure outside a notebook (the landing page's) the same way the notebooks show theirs."""
    from pathlib import Path

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_bytes(figure_png(fig))


def _record_fonts_in_notebook_figures() -> None:
    """In a notebook kernel, show figures through `figure_png` (the inline backend's PNG plus the font record)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None or not hasattr(shell, "display_formatter"):
        return
    formatter = shell.display_formatter.formatters["image/png"]
    formatter.for_type(Figure, lambda fig: base64.b64encode(figure_png(fig)).decode("ascii"))


def bit_color(bits: int) -> str:
    return BIT_COLORS.get(int(bits), "#34495e")


def log_axes(ax, x: bool = True, y: bool = True) -> None:
    if x:
        ax.set_xscale("log")
    if y:
        ax.set_yscale("log")


def subplots(*args, **kwargs):
    """plt.subplots with the book style applied and a constrained layout; the default size is the page width."""
    use_book_style()
    kwargs.setdefault("constrained_layout", True)
    figure_and_axes = plt.subplots(*args, **kwargs)
    # after the first figure: matplotlib picks its backend lazily, and the inline backend registers its own PNG
    # formatter when it is picked
    _record_fonts_in_notebook_figures()
    return figure_and_axes
