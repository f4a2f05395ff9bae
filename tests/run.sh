#!/usr/bin/env bash
# Set up a fresh machine (Python 3.11 + pip + git) and run the whole test suite.
# This is the test command README.md gives; .ci/run calls it.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check -e ".[test]"
exec python3 -m pytest "$@"
