# Sourced by test.sh and report.sh: create or refresh .venv from the lock.
# PYTHON chooses the interpreter (Python >= 3.10; default: python3).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-python3}
VENV=${AECORE_VENV:-.venv}
stamp="$VENV/.aecore-stamp"
want=$(cat requirements.lock pyproject.toml "${BASH_SOURCE[0]}" | sha256sum | cut -c1-16)
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  "$PYTHON" -c 'import sys; assert sys.version_info >= (3, 10), "Python >= 3.10 needed"'
  echo "setting up $VENV (first time: about 2 minutes, torch is large)"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -c requirements.lock -e ".[dev]"
  # jupyter-events asks for jsonschema[format-nongpl], which brings
  # rfc3987-syntax; jsonschema imports it when present, and it builds a
  # Lark grammar at import: 1.1 s in every Jupyter process Quarto starts
  # (one per chapter). Nothing here checks IRI formats without it.
  "$VENV/bin/python" -m pip uninstall -q -y rfc3987-syntax
  echo "$want" > "$stamp"
fi
export PATH="$PWD/$VENV/bin:$PATH"
export QUARTO_PYTHON="$PWD/$VENV/bin/python"
