"""The report's figure registry and its layering: each figure's info computed once and drawn by both renderers;
report and ablation import only downward, function-level imports included."""

import ast
import dataclasses
from pathlib import Path

import pytest
from test_report import make_run

from ulsam_search.report import collect, plots, write_report

PACKAGE = Path(__file__).resolve().parents[1] / "ulsam_search"


def test_every_figure_draws_both_ways_from_one_info(tmp_path):
    import matplotlib.figure
    import plotly.graph_objects as go

    names = [figure.name for figure in plots.FIGURES]
    assert len(names) == len(set(names))
    assert {f.section for f in plots.FIGURES} == {plots.FRONT, plots.CONFIRMED, plots.ABLATION}
    drawn = plots.prepare(collect(make_run(tmp_path)))
    assert [d.figure.name for d in drawn] == ["top1_vs_macs", "top1_vs_params", "hypervolume", "placement_heatmap",
                                              "parallel_choices"]  # no latency measured, not a study
    for item in drawn:
        assert isinstance(item.figure.plotly(item.info), go.Figure)
        fig = item.figure.matplotlib(item.info)
        assert isinstance(fig, matplotlib.figure.Figure)
        plots.pyplot().close(fig)


def test_a_report_computes_each_figure_once(tmp_path, monkeypatch):
    calls = []

    def counted(figure):
        return dataclasses.replace(figure, info=lambda data: calls.append(figure.name) or figure.info(data))

    monkeypatch.setattr(plots, "FIGURES", tuple(counted(f) for f in plots.FIGURES))
    out = write_report(make_run(tmp_path), tmp_path / "report")
    assert sorted(calls) == sorted(p.stem for p in out.glob("*.png"))
    assert (out / "index.html").read_text().count('class="plot"') == len(calls)


def _imports(path: Path) -> list[str]:
    """Every ulsam_search module ``path`` imports, at module or function level, as a dotted name."""
    package = path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1]  # the package the module is in
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[:len(package) - node.level + 1]
            found.append(".".join([*base, *([node.module] if node.module else [])]))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ulsam_search"):
            found.append(node.module)
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.startswith("ulsam_search")]
    return found


@pytest.mark.parametrize("stage, forbidden", [
    ("ablation", ("ulsam_search.report", "ulsam_search.workflows", "ulsam_search.cli")),
    ("report", ("ulsam_search.workflows", "ulsam_search.cli")),
])
def test_stages_import_only_downward(stage, forbidden):
    for path in (PACKAGE / stage).rglob("*.py"):
        bad = [m for m in _imports(path) if m.startswith(forbidden)]
        assert bad == [], f"{path.relative_to(PACKAGE)} imports {bad}"


def test_report_modules_import_only_earlier_stages_of_the_report():
    """collect -> pareto; text -> collect; plots -> collect, text; html -> plots, text; write -> everything."""
    allowed = {"pareto": set(), "collect": {"pareto"}, "text": {"collect", "pareto"},
               "plots": {"collect", "pareto", "text", "plots"}, "html": {"collect", "text", "plots"},
               "write": {"collect", "text", "plots", "html"}}
    for path in (PACKAGE / "report").rglob("*.py"):
        if path.name == "__init__.py" and path.parent.name == "report":
            continue  # the package's re-exports
        stage = "plots" if path.parent.name == "plots" else path.stem
        used = {m.split(".")[2] for m in _imports(path) if m.startswith("ulsam_search.report.")}
        assert used <= allowed[stage], f"{path.relative_to(PACKAGE)} imports report.{used - allowed[stage]}"
