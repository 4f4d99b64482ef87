#!/usr/bin/env bash
# Set up revprompt in ./.venv on a fresh machine: the CPU build of torch first (a bare `torch` requirement
# would pull gigabytes of CUDA wheels), then the project with its test extras. Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet "torch==2.13.0"
.venv/bin/python -m pip install --quiet -e ".[test]"
echo "revprompt is installed in .venv (try: .venv/bin/revprompt --help)" >&2
