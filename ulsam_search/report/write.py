"""Writing a report: every file into a temporary folder that then replaces the old report in one step."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from .._io import exchange, fsync_path, remove_leftovers, temporary_name
from ..errors import InvalidInput
from ..ablation.claims import claims_frame
from ..search.records import whole_numbers
from .collect import ReportData, collect
from .html import write_html
from .plots import prepare, write_pngs
from .text import ablation_markdown, front_columns, pareto_markdown, summary


def write_report(run_dir: str | os.PathLike, out: str | os.PathLike | None = None) -> Path:
    """Write the report of ``run_dir`` to ``out`` (default ``reports/<name>``), replacing any older one whole."""
    data = collect(run_dir)
    out = Path(out) if out is not None else Path("reports") / data.name
    staging = temporary_name(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        remove_leftovers(out)
        staging.mkdir()
    except OSError as error:
        raise InvalidInput(f"report folder {out}: {error.strerror or error}") from None
    try:
        _write_files(data, staging)
        _swap_in(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out


def _write_files(data: ReportData, folder: Path) -> None:
    """trials.csv, pareto.csv/.md, summary.json, the PNGs, a study's ablation.csv/.md (and claims.csv when its cells
    test the paper's claims), and index.html."""
    info = summary(data)
    whole_numbers(data.table).to_csv(folder / "trials.csv", index=False)
    whole_numbers(data.front[front_columns(data)]).to_csv(folder / "pareto.csv", index=False)
    (folder / "pareto.md").write_text(pareto_markdown(data, info))
    (folder / "summary.json").write_text(json.dumps(info, indent=2) + "\n")
    drawn = prepare(data)
    write_pngs(drawn, folder)
    if data.ablation is not None:
        data.ablation.to_csv(folder / "ablation.csv", index=False)
        (folder / "ablation.md").write_text(ablation_markdown(data))
        if data.claims:
            claims_frame(data.claims).to_csv(folder / "claims.csv", index=False)
    write_html(data, info, drawn, folder / "index.html")


def _swap_in(staging: Path, out: Path) -> None:
    """Replace ``out`` by ``staging`` (flushed to disk first) in one atomic exchange, so readers and a writer killed
    at any instant leave the old report or the new one. Where the system cannot exchange, two renames: a writer
    killed between them leaves no ``out`` (never a partial one) until the next report."""
    for path in staging.iterdir():
        fsync_path(path)
    fsync_path(staging)
    if out.exists() and exchange(staging, out):
        shutil.rmtree(staging, ignore_errors=True)  # now the old report
    elif out.exists():
        old = temporary_name(out, "old")
        os.replace(out, old)
        os.replace(staging, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, out)
    fsync_path(out.parent)
