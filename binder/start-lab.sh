#!/usr/bin/env bash
# The main job: install wan_nb and open the quickstart notebook in JupyterLab.
# With no WAVE_API_KEY set, the notebook runs on the built-in simulator.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check -e ".[lab]"
extra=()
[ "$(id -u)" = 0 ] && extra+=(--allow-root)
exec python3 -m jupyterlab notebooks/quickstart.ipynb "${extra[@]}" "$@"
