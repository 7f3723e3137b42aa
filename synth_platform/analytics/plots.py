"""PNG plots for asset metadata, drawn on a bare Figure (Agg canvas): no pyplot global state, thread-safe."""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _figure() -> Figure:
    # Imported here: matplotlib takes over half a second to load, and every Dagster step process imports this module.
    from matplotlib.figure import Figure

    return Figure(figsize=(8, 4))


def _png(fig: Figure) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=96, bbox_inches="tight")
    return buf.getvalue()


def markdown_image(png: bytes, alt: str) -> str:
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"


def load_profile_png(profile: Mapping[str, Sequence[float | None]], unit: str) -> bytes:
    """One line per group over the 24 UTC hours; `profile[group][hour]` is the mean (None: no readings)."""
    fig = _figure()
    ax = fig.add_subplot()
    hours = np.arange(24)
    for group, values in sorted(profile.items()):
        ax.plot(hours, [np.nan if v is None else v for v in values], marker="o", markersize=3, label=group)
    ax.set(xlabel="hour of day (UTC)", ylabel=unit, title="Hourly load profile per building type", xticks=hours[::2])
    ax.grid(alpha=0.3)
    ax.legend()
    return _png(fig)


def latency_png(latencies_ms: Mapping[str, Sequence[float]]) -> bytes:
    """Latency distribution per target (empirical CDF, log scale) with p50/p95/p99 marked."""
    fig = _figure()
    ax = fig.add_subplot()
    for target, values in sorted(latencies_ms.items()):
        if not len(values):
            continue
        ordered = np.sort(np.asarray(values, dtype=float))
        line = ax.plot(ordered, np.arange(1, len(ordered) + 1) / len(ordered), label=target)[0]
        for q in (50, 95, 99):
            ax.axvline(float(np.percentile(ordered, q)), color=line.get_color(), alpha=0.35, linestyle=":")
    ax.set(
        xscale="log",
        xlabel="latency (ms), dotted: p50 / p95 / p99",
        ylabel="share of requests",
        title="Query latency per target",
    )
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    return _png(fig)
