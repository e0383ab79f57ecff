"""What both studies' figures share: a non-interactive matplotlib, saving, the mean-over-subjects
curve and the scaling axes.

Import ``plt`` from here (not ``matplotlib.pyplot`` directly) so the Agg backend is chosen
before pyplot is first imported: jobs run without a display.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from encscale.io import atomic_path  # noqa: E402

R_LABEL = "prediction accuracy (mean Pearson r, test)"


def save_figure(fig: plt.Figure, *paths: str | Path) -> None:
    """Save ``fig`` to each path (atomically, format from the suffix: png, svg, pdf); close it."""
    for path in paths:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=150, bbox_inches="tight", format=Path(path).suffix.lstrip("."))
    plt.close(fig)


def mean_curve(scores: pd.DataFrame, x: str) -> pd.DataFrame:
    """Columns ``x``, ``r`` and ``sem``: at each x, the mean over subjects of each subject's
    mean ``r`` (over draws, runs, ...), and its standard error over subjects (0 for one)."""
    per_subject = scores.groupby(["subject", x], as_index=False)["r"].mean()
    g = per_subject.groupby(x)["r"]
    out = pd.DataFrame({"r": g.mean(), "sem": g.sem(ddof=1).fillna(0.0)})
    return out.reset_index()


def finish_scaling_axes(ax: plt.Axes, xlabel: str, title: str) -> None:
    """Log x axis, labels (y: :data:`R_LABEL`), legend outside on the right, grid."""
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(R_LABEL)
    ax.set_title(title)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(alpha=0.3, which="both")
