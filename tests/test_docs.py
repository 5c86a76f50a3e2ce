"""docs/paper.md against the code: the variants, the paper's accuracy numbers and the variant costs it tabulates."""

import re
from pathlib import Path

import pytest

from ulsam_search import VARIANTS, count_cost
from ulsam_search.ablation import PAPER_RESULTS

PAPER = Path(__file__).resolve().parents[1] / "docs" / "paper.md"


def section(title: str) -> str:
    """The text of the ``## `` section whose heading starts with ``title``, up to the next ``## `` heading."""
    text = PAPER.read_text(encoding="utf-8")
    match = re.search(rf"^## {re.escape(title)}.*?$(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"docs/paper.md has no section '## {title}'"
    return match.group(1)


def tables(text: str) -> list[list[dict[str, str]]]:
    """Every Markdown table in ``text``, as rows of {header: cell} with surrounding backticks removed."""
    found, lines = [], text.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].startswith("|") and i + 1 < len(lines) and re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", lines[i + 1]):
            header = [c.strip() for c in lines[i].strip("|").split("|")]
            rows, i = [], i + 2
            while i < len(lines) and lines[i].startswith("|"):
                cells = [c.strip().strip("`") for c in lines[i].strip().strip("|").split("|")]
                assert len(cells) == len(header), f"malformed row in docs/paper.md: {lines[i]}"
                rows.append(dict(zip(header, cells)))
                i += 1
            found.append(rows)
        else:
            i += 1
    return found


def accuracy(cell: str) -> tuple[float, float | None]:
    top1, _, top5 = cell.partition("/")
    return float(top1), float(top5) if top5.strip() else None


def documented_results() -> dict[tuple[str, str], tuple[float, float | None]]:
    results = {}
    for table in tables(section("Reported accuracy held by the code")):
        for row in table:
            for column, cell in row.items():
                if cell == "–":
                    continue
                if column == "no ULSAM":
                    arch = row["ARCH"]
                elif g := re.fullmatch(r"g = (\d+)", column):
                    arch = row["ARCH"].format(g=int(g.group(1)))
                else:
                    continue
                key = (row["table"], arch)
                assert key not in results, f"docs/paper.md lists {key} twice"
                results[key] = accuracy(cell)
    return results


def test_paper_results_in_the_docs_equal_the_code():
    documented = documented_results()
    assert len(documented) > 50  # the tables were found and parsed
    assert set(documented) - set(PAPER_RESULTS) == set(), "in docs/paper.md, not in PAPER_RESULTS"
    assert set(PAPER_RESULTS) - set(documented) == set(), "in PAPER_RESULTS, not in docs/paper.md"
    for key, value in PAPER_RESULTS.items():
        assert documented[key] == value, key


def test_variant_table_in_the_docs_equals_the_code():
    (table,) = tables(section("Where the paper puts ULSAM"))
    documented = {row["name"]: row for row in table}
    assert list(documented) == list(VARIANTS)
    for name, variant in VARIANTS.items():
        row = documented[name]
        assert row["ARCH"] == variant.template, name
        assert tuple(int(g) for g in row["paper g"].split(",")) == variant.paper_groups, name
        assert row["position"] == ("verified" if variant.verified else "unverified"), name


def test_cost_table_in_the_docs_equals_the_counts():
    (table,) = tables(section("Cost of each variant"))
    documented = {row["ARCH"]: row for row in table}
    archs = {str(v.arch()) for v in VARIANTS.values()} | {str(v.arch()).split(":")[0] for v in VARIANTS.values()}
    assert set(documented) == archs
    for arch, row in documented.items():
        cost = count_cost(arch)
        assert (int(row["our params"].replace(",", "")), int(row["our MACs"].replace(",", ""))) == (
            cost.params, cost.macs), arch


@pytest.mark.parametrize("text", ["| a | b |\n|---|---|\n| `x` | 1 / 2 |\n"])
def test_the_table_parser_reads_cells(text):
    assert tables(text) == [[{"a": "x", "b": "1 / 2"}]]
    assert accuracy("1 / 2") == (1.0, 2.0) and accuracy("62.20") == (62.2, None)
