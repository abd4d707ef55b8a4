"""What chapters print, without torch: labels, numbers with a true
minus sign, Markdown tables sized for the PDF, and aecore's own source
code as listings. `report` re-exports what the chapters use; the
chapters that only print stored numbers (the preface, the conclusions)
use this module directly."""

from __future__ import annotations

import re
import statistics

from IPython.display import Markdown

LABELS = {"shallow": "Shallow MLP", "deep": "Deep MLP",
          "conv": "Conv AE", "resconv": "Residual conv AE",
          "vae": "Conv VAE", "tf-dense": "TF tutorial dense",
          "tf-denoiser": "TF tutorial denoiser", "denoiser": "Wide denoiser"}
ACT_LABELS = {"relu": "ReLU", "gelu": "GELU", "sigmoid": "Sigmoid",
              "tanh": "Tanh", "silu": "SiLU"}
METRIC_NAMES = {
    "mse": "MSE", "psnr": "PSNR (dB)", "pixel_acc": "pixel acc.",
    "fg_pixel_acc": "foreground pixel acc.",
    "recog_acc": "recognition acc.",
}


def mean_std(values) -> tuple[float, float]:
    values = list(values)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return statistics.fmean(values), sd


_HYPHEN_MINUS = re.compile(r"(?<![\w.])-(?=\.?\d)")


def minus(text: str) -> str:
    """Negative numbers in `text` with a true minus sign (U+2212) instead
    of the hyphen that Python prints, which typesets short."""
    return _HYPHEN_MINUS.sub("\u2212", str(text))


def signed(x: float, spec: str) -> str:
    """`format(x, spec)` (for example "+.1%"), with a true minus sign; a
    value that rounds to zero prints unsigned ("0.0%", not "−0.0%")."""
    out = format(x, spec)
    if not re.search(r"[1-9]", out):
        out = out.lstrip("+-")
    return minus(out)


def fmt(mean, sd, digits) -> str:
    """"mean ± sd" at `digits` decimals; a standard deviation too small
    to show at that precision reads "<0.001", never a bare zero."""
    if 0 < sd < 0.5 * 10 ** -digits:
        return f"{mean:.{digits}f} ± <{10 ** -digits:.{digits}f}"
    return f"{mean:.{digits}f} ± {sd:.{digits}f}"


# A table this many columns wide is set smaller and tighter in the PDF
# (the LaTeX macros are defined in _quarto.yml), so that it fits the
# text width; when kept whole it is then spread to that width, so 1.5 pt
# is only the least padding. HTML ignores raw LaTeX.
WIDE_COLUMNS = 8
WIDE_TABLE = ("```{=latex}\n\\renewcommand{\\aetablesize}{\\scriptsize}"
              "\\setlength{\\aetabcolsep}{1.5pt}\n```\n\n")
NORMAL_TABLE = ("\n\n```{=latex}\n\\renewcommand{\\aetablesize}"
                "{\\footnotesize}\\setlength{\\aetabcolsep}{4pt}\n```\n")


def fit_width(table: str, columns: int) -> str:
    """`table` (Markdown), wrapped so that the PDF sets it smaller when
    it has at least WIDE_COLUMNS columns."""
    if columns < WIDE_COLUMNS:
        return table
    return WIDE_TABLE + table + NORMAL_TABLE


def markdown_table(header: list[str], rows: list[list],
                   align: str | None = None, keep=True) -> Markdown:
    """A pipe table. `align` has one letter per column (l, r, c); by
    default the first column is left-aligned and the others right-aligned.

    In the PDF a short table is kept whole: it is marked `whole`, which
    filters/whole-tables.lua sets as a float that LaTeX moves to where it
    fits while the text fills the page (a `wide` one, of WIDE_COLUMNS
    columns or more, spreads its columns over the text width).
    `keep=False`, or a table too long for one page, stays a `longtable`
    that may break across pages.
    """
    align = align or "l" + "r" * (len(header) - 1)
    marks = {"l": ":---", "r": "---:", "c": ":---:"}
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join(marks[a] for a in align) + "|"]
    lines += ["| " + " | ".join(minus(c) for c in row) + " |"
              for row in rows]
    table = "\n".join(lines)
    if keep and len(rows) <= MAX_WHOLE_ROWS:
        wide = " .wide" if len(header) >= WIDE_COLUMNS else ""
        table = f"::: {{.whole{wide}}}\n\n{table}\n\n:::"
    return Markdown(fit_width(table, len(header)))


