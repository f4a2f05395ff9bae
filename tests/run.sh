#!/usr/bin/env bash
# Set up a fresh machine (Python 3.11 + pip + git) and run the whole test suite.
# This is the test command README.md gives; .ci/run calls it.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check -e ".[test]"
# Debian's Chromium for the browser tests (Playwright's own browser download cannot work
# here). Without it they skip on a developer's machine; under CI they fail instead.
bash tests/browser_setup.sh || [ -z "${CI:-}" ]
# Debian's PostgreSQL for the team-log tests (they start their own throwaway server from
# its programs). Without it they skip on a developer's machine; under CI they fail instead.
bash tests/pg_setup.sh || [ -z "${CI:-}" ]
# The guardrails first (configured in pyproject.toml): lint, then types, then the tests.
python3 -m ruff check wan_nb tests benchmarks notebooks
python3 -m mypy
# --full: the whole suite, the slow families too (plain `python -m pytest` is the fast tier)
exec python3 -m pytest --full "$@"
