#!/bin/bash
# The chat pairs of segment c3 (docs/model.md §25): answers of GPT-4, GPT-3.5 and Claude models to the real user
# prompts of LMSYS's Arena-Hard v0.1 (500) and its predecessor arena-bench-v1 (300), taken from the git history
# of a mirror of lm-sys/arena-hard-auto, imported with `revprompt datagen import --format fastchat`, exported one
# answering model at a time and cleaned one model at a time (so a prompt keeps every model's answer).
#
#   scripts/build_arena_pairs.sh MIRROR [WORK_DIR] [OUT_JSONL]
#       # defaults: runs/arena, runs/arena-clean.jsonl; MIRROR is the bare repository (…/lm-sys+arena-hard-auto/repo)
#
# No prompt of ../shared/data/dev or ../shared/data/train occurs in these files (checked on normalised text in
# session 25); arena-bench-v1's question file changed over its history, so every stored version is read and the
# first to name a question wins.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
M=$(realpath "${1:?usage: $0 MIRROR [WORK_DIR] [OUT_JSONL]}")
WORK=$(realpath -m "${2:-$ROOT/runs/arena}")
OUT=$(realpath -m "${3:-$ROOT/runs/arena-clean.jsonl}")
RP="$ROOT/.venv/bin/revprompt"
rm -rf "$WORK" && mkdir -p "$WORK/hard" "$WORK/bench"
DB="$WORK/arena.duckdb"

# the largest stored version of a path anywhere in the history
largest() { for c in $(git -C "$M" rev-list --all); do git -C "$M" ls-tree -r -l "$c" -- "$1"; done |
    awk '$4 != "-" {print $4, $3}' | sort -nr | head -1 | cut -d' ' -f2; }

git -C "$M" show HEAD:data/arena-hard-v0.1/question.jsonl > "$WORK/hard/question.jsonl"
for m in gpt-4-0314 gpt-4-0613 gpt-3.5-turbo-0125; do
    git -C "$M" show "HEAD:data/arena-hard-v0.1/model_answer/$m.jsonl" > "$WORK/hard/$m.jsonl"
    "$RP" datagen import "$WORK/hard/$m.jsonl" --questions "$WORK/hard/question.jsonl" --source "hard-$m" --db "$DB"
done
QS=()
i=0
for b in $(for c in $(git -C "$M" rev-list --all); do git -C "$M" ls-tree -r "$c" -- data/arena-bench-v1/question.jsonl; done |
    awk '{print $3}' | sort -u); do
    i=$((i + 1)) && git -C "$M" cat-file -p "$b" > "$WORK/bench/question-v$i.jsonl" && QS+=(--questions "$WORK/bench/question-v$i.jsonl")
done
for m in claude-1 claude-2 claude-2.1 claude-instant-1 gpt-3.5-turbo gpt-3.5-turbo-1106 gpt-4-0314 gpt-4-1106-preview \
    reference/gpt-4; do
    dir=model_answer && name=$m
    [[ $m == reference/* ]] && dir=reference_answer && m=${m#reference/} && name=reference-$m
    git -C "$M" cat-file -p "$(largest "data/arena-bench-v1/$dir/$m.jsonl")" > "$WORK/bench/$name.jsonl"
    "$RP" datagen import "$WORK/bench/$name.jsonl" "${QS[@]}" --source "bench-$name" --db "$DB"
done
: > "$OUT"
for s in hard-gpt-4-0314 hard-gpt-4-0613 hard-gpt-3.5-turbo-0125 bench-claude-1 bench-claude-2 bench-claude-2.1 \
    bench-claude-instant-1 bench-gpt-3.5-turbo bench-gpt-3.5-turbo-1106 bench-gpt-4-0314 bench-gpt-4-1106-preview \
    bench-reference-gpt-4; do
    "$RP" datagen export "$WORK/export-$s" --source "$s" --dev-fraction 0 --db "$DB" > /dev/null
    mv "$WORK/export-$s/train.jsonl" "$WORK/export-$s/$s.jsonl" # clean-pairs names each pair's source by its file
    "$RP" clean-pairs "$WORK/export-$s/$s.jsonl" -o "$WORK/clean-$s.jsonl" > /dev/null
    cat "$WORK/clean-$s.jsonl" >> "$OUT"
done
echo "$(wc -l < "$OUT") pairs in $OUT"
