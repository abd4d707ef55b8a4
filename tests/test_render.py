"""The book rendered by a real Quarto, as `bash scripts/report.sh` does.

The project is copied (tracked and untracked, non-ignored files: what a
fresh clone plus local edits holds, with no `_freeze/`) into a temporary
folder and rendered there with one `quarto render`, which executes every
chapter for HTML and for the PDF. Then the outputs are checked the way a
reader would notice faults: warnings, cropped figures, unresolved
references, math that needs the network, a table of contents whose page
numbers are wrong.

Without `quarto` on PATH the whole module is skipped with that reason;
`.ci/run` installs Quarto first, so CI always renders.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REAL_ROOT, real_data_or_skip
from test_book import QMD, text

ROOT = Path(__file__).resolve().parents[1]
QUARTO = shutil.which("quarto")
PDF_PAGES = (20, 30)     # the submitted PDF: at most 30 pages in all

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(QUARTO is None, reason="quarto is not on PATH, so "
                       "the book is not rendered (install Quarto: README)"),
]
FIG_LABEL = re.compile(r"^#\|\s*label:\s*(fig-[\w-]+)", re.M)
TCP_NOTICE = "Kernel is running over TCP without encryption"


def project_files() -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others",
         "--exclude-standard"], cwd=ROOT, capture_output=True, check=True)
    return [f for f in out.stdout.decode().split("\0")
            if f and (ROOT / f).is_file()]


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    real_data_or_skip()
    dest = tmp_path_factory.mktemp("render") / "book"
    for name in project_files():
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, dest / name)
    env = {**os.environ, "QUARTO_PYTHON": sys.executable,
           "AECORE_DATA": str(REAL_ROOT.resolve()), "AECORE_DOWNLOAD": "0",
           "PYTHONPATH": str(dest),   # the copy's aecore, not the checkout's
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}"
                   f"{os.environ.get('PATH', '')}"}
    env.pop("AECORE_RESULTS", None)
    log = ""
    # as scripts/report.sh: the HTML book, then the report's PDF
    for args in ([], ["--profile", "report", "--to", "pdf"]):
        proc = subprocess.run([QUARTO, "render", *args], cwd=dest, env=env,
                              capture_output=True, text=True, timeout=1500)
        log += proc.stdout + proc.stderr
        (tmp_path_factory.getbasetemp() / "render.log").write_text(log)
        assert proc.returncode == 0, log[-4000:]
    out = dest / "_book"
    assert not list(out.glob("*.pdf")), "the HTML profile made a PDF"
    pdfs = sorted((dest / "_report").glob("*.pdf"))
    return {"log": log, "out": out, "pdfs": pdfs,
            "html": {p.relative_to(out).as_posix(): p.read_text()
                     for p in out.rglob("*.html")}}


def pdf_text(pdf: Path, page: int | None = None) -> str:
    args = ["pdftotext", "-layout"]
    if page is not None:
        args += ["-f", str(page), "-l", str(page)]
    return subprocess.run([*args, str(pdf), "-"], capture_output=True,
                          text=True, check=True).stdout


def page_count(pdf: Path) -> int:
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True,
                          text=True, check=True).stdout
    return int(re.search(r"^Pages:\s+(\d+)", info, re.M).group(1))


def test_render_is_clean(book):
    warnings = [line for line in book["log"].splitlines()
                if re.search(r"\bWARN(ING)?\b", line)
                and TCP_NOTICE not in line]
    assert not warnings, "\n".join(warnings)


def test_the_pdf_is_the_report_in_the_assignments_order(book):
    """One PDF of at most 30 pages: the chapters that answer the
    assignment, in its order, and none of the part "Beyond the
    assignment", which only the HTML book holds."""
    assert len(book["pdfs"]) == 1, book["pdfs"]
    pdf = book["pdfs"][0]
    assert PDF_PAGES[0] <= page_count(pdf) <= PDF_PAGES[1]
    body = " ".join(pdf_text(pdf).split())
    toc_end = body.index("References", body.index("Table of contents"))
    at = [body.index(f"{n} {title}", toc_end) for n, title in enumerate(
        ("Data", "Architectures", "Training", "Selecting an architecture",
         "New clothes", "Conclusions"), 1)]
    assert at == sorted(at)
    assert "Beyond the assignment" not in body[:toc_end]
    assert any("Beyond the assignment" in page
               for page in book["html"].values())


