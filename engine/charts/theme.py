"""Chart themes and the phone geometry every chart is drawn for.

Discord shows an embed image about 400 px wide on a phone (and at most 400 px on desktop).
Every chart is laid out for that width: a figure ``PHONE_WIDTH_IN`` inches wide is shown at
400 px, so one inch is 100 px on screen and a font of ``s`` points is ``s × 100 / 72`` px tall
there. Text is never below ``SMALL_PT`` (11 px on a phone). The PNG is written at ``DPI``
(800 px wide) so it stays sharp on high-density screens.

``dark`` matches Discord's dark theme (the embed background ``#2b2d31``) and is the default;
``light`` matches its light theme. Pick one with ``PAPERBOT_CHART_THEME``.
"""

from __future__ import annotations

from dataclasses import dataclass

from matplotlib.figure import Figure
from matplotlib.text import Text

#: Width Discord gives an embed image on a phone, px.
PHONE_PX = 400
#: Figure width, inches: shown at ``PHONE_PX`` px.
PHONE_WIDTH_IN = 4.0
#: PNG resolution: 800 px wide.
DPI = 200
#: Tick labels, legend and notes: the smallest font used anywhere, points (≈ 11 px at 400 px
#: wide).
SMALL_PT = 8.0
#: The title line.
TITLE_PT = 10.0


@dataclass(frozen=True, slots=True)
class Theme:
    """Colours of one chart theme (matplotlib colour strings)."""

    name: str
    background: str  # figure and axes face
    text: str
    muted: str  # secondary text, reference lines
    grid: str
    up: str  # rising candle
    down: str  # falling candle
    win: str  # winning exit and trade link
    loss: str  # losing exit, drawdown
    long: str  # long entry marker
    short: str  # short entry marker (never the loss colour: a short is not a loss)
    entry: str  # entry price line
    stop_loss: str
    take_profit: str
    equity: str
    benchmark: str
    volume_alpha: float
    #: indicator lines, in the order a strategy declares them
    palette: tuple[str, ...]
    #: monthly heatmap: colour of the worst loss, of zero, of the best gain
    heat: tuple[str, str, str]


DARK = Theme(
    name="dark", background="#2b2d31", text="#f2f3f5", muted="#a3a6aa", grid="#3b3d44",
    up="#26a69a", down="#ef5350", win="#3ba55d", loss="#ed4245", long="#5865f2",
    short="#f0b232", entry="#c9cdfb", stop_loss="#ed4245", take_profit="#3ba55d",
    equity="#5865f2", benchmark="#a3a6aa", volume_alpha=0.55,
    palette=("#f0b232", "#00b0f4", "#eb459f", "#ffffff", "#57f287", "#fee75c"),
    heat=("#ed4245", "#313338", "#3ba55d"),
)
LIGHT = Theme(
    name="light", background="#ffffff", text="#060607", muted="#5c5e66", grid="#e3e5e8",
    up="#26a69a", down="#ef5350", win="#1f8b4c", loss="#d83c3e", long="#4752c4",
    short="#c27c0e", entry="#4752c4", stop_loss="#d83c3e", take_profit="#1f8b4c",
    equity="#4752c4", benchmark="#80848e", volume_alpha=0.45,
    palette=("#c27c0e", "#0077b6", "#c2185b", "#313338", "#2e7d32", "#8e24aa"),
    heat=("#d83c3e", "#f2f3f5", "#1f8b4c"),
)
THEMES: dict[str, Theme] = {"dark": DARK, "light": LIGHT}


def get_theme(name: str | Theme | None) -> Theme:
    """The theme called ``name`` (``"dark"`` when None); a ``Theme`` is returned as is.

    Raises:
        ValueError: for an unknown name, listing the valid ones.
    """
    if isinstance(name, Theme):
        return name
    key = (name or "dark").strip().lower()
    if key not in THEMES:
        raise ValueError(f"unknown chart theme {name!r}; use {' or '.join(THEMES)}")
    return THEMES[key]


def font_px(size_pt: float, fig: Figure, shown_px: float = PHONE_PX) -> float:
    """Height in screen px of a ``size_pt`` font of ``fig`` when the PNG is shown
    ``shown_px`` px wide."""
    width_px = fig.get_figwidth() * fig.dpi
    return size_pt * fig.dpi / 72.0 * shown_px / width_px


def min_font_px(fig: Figure, shown_px: float = PHONE_PX) -> float:
    """The smallest font, in screen px, of any visible non-empty text of ``fig`` when its PNG
    is shown ``shown_px`` px wide (``inf`` without text). Draw the figure first so tick labels
    exist."""
    sizes = [t.get_fontsize() for t in fig.findobj(Text)
             if t.get_visible() and t.get_text().strip()]
    return min((font_px(s, fig, shown_px) for s in sizes), default=float("inf"))
