#!/usr/bin/env bash
# Set up the environment, train every stored result the book needs that is
# missing or stale, then render the book with Quarto (HTML, PDF, Typst).
# Extra arguments go to `quarto render`, e.g. `bash scripts/report.sh --to html`.
source "$(dirname "$0")/env.sh"
python -m aecore train-all --plan book
if ! command -v quarto >/dev/null 2>&1; then
  echo "Quarto is not installed: the results are ready, but the book cannot be" >&2
  echo "rendered. Install Quarto >= 1.5 from https://quarto.org/docs/get-started/" >&2
  echo "and run this command again (the training step will be skipped)." >&2
  exit 1
fi
exec quarto render "$@"
