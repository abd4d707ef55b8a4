"""The book's Lua filters (filters/*.lua), run by the pandoc that Quarto
bundles on small documents. Skipped without `quarto` on PATH, like the
render tests; `.ci/run` installs Quarto first."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
QUARTO = shutil.which("quarto")

pytestmark = pytest.mark.skipif(
    QUARTO is None, reason="quarto is not on PATH, so its pandoc is missing "
    "(install Quarto: README)")

TABLE = """\
| name | $\\beta$ 95% |
|:---|---:|
| **x** & y | 1 ± 2 |
| z_1 | −3 |
"""


def pandoc(markdown: str, to: str, *filters: str, extra=()) -> str:
    args = [QUARTO, "pandoc", "--from", "markdown", "--to", to]
    for name in filters:
        args += ["--lua-filter", str(ROOT / "filters" / name)]
    args += extra
    out = subprocess.run(args, input=markdown, capture_output=True,
                         text=True, check=True)
    return out.stdout


def test_a_whole_table_becomes_a_tabular_with_pandocs_cells():
    tex = pandoc(f"::: {{.whole}}\n\n{TABLE}\n:::\n", "latex",
                 "whole-tables.lua")
    assert "longtable" not in tex and "\\endhead" not in tex
    body = tex[tex.index("\\begin{tabular}"):tex.index("\\end{tabular}")]
    # pandoc's own conversion of the cells, rules in reading order
    assert "\\textbf{x} \\& y & 1 ± 2 \\\\" in body
    assert "z\\_1 & −3 \\\\" in body
    assert "\\(\\beta\\) 95\\%" in body
    assert body.index("\\toprule") < body.index("name") \
        < body.index("\\midrule") < body.index("z\\_1") \
        < body.index("\\bottomrule")
    # set in the book's table size (macros from the PDF profile)
    assert tex.count("{\\aetablesize") == 1
    assert "\\aetablesize" in (ROOT / "_quarto-report.yml").read_text()


def test_a_wide_whole_table_spreads_over_the_text_width():
    tex = pandoc(f"::: {{.whole .wide}}\n\n{TABLE}\n:::\n", "latex",
                 "whole-tables.lua")
    assert ("\\begin{tabular*}{\\linewidth}{@{\\extracolsep{\\fill}}lr@{}}"
            in tex)
    assert tex.count("\\end{tabular*}}") == 1 and "longtable" not in tex


def test_citations_in_a_whole_table_are_resolved(tmp_path):
    """The cells stay pandoc inlines, so citeproc (which runs after the
    filter) formats a citation in a cell as it does in the text."""
    bib = tmp_path / "refs.bib"
    bib.write_text("@article{golan2018, author = {Golan, Izhak and "
                   "El-Yaniv, Ran}, title = {Deep Anomaly Detection}, "
                   "journal = {NeurIPS}, year = {2018}}\n")
    markdown = ("::: {.whole}\n\n| method | AUROC |\n|:--|--:|\n"
                "| GEOM [@golan2018] | 93.5 |\n\n:::\n")
    args = ["--citeproc", f"--bibliography={bib}"]
    tex = pandoc(markdown, "latex", "whole-tables.lua", extra=args)
    body = tex[tex.index("\\begin{tabular}"):tex.index("\\end{tabular}")]
    assert "GEOM (Golan and El-Yaniv 2018) & 93.5" in body
    assert "@golan2018" not in tex


def test_other_tables_and_html_are_left_alone():
    plain = pandoc(TABLE, "latex", "whole-tables.lua")
    assert "\\begin{longtable}" in plain and "tabular}" not in plain
    html = pandoc(f"::: {{.whole}}\n\n{TABLE}\n:::\n", "html",
                  "whole-tables.lua")
    assert "<table" in html and "tabular" not in html


def test_short_inline_code_never_breaks_in_latex():
    tex = pandoc("Run `python -m aecore --help` and "
                 "`a much longer piece of inline code that may break`.",
                 "latex", "inline-code.lua")
    assert "\\mbox{\\texttt{python\\ -m\\ aecore\\ -\\/-help}}" in tex
    assert "\\mbox{\\texttt{a much" not in tex
    html = pandoc("Run `python -m aecore --help` and `a much longer piece "
                  "of inline code that may break`.", "html",
                  "inline-code.lua")
    assert '<code class="nowrap">python -m aecore --help</code>' in html
    assert "<code>a much longer" in html
