#!/usr/bin/env bash
# Set up revprompt in ./.venv on a fresh machine: the CPU build of torch first (a bare `torch` requirement
# would pull gigabytes of CUDA wheels), then the project with its test extras (and Ray, for `analyze --ray`). Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet "torch==2.13.0"
.venv/bin/python -m pip install --quiet -e ".[test,ray]"  # ray: `analyze --ray` and its tests (tests/test_ray.py)
# mypy reads the package as `revprompt` through this link (the checkout's folder has another name; pyproject.toml
# [tool.mypy]).
mkdir -p .venv/mypy && ln -sfn ../.. .venv/mypy/revprompt
# Headless Chromium for the report's browser test (tests/test_report.py): Debian packages, when we are root and
# apt is there. Quiet and never fatal: without it that one test is skipped and says why.
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && ! command -v chromedriver >/dev/null 2>&1; then
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; } \
        >/dev/null 2>&1 || echo "note: could not install chromium + chromium-driver (the report's browser test will be skipped)" >&2
fi
echo "revprompt is installed in .venv (try: .venv/bin/revprompt --help)" >&2
