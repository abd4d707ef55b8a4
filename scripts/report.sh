#!/usr/bin/env bash
# Set up the environment, train every stored result the book needs that is
# missing or stale, then render the book with Quarto: HTML and a PDF via
# LaTeX, into _book/. Extra arguments go to `quarto render`, e.g.
# `bash scripts/report.sh --to html`.
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

status=0
if [ $# -eq 0 ] && ! command -v lualatex >/dev/null 2>&1 \
   && ! command -v xelatex >/dev/null 2>&1 && ! command -v pdflatex >/dev/null 2>&1 \
   && [ ! -d "$HOME/.TinyTeX" ]; then
  echo "report.sh: no TeX installation, so only the HTML is rendered." \
       "For the PDF run \`quarto install tinytex\` once, then this command again." >&2
  set -- --to html
  status=1
fi
quarto render "$@"
mkdir -p _freeze && echo "$stamp" > _freeze/.aecore-stamp
exit $status
