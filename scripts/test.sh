#!/usr/bin/env bash
# Set up the environment (first run only) and run the test suite.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k data`.
source "$(dirname "$0")/env.sh"
exec python -m pytest "$@"