MAX_WHOLE_ROWS = 25   # a longer table may break across pages


MIN_PIECE = 8     # lines: a listing is never cut into shorter pieces
MAX_WHOLE = 50    # lines: a longer piece may break anywhere (see below)
# A code block in a box that LaTeX cannot break: it goes to the next page
# exactly when it does not fit on this one (no estimate involved). The
# paragraph holding the box ends with no \parfillskip, whose minimum
# (1 em, from the parskip package) would make the line overfull.
UNBREAKABLE = ("```{{=latex}}\n\\par\\noindent\\begin{{minipage}}"
               "{{\\linewidth}}\n```\n\n{}\n```{{=latex}}\n"
               "\\end{{minipage}}{{\\parfillskip=0pt\\par}}\n```\n")


# Between two pieces of one listing: no paragraph skip and no interline
# glue, so that pieces on the same page form one continuous shaded box
# (the boxes' own padding stands for the blank line cut at).
JOINED = "```{=latex}\n\\vspace{-\\parskip}\\nointerlineskip\n```\n\n"


def break_points(text: str) -> list[int]:
    """Indices of the lines of `text` (one function or class) where a
    page may break: a line that starts a statement (or its decorators)
    right after a blank line, so never inside an expression."""
    import ast
    import textwrap
    starts = set()
    for node in ast.walk(ast.parse(textwrap.dedent(text))):
        if isinstance(node, ast.stmt):
            decorators = getattr(node, "decorator_list", [])
            starts.add(min([node.lineno] + [d.lineno for d in decorators]))
    lines = text.split("\n")
    return [i for i in range(1, len(lines))
            if not lines[i - 1].strip() and i + 1 in starts]


def pieces(text: str) -> list[str]:
    """`text` cut at its break points into pieces of at least MIN_PIECE
    lines; the first piece holds the header, docstring and the first
    statement after them."""
    lines = text.split("\n")
    cuts = [0, *break_points(text), len(lines)]
    parts = [lines[a:b] for a, b in zip(cuts, cuts[1:])]
    out = [parts[0] + (parts[1] if len(parts) > 1 else [])]
    for part in parts[2:]:
        if len(out[-1]) < MIN_PIECE:
            out[-1] += part
        else:
            out.append(part)
    if len(out) > 1 and len(out[-1]) < MIN_PIECE:
        last = out.pop()
        out[-1] += last
    return ["\n".join(p).strip("\n") for p in out]


def source(*objects) -> Markdown:
    """The source code of aecore functions or classes, read from the
    package when the chapter runs (so it can never drift from the code
    that produced the results): one Python code block per object.

    In the PDF a listing is set as its `pieces`, each in a box LaTeX
    cannot break (`UNBREAKABLE`): a page breaks only between two statements
    after a blank line (between methods, say), never mid-expression, and
    a long listing does not leave the rest of a page empty. The HTML
    shows each listing as one block."""
    import inspect
    html, pdf = [], []
    for o in objects:
        text = inspect.getsource(o).rstrip()
        html.append(f"```python\n{text}\n```\n")
        for k, piece in enumerate(pieces(text)):
            block = f"```python\n{piece}\n```\n"
            if piece.count("\n") < MAX_WHOLE:
                block = UNBREAKABLE.format(block)
            pdf.append(JOINED + block if k else block)
    return Markdown(
        '::: {.content-visible when-format="html"}\n\n'
        + "\n".join(html) + "\n:::\n\n"
        + '::: {.content-visible when-format="pdf"}\n\n'
        + "\n".join(pdf) + "\n:::\n")
