#!/bin/bash
# The page-like pairs of runs/docs-md.jsonl (docs/model.md §24): Markdown documentation of 20 projects outside
# Python (JavaScript tools, PHP, Go, self-hosted apps, a help centre), taken from git mirrors, rendered to HTML
# by `revprompt datagen markdown-site` and read into pairs by `revprompt datagen doc-pages`, as the Sphinx
# sites of scripts/build_doc_sites.sh are.
#
#   scripts/build_markdown_sites.sh MIRRORS [WORK_DIR] [OUT_JSONL] [SET]
#       # defaults: runs/md-sites, runs/docs-md.jsonl, SET md1 (the 20 sites of docs-md); md2: 12 more (docs-md2)
#
# MIRRORS is a folder of bare git mirrors named OWNER+NAME/repo (the repository column below). A project whose
# mirror is missing is skipped. Blog posts, release notes, API references generated from code and other
# languages than English are left out (the exclude column, comma-separated, relative to the docs folder).
# None of these is a source of the web yardstick (../shared/data/web: the Rust book, the Cargo book, npm's docs).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
MIRRORS=$(realpath "${1:?usage: $0 MIRRORS [WORK_DIR] [OUT_JSONL]}")
WORK=$(realpath -m "${2:-$ROOT/runs/md-sites}")
OUT=$(realpath -m "${3:-$ROOT/runs/docs-md.jsonl}")
SET=${4:-md1}
RP="$ROOT/.venv/bin/revprompt"
mkdir -p "$WORK/src" "$WORK/html"
# repository  docs folder  name in the prompts (_ for a space)  excluded folders
MD1="
fastapi/fastapi docs/en/docs FastAPI release-notes.md,img,js,css
pydantic/pydantic docs Pydantic api,img,plugins,theme
vuejs/docs src Vue public,.vitepress
reactjs/react.dev src/content React blog,warnings,errors
gohugoio/hugoDocs content/en Hugo news,showcase
mkdocs/mkdocs docs MkDocs img
laravel/docs . Laravel -
obsidianmd/obsidian-help en Obsidian Attachments
prometheus/docs docs Prometheus -
vitejs/vite docs Vite blog,public,.vitepress
rclone/rclone docs/content rclone -
Homebrew/brew docs Homebrew governance,vale-styles
mastodon/documentation content/en Mastodon entities,methods
pi-hole/docs docs Pi-hole -
eslint/eslint docs/src ESLint _data,_includes,assets
webpack/webpack.js.org src/content webpack blog
jekyll/jekyll docs/_docs Jekyll -
11ty/11ty-website src/docs Eleventy -
cypress-io/cypress-documentation docs Cypress partials
sveltejs/svelte documentation/docs Svelte -
"
MD2="
denoland/docs . Deno lint,.github
traefik/traefik docs/content Traefik -
jellyfin/jellyfin.org docs Jellyfin -
expressjs/expressjs.com src/content/docs/en Express -
helm/helm-www docs Helm -
withastro/docs src/content/docs/en Astro -
logseq/docs pages Logseq -
prettier/prettier docs Prettier -
argoproj/argo-cd docs Argo_CD user-guide/commands,proposals
golang/website _content/doc Go -
caddyserver/website src/docs/markdown Caddy -
wagtail/wagtail docs Wagtail releases
"
case $SET in md1) SITES=$MD1 ;; md2) SITES=$MD2 ;; *) echo "SET is md1 or md2, not $SET" >&2; exit 2 ;; esac
sites=() names=()
while read -r repo docs display excludes; do
    [ -n "$repo" ] || continue
    mirror="$MIRRORS/${repo/\//+}/repo"
    [ -d "$mirror" ] || { echo "$display: no git mirror, skipped"; continue; }
    src="$WORK/src/${repo/\//+}"
    if [ ! -d "$src/$docs" ]; then  # the Markdown files only: a snapshot may lack its largest blobs (videos)
        mkdir -p "$src"
        git --git-dir="$mirror" ls-tree -r --name-only HEAD -- "$docs" | grep -E '\.(md|mdx|markdown)$' |
            SRC="$src" GIT_LITERAL_PATHSPECS=1 xargs -r -d '\n' sh -c 'git --git-dir="$0" archive HEAD -- "$@" | tar x -C "$SRC"' "$mirror"
    fi
    args=()
    [ "$excludes" = - ] || for e in ${excludes//,/ }; do args+=(--exclude "$e"); done
    [ -d "$WORK/html/$display" ] || "$RP" datagen markdown-site "$src/$docs" -o "$WORK/html/$display" "${args[@]}"
    sites+=("$WORK/html/$display") names+=(--name "$display=${display//_/ }")
done <<< "$SITES"
"$RP" datagen doc-pages "${sites[@]}" "${names[@]}" -o "$OUT"
