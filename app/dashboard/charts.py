"""Charts drawn on the server as SVG by pygal, put in the page as they are (no script, no
CDN): each is an image of numbers that a table beside it also gives.

pygal writes its styling in a <style> element and a small <script> into every chart; the
pages' Content-Security-Policy (app.web) refuses inline styles and scripts, so both are
taken out of each chart, and the same rules are served once as a stylesheet of our own
(`stylesheet()`, at dashboard.chart_css) for every chart on the page.
"""

from __future__ import annotations

import math
import re
import sys
from functools import lru_cache

import pygal
from markupsafe import Markup, escape
from pygal.style import Style

# pygal puts an import hook for its map plugins (pygal.maps.*) on sys.meta_path, written
# for the finder API that Python 3.12 dropped: on 3.11 every failed import anywhere in the
# process then warns (ImportWarning). We draw no maps, so the hook goes.
sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, pygal.PluginImportFixer)]

STYLE = Style(
    background="transparent",
    plot_background="#ffffff",
    foreground="#334155",
    foreground_strong="#0f172a",
    foreground_subtle="#cbd5e1",
    font_family="system-ui, -apple-system, 'PingFang SC', 'Microsoft YaHei', sans-serif",
    colors=("#0f766e", "#2563eb", "#d97706", "#7c3aed", "#dc2626", "#0891b2"),
    label_font_size=14,
    major_label_font_size=14,
    legend_font_size=14,
    value_font_size=13,
    title_font_size=16,
    tooltip_font_size=13,
)
# Drawn at 400 x 280 and scaled to the column's width: on a 390 px phone (a 316 px
# column) the labels stay about 11 px high.
SIZE = {"width": 400, "height": 280}
OPTIONS = {
    **SIZE,
    "style": STYLE,
    "js": [],
    "no_prefix": True,
    "disable_xml_declaration": True,
    "legend_at_bottom": True,
    "legend_at_bottom_columns": 3,
    "show_minor_x_labels": False,
    "x_labels_major_count": 6,
    "truncate_legend": 30,
    "truncate_label": 12,
    "print_values": False,
    "margin": 8,
    "margin_bottom": 30,  # pygal leaves too little room for a second row of legend
    "spacing": 8,
    "dots_size": 2.5,
    "stroke_style": {"width": 2.5},
    "min_scale": 3,
    "max_scale": 6,
}
_INLINE = re.compile(r"<style[^>]*>.*?</style>|<script[^>]*>.*?</script>|<!--.*?-->", re.S)
_STYLE_ATTRIBUTE = re.compile(r'\sstyle="[^"]*"')


def _whole_numbers(chart, series: list[tuple[str, list]]) -> None:
    """A chart of counts is labelled in whole numbers, at 1, 2 or 5 times a power of ten
    (pygal would put 0.2, 0.4 ... between 0 and 1 families)."""
    values = [value for _name, values in series for value in values if value is not None]
    if not all(isinstance(value, int) for value in values):
        return
    top = max(values, default=0)
    rough = max(top / 5, 1)
    power = 10 ** math.floor(math.log10(rough))
    step = next(n * power for n in (1, 2, 5, 10) if n * power >= rough)
    chart.y_labels = list(range(0, max(top, 1) + step, step))


def _svg(chart, label: str) -> Markup:
    svg = chart.render(is_unicode=True)
    svg = _STYLE_ATTRIBUTE.sub("", _INLINE.sub("", svg))
    svg = svg.replace("<defs></defs>", "").replace("<defs/>", "").replace(' id=""', "", 1)
    svg = svg.replace("<title>Pygal</title>", f"<title>{escape(label)}</title>", 1)
    # Named for screen readers; the table beside it has the numbers.
    svg = svg.replace(
        'class="pygal-chart"',
        f'class="pygal-chart" role="img" aria-label="{escape(label)}"',
        1,
    )
    return Markup(svg)  # noqa: S704 - pygal's own output, every label escaped by it


# Past a month of days the lines go without a dot per day: at 400 px they would touch,
# and each is an element with its value (a quarter's chart was 140 kB and 47 ms of the page).
MAX_DOTS = 31


def line_chart(label: str, x_labels: list[str], series: list[tuple[str, list]]) -> Markup:
    """Lines over the days of a period, one per series (values may be None: no point)."""
    chart = pygal.Line(
        **OPTIONS,
        show_legend=len(series) > 1,
        fill=False,
        show_dots=len(x_labels) <= MAX_DOTS,
    )
    chart.x_labels = x_labels
    _whole_numbers(chart, series)
    for name, values in series:
        chart.add(name, values)
    return _svg(chart, label)


def bar_chart(label: str, x_labels: list[str], series: list[tuple[str, list]]) -> Markup:
    chart = pygal.Bar(**OPTIONS, show_legend=len(series) > 1)
    chart.x_labels = x_labels
    _whole_numbers(chart, series)
    for name, values in series:
        chart.add(name, values)
    return _svg(chart, label)


def funnel_chart(label: str, stages: list[str], counts: list[int]) -> Markup:
    """The funnel's stages as horizontal bars, widest first."""
    chart = pygal.HorizontalBar(
        **{**OPTIONS, "height": 260, "show_minor_x_labels": True}, show_legend=False
    )
    chart.x_labels = list(reversed(stages))
    _whole_numbers(chart, [(label, counts)])
    chart.add(label, list(reversed(counts)))
    return _svg(chart, label)


@lru_cache(maxsize=1)
def stylesheet() -> str:
    """pygal's styling for charts drawn with STYLE, scoped to the charts of our pages."""
    css = []
    for kind in (pygal.Line, pygal.Bar, pygal.HorizontalBar):
        chart = kind(**{**OPTIONS, "no_prefix": False}, show_legend=True)
        chart.x_labels = ["a", "b"]
        for n in range(len(STYLE.colors)):  # a rule per colour: as many series as colours
            chart.add(str(n), [n, 1])
        svg = chart.render(is_unicode=True)
        chart_id = re.search(r'id="(chart-[0-9a-f-]+)"', svg).group(1)
        for block in re.findall(r"<style[^>]*>(.*?)</style>", svg, re.S):
            css.append(block.replace(f"#{chart_id}", "svg.pygal-chart"))
    # Lines are lines, and the tooltip (which needs pygal's script) is never shown.
    css.append(
        "svg.pygal-chart{width:100%;height:auto;display:block}"
        "svg.pygal-chart .line{fill:none}"
        "svg.pygal-chart .tooltip{display:none}"
    )
    return "\n".join(dict.fromkeys(css)).replace("&gt;", ">")
