#!/bin/bash
# Rebuild the page-like pairs of runs/docs-v1.jsonl (docs/model.md, session 17): the documentation sources that
# 35 projects ship in their PyPI sdists, built to HTML by Sphinx with one generic configuration
# (datagen/sphinx_generic/conf.py: no project extensions; roles and directives plain Sphinx lacks become
# generic ones, changelogs, release notes and API folders are left out), then read into pairs by
# `revprompt datagen doc-pages`. Needs the package index only (sdists from PyPI's JSON API).
#
#   scripts/build_doc_sites.sh [WORK_DIR] [OUT_JSONL]      # defaults: runs/doc-sites, runs/docs-v1.jsonl
#
# Where pypi.org's JSON API cannot be reached (a machine that sees only a local index of wheels), set
# DOC_SOURCES_GIT to a folder of bare git mirrors named OWNER+NAME/repo (the GitHub column below; `-`: none):
# each project's docs folder is then taken from its mirror's HEAD instead of the sdist, and projects without a
# mirror are skipped. The pages are those of the projects' current sources, not of the versions listed. Rows
# whose version is `-` were added for docs-v6 (session 22) and come only from their git mirror.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(realpath -m "${1:-$ROOT/runs/doc-sites}")  # absolute: the script works inside WORK
OUT=$(realpath -m "${2:-$ROOT/runs/docs-v1.jsonl}")
mkdir -p "$WORK/sd" "$WORK/x" "$WORK/html" "$WORK/logs"
cd "$WORK"
[ -x venv/bin/sphinx-build ] || { python3 -m venv venv && venv/bin/pip install -q "sphinx==9.0.4" "myst-parser==5.2.0"; }

# name  sdist version  docs folder inside the sdist  name in the prompts (as docs-v1 was built)  GitHub repository
SITES="
aiohttp 3.14.5 docs aiohttp aio-libs/aiohttp
alembic 1.20.1 docs/build Alembic sqlalchemy/alembic
astropy 8.0.2 docs astropy astropy/astropy
attrs 26.1.0 docs attrs python-attrs/attrs
beautifulsoup4 4.15.0 doc bs4 -
black 26.10.1 docs Black psf/black
celery 5.7.0 docs Celery celery/celery
cherrypy 18.10.0 docs cherrypy cherrypy/cherrypy
click 8.5.1 docs Click pallets/click
cryptography 50.0.2 docs cryptography pyca/cryptography
django 6.1.3 docs Django django/django
docutils 0.23 docs docutils -
falcon 4.4.0 docs falcon falconry/falcon
flask 3.1.3 docs Flask pallets/flask
ipython 9.18.1 docs/source ipython ipython/ipython
jinja2 3.1.6 docs Jinja pallets/jinja
marshmallow 4.4.0 docs marshmallow marshmallow-code/marshmallow
mypy 2.4.1 docs/source mypy python/mypy
mypy 2.4.1 mypyc/doc mypyc python/mypy
peewee 4.5.3 docs peewee coleifer/peewee
pillow 13.0.0 docs pillow python-pillow/Pillow
pip 26.3 docs/html pip pypa/pip
pyramid 2.1 docs Pyramid Pylons/pyramid
pytest 9.2.0 doc/en pytest pytest-dev/pytest
scrapy 2.19.0 docs Scrapy scrapy/scrapy
setuptools 84.2.1 docs setuptools pypa/setuptools
sphinx 9.2.0 doc Sphinx sphinx-doc/sphinx
sqlalchemy 2.1.9 doc/build SQLAlchemy sqlalchemy/sqlalchemy
sympy 1.14.0 doc/src sympy sympy/sympy
tornado 6.6.1 docs tornado tornadoweb/tornado
trio 0.35.0 docs/source trio python-trio/trio
twisted 26.10.0 docs Twisted twisted/twisted
urllib3 2.8.0 docs urllib3 urllib3/urllib3
waitress 3.0.2 docs waitress Pylons/waitress
werkzeug 3.1.9 docs Werkzeug pallets/werkzeug
coverage - doc coverage.py nedbat/coveragepy
hypothesis - hypothesis/docs Hypothesis HypothesisWorks/hypothesis
packaging-guide - source packaging pypa/packaging.python.org
paramiko - sites/docs Paramiko paramiko/paramiko
redis - docs redis-py redis/redis-py
requests - docs Requests psf/requests
tox - docs tox tox-dev/tox
"
sites=() names=()
while read -r pkg version docs display github; do
    [ -n "$pkg" ] || continue
    src="x/$pkg-$version"
    if [ -n "${DOC_SOURCES_GIT:-}" ]; then
        mirror="$DOC_SOURCES_GIT/${github/\//+}/repo"
        [ "$github" != - ] && [ -d "$mirror" ] || { echo "$display: no git mirror, skipped"; continue; }
        src="x/$pkg-git"
        [ -d "$src/$docs" ] || { mkdir -p "$src" && git --git-dir="$mirror" archive HEAD "$docs" | tar x -C "$src"; }
    elif [ "$version" = - ]; then
        echo "$display: from git only (DOC_SOURCES_GIT), skipped"; continue
    elif [ ! -d "$src" ]; then
        url=$(curl -sf "https://pypi.org/pypi/$pkg/$version/json" | python3 -c "
import json, sys, urllib.parse
d = json.load(sys.stdin)
print(next(urllib.parse.urljoin('https://pypi.org/pypi/', u['url']) for u in d['urls'] if u['packagetype'] == 'sdist'))")
        curl -sfL -o "sd/$pkg-$version.tar.gz" "$url"
        tar xzf "sd/$pkg-$version.tar.gz" -C x
        [ -d "$src" ] || mv "x/$(tar tzf "sd/$pkg-$version.tar.gz" | head -1 | cut -d/ -f1)" "$src"
    fi
    site="$display"
    if [ ! -d "html/$site" ]; then
        DG_PROJECT=$display venv/bin/sphinx-build -q -b html -j 2 -c "$ROOT/datagen/sphinx_generic" -E \
            -d "$WORK/doctrees/$site" "$src/$docs" "html/$site" > "logs/$site.log" 2>&1 || echo "$site: build failed"
    fi
    echo "$site: $(find "html/$site" -name '*.html' | wc -l) pages"
    sites+=("html/$site")
done <<< "$SITES"
"$ROOT/.venv/bin/revprompt" datagen doc-pages "${sites[@]}" -o "$OUT"