def test_every_figure_is_in_the_html_and_scales(book):
    css = (book["out"] / "styles.css").read_text()
    assert re.search(r"img\.figure-img[^{]*\{[^}]*max-width:\s*100%", css)
    for chapter in QMD:
        page = book["html"][chapter.replace(".qmd", ".html")]
        assert 'href="' in page and "styles.css" in page, chapter
        for label in FIG_LABEL.findall(text(chapter)):
            match = re.search(rf'id="{label}".*?<img([^>]*)>', page, re.S)
            assert match, f"{chapter}: figure {label} missing from HTML"
            assert "figure-img" in match.group(1), label
        # a click shows each figure at full size, with no network
        figures = FIG_LABEL.findall(text(chapter))
        assert page.count('class="lightbox"') >= len(figures), chapter
        if figures:
            assert 'src="../site_libs/quarto-contrib/glightbox/' in page


def test_no_unresolved_references(book):
    for name, page in book["html"].items():
        body = re.sub(r"<script.*?</script>", "", page, flags=re.S)
        assert "?@" not in body, name
        assert not re.search(r">\?\?<|\?\?\s", body), name
        prose = re.sub(r"<pre.*?</pre>", "", body, flags=re.S)  # no code
        assert not CITATION_KEY.search(prose), name
    pdf = pdf_text(book["pdfs"][0])
    assert "?@" not in pdf and "??" not in pdf
    # a citation left as its key, e.g. in a table cell
    assert not CITATION_KEY.search(pdf), CITATION_KEY.search(pdf)


CITATION_KEY = re.compile(r"\[-?@[\w:-]+")


def test_every_inline_expression_was_evaluated(book):
    """An inline `{python} ...` that Quarto did not recognise (for one, a
    backtick right after a word) is printed as code instead of its value."""
    for name, page in book["html"].items():
        assert "{python}" not in page, name
    assert "{python}" not in pdf_text(book["pdfs"][0])


def test_math_needs_no_network(book):
    with_math = 0
    for name, page in book["html"].items():
        assert "mathjax" not in page.lower(), f"{name} loads MathJax"
        assert "katex" not in page.lower(), f"{name} loads KaTeX"
        with_math += "<math" in page
    assert with_math >= 2    # MathML, drawn by the browser


TOC_LINE = re.compile(r"^\s*(\S.*?)\s*(?:\.\s)*\.?\s*(\d+)\s*$")


def test_table_of_contents_page_numbers_are_printed_pages(book):
    """Every TOC entry's number is the printed number of the page its
    heading appears on (the LaTeX PDF once listed them one page early)."""
    pdf = book["pdfs"][0]
    pages = [pdf_text(pdf, i) for i in range(1, page_count(pdf) + 1)]
    toc = [i for i, p in enumerate(pages) if "Table of contents" in p]
    assert toc, "no table of contents"
    first = toc[0]
    last = first
    while re.search(r"\.\s\.\s\.", pages[last + 1]):   # leader dots
        last += 1
    entries = []
    for page in pages[first:last + 1]:
        for line in page.splitlines():
            m = TOC_LINE.match(line)
            # "Appendices" is a divider in the TOC, not a printed heading
            if (m and "Table of contents" not in line
                    and m.group(1).strip() != "Appendices"):
                title = " ".join(m.group(1).rstrip(" .").split())
                entries.append((title, int(m.group(2))))
    assert len(entries) >= 20, entries

    def printed(page: str) -> int | None:
        lines = [ln.strip() for ln in page.splitlines() if ln.strip()]
        return int(lines[-1]) if lines and lines[-1].isdigit() else None

    for title, number in entries:
        head = title[:40]
        hits = [i for i in range(last + 1, len(pages))
                if any(" ".join(ln.split()).startswith(head)
                       for ln in pages[i].splitlines())]
        assert hits, f"heading {title!r} not found in the PDF"
        assert printed(pages[hits[0]]) == number, (
            f"{title!r}: listed on page {number}, printed on "
            f"{printed(pages[hits[0]])}")


def test_no_text_runs_into_a_page_footer(book):
    """An overfull page (a float and text that LaTeX could not fit) is
    clipped at the bottom, into the page number: no word may reach it."""
    pdf = book["pdfs"][0]
    html = subprocess.run(["pdftotext", "-bbox", str(pdf), "-"],
                          capture_output=True, text=True, check=True).stdout
    word = re.compile(r'<word xMin="[\d.]+" yMin="([\d.]+)" xMax="[\d.]+" '
                      r'yMax="([\d.]+)">([^<]*)</word>')
    crowded = []
    for n, page in enumerate(html.split("<page ")[1:], 1):
        words = [(float(a), float(b), w) for a, b, w in word.findall(page)]
        numbers = [w for w in words if w[2] == str(n)]
        if not numbers:
            continue
        footer = max(numbers)                 # the lowest "n" on page n
        near = [w[2] for w in words if w is not footer
                and w[1] > footer[0] - 8]
        if near:
            crowded.append(f"p. {n}: {' '.join(near[:8])}")
    assert not crowded, "\n".join(crowded)
