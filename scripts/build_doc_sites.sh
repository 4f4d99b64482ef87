#!/bin/bash
# Rebuild the page-like pairs of runs/docs-v1.jsonl (docs/model.md, session 17): the documentation sources that
# 35 projects ship in their PyPI sdists, built to HTML by Sphinx with one generic configuration
# (datagen/sphinx_generic/conf.py: no project extensions; roles and directives plain Sphinx lacks become
# generic ones, changelogs, release notes and API folders are left out), then read into pairs by
# `revprompt datagen doc-pages`. Needs the package index only (sdists from PyPI's JSON API).
#
#   scripts/build_doc_sites.sh [WORK_DIR] [OUT_JSONL]      # defaults: runs/doc-sites, runs/docs-v1.jsonl
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${1:-$ROOT/runs/doc-sites}
OUT=${2:-$ROOT/runs/docs-v1.jsonl}
mkdir -p "$WORK/sd" "$WORK/x" "$WORK/html" "$WORK/logs"
cd "$WORK"
[ -x venv/bin/sphinx-build ] || { python3 -m venv venv && venv/bin/pip install -q "sphinx==9.0.4" "myst-parser==5.2.0"; }

# name  sdist version  docs folder inside the sdist  name in the prompts (as docs-v1 was built)
SITES="
aiohttp 3.14.5 docs aiohttp
alembic 1.20.1 docs/build Alembic
astropy 8.0.2 docs astropy
attrs 26.1.0 docs attrs
beautifulsoup4 4.15.0 doc bs4
black 26.10.1 docs Black
celery 5.7.0 docs Celery
cherrypy 18.10.0 docs cherrypy
click 8.5.1 docs Click
cryptography 50.0.2 docs cryptography
django 6.1.3 docs Django
docutils 0.23 docs docutils
falcon 4.4.0 docs falcon
flask 3.1.3 docs Flask
ipython 9.18.1 docs/source ipython
jinja2 3.1.6 docs Jinja
marshmallow 4.4.0 docs marshmallow
mypy 2.4.1 docs/source mypy
mypy 2.4.1 mypyc/doc mypyc
peewee 4.5.3 docs peewee
pillow 13.0.0 docs pillow
pip 26.3 docs/html pip
pyramid 2.1 docs Pyramid
pytest 9.2.0 doc/en pytest
scrapy 2.19.0 docs Scrapy
setuptools 84.2.1 docs setuptools
sphinx 9.2.0 doc Sphinx
sqlalchemy 2.1.9 doc/build SQLAlchemy
sympy 1.14.0 doc/src sympy
tornado 6.6.1 docs tornado
trio 0.35.0 docs/source trio
twisted 26.10.0 docs Twisted
urllib3 2.8.0 docs urllib3
waitress 3.0.2 docs waitress
werkzeug 3.1.9 docs Werkzeug
"
sites=() names=()
while read -r pkg version docs display; do
    [ -n "$pkg" ] || continue
    src="x/$pkg-$version"
    if [ ! -d "$src" ]; then
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
