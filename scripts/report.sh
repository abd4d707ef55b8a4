#!/usr/bin/env bash
# Set up the environment, train every stored result the book needs that is
# missing or stale, then render with Quarto: the whole book as HTML into
# _book/ (`quarto render`), then the submitted report as a PDF via LaTeX
# (`quarto render --profile report --to pdf`, into _report/), copied to
# _book/ beside the HTML. `bash scripts/report.sh html` renders the HTML
# only, `bash scripts/report.sh pdf` the PDF only.
source "$(dirname "$0")/env.sh"
python -m aecore train-all --plan book

if ! command -v quarto >/dev/null 2>&1; then
  echo "quarto is not on PATH: installing the quarto-cli package into $VENV"
  if ! python -m pip install -q -c requirements.lock quarto-cli \
       || ! command -v quarto >/dev/null 2>&1; then
    echo "report.sh: Quarto could not be installed (pip install quarto-cli" \
         "failed), so the results are ready but the book is not rendered." \
         "Install Quarto >= 1.5 from https://quarto.org/docs/get-started/" \
         "and run this command again; the training step will be skipped." >&2
    exit 1
  fi
fi

# Freeze tracks only each chapter's own source. When aecore, the stored
# results or the lock change, the frozen outputs are stale: drop them.
# (results/cache/ is left out: it is derived from the rest, and the
# chapters rewrite it while they execute.)
stamp=$(cat aecore/*.py requirements.lock \
        $(find results -name '*.json' -not -path 'results/cache/*' | sort) \
        | sha256sum | cut -c1-16)
if [ -d _freeze ] && [ "$(cat _freeze/.aecore-stamp 2>/dev/null)" != "$stamp" ]; then
  echo "aecore or results/ changed since the last render: executing every chapter again"
  rm -rf _freeze
fi

what=${1:-both}
case "$what" in both|html|pdf) ;; *)
  echo "report.sh: unknown argument '$what': use html, pdf or nothing (both)" >&2
  exit 2;; esac
status=0
if [ "$what" != html ] && ! command -v lualatex >/dev/null 2>&1 \
   && ! command -v xelatex >/dev/null 2>&1 && ! command -v pdflatex >/dev/null 2>&1 \
   && [ ! -d "$HOME/.TinyTeX" ]; then
  echo "report.sh: no TeX installation, so only the HTML is rendered." \
       "For the PDF run \`quarto install tinytex\` once, then this command again." >&2
  what=html
  status=1
fi
# The HTML first: rendering _book/ clears it.
if [ "$what" != pdf ]; then
  quarto render
fi
if [ "$what" != html ]; then
  quarto render --profile report --to pdf
  mkdir -p _book && cp _report/*.pdf _book/
fi
mkdir -p _freeze && echo "$stamp" > _freeze/.aecore-stamp
exit $status
