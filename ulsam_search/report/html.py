"""index.html: one self-contained page (plotly's JavaScript embedded, so it opens offline): the run in a
paragraph, the figures, the top of the front with commands, the rest, a study's section, the config."""

from __future__ import annotations

import html
from pathlib import Path

from .collect import ReportData
from ..ablation.confirm import finding
from .plots import ABLATION, CONFIRMED, FRONT, Drawn, plotly_figures
from .text import (ABLATION_METRICS, CLAIMS_INTRO, ablation_tables, claims_table, confirmed_intro, confirmed_table,
                   counts_text, fmt, single_runs, stopped_text, trials_text)


def _plots(drawn: list[Drawn], section: str) -> str:
    return "".join(f'<div class="plot" id="plot-{name}">{fig.to_html(full_html=False, include_plotlyjs=False)}'
                   f'</div>' for name, fig in plotly_figures(drawn, section).items())


def _front_rows(data: ReportData) -> str:
    """The 20 best trials of the front by top-1, with the command that retrains each."""
    return "".join(
        f"<tr><td>{int(r['number'])}{' (knee)' if r['number'] == data.knee else ''}</td>"
        f"<td><code>{html.escape(r['arch'])}</code> {html.escape(r['paper_variant'])}</td>"
        f"<td>{r['top1']:.2f}</td><td>{int(r['macs']):,}</td><td>{int(r['params']):,}</td>"
        f"<td>{fmt(r['d_top1'], signed=True)}</td><td>{fmt(r['d_macs_pct'], signed=True)}</td>"
        f"<td>{fmt(r['d_params_pct'], signed=True)}</td>"
        f"<td><code>{html.escape(r['command'])}</code></td></tr>"
        for _, r in data.front.sort_values("top1", ascending=False).head(20).iterrows())


def _other_rows(data: ReportData) -> str:
    return "".join(f"<tr><td>{int(r['number'])}</td><td>{r['status']}</td><td><code>{html.escape(r['arch'])}</code>"
                   f"</td><td>{html.escape(str(r['reason']))}</td></tr>" for _, r in data.others.iterrows())


def _wrap(text: str, marker: str, tag: str) -> str:
    parts = text.split(marker)
    return "".join(f"<{tag}>{part}</{tag}>" if i % 2 else part for i, part in enumerate(parts))


def _markdown_cell(text: str) -> str:
    """A table cell written for Markdown as HTML: `code` spans become <code>, **bold** <strong>."""
    return _wrap(_wrap(html.escape(text), "`", "code"), "**", "strong")


def _markdown_table(header: list[str], rows: list[list[str]]) -> str:
    return "<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>" + "".join(
        "<tr>" + "".join(f"<td>{_markdown_cell(cell)}</td>" for cell in row) + "</tr>" for row in rows) + "</table>"


def _confirmed_section(data: ReportData, drawn: list[Drawn]) -> str:
    """The confirm stage's table, finding and figure; without one, the warning that the deltas are single runs."""
    if data.confirmed is None:
        return f"<p><em>{_markdown_cell(single_runs(data))}</em></p>" if single_runs(data) else ""
    table = _markdown_table(*confirmed_table(data))
    lines = "".join(f"<li>{_markdown_cell(line)}</li>" for line in finding(data.confirmed))
    return (f"<h2>Confirmed</h2><p>{html.escape(confirmed_intro(data))}</p>{table}<ul>{lines}</ul>"
            f"{_plots(drawn, CONFIRMED)}")


def _ablation_section(data: ReportData, drawn: list[Drawn]) -> str:
    """A study's tables (as ablation.md has them) and figures; empty for a search."""
    if data.ablation is None:
        return ""
    study = data.config.study
    tables = "".join(f"<h3>{ABLATION_METRICS[metric]} (%)</h3>" + table.to_html(escape=True, index_names=False)
                     for metric, table in ablation_tables(data.ablation).items())
    claims = (f"<h3>The paper's claims</h3><p>{html.escape(CLAIMS_INTRO)}</p>"
              f"{_markdown_table(*claims_table(data.claims))}" if data.claims else "")
    return (f"<h2>Ablation: {html.escape(study.kind)} study</h2><p>Mean ± sample std [95% CI] over "
            f"seeds {', '.join(map(str, study.seed_list))}; Δ: paired difference from the baseline "
            f"(p: paired t-test).</p>{tables}{claims}{_plots(drawn, ABLATION)}")


def write_html(data: ReportData, info: dict, drawn: list[Drawn], path: Path) -> None:
    """The page; ``info`` is summary.json's content, ``drawn`` the report's figures."""
    from plotly.offline import get_plotlyjs

    reference = ", ".join(f"{o} {v:,.4g}" for o, v in data.reference.items())
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>ulsam-search report: {html.escape(data.name)}</title>
<script type="text/javascript">{get_plotlyjs()}</script>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}} table{{border-collapse:collapse;
font-size:13px}} td,th{{border:1px solid #ddd;padding:3px 6px;text-align:left}} code{{font-size:12px}}
pre{{background:#f6f6f6;padding:1em;overflow:auto}}</style></head><body>
<h1>ulsam-search report: {html.escape(data.name)}</h1>
<p>{trials_text(info)} ({counts_text(info)}). Pareto set: {len(data.front)} trials.
Hypervolume {data.hypervolume:.4f} (reference point {html.escape(reference)}; objectives normalised so the
reference is 1). Baseline <code>{html.escape(data.facts.baseline_arch)}</code>: {data.facts.baseline_macs:,} MACs,
{data.facts.baseline_params:,} params, top-1 {'n/a' if data.baseline_top1 is None else f'{data.baseline_top1:.2f}'}.</p>
{f"<p>{_markdown_cell(notice)}</p>" if (notice := stopped_text(data)) else ""}
{_plots(drawn, FRONT)}
<h2>Top of the Pareto set (by top-1)</h2>
<table><tr><th>#</th><th>ARCH</th><th>top-1 %</th><th>MACs</th><th>params</th><th>Δ top-1</th><th>Δ MACs %</th>
<th>Δ params %</th><th>reproduce</th></tr>{_front_rows(data)}</table>
{_confirmed_section(data, drawn)}
<h2>Not on the front</h2>
<table><tr><th>#</th><th>status</th><th>ARCH</th><th>reason</th></tr>{_other_rows(data)}</table>
{_ablation_section(data, drawn)}
<h2>Config</h2><pre>{html.escape(data.config_text)}</pre>
</body></html>
"""
    path.write_text(page)
