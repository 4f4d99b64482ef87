"""Load existing (prompt, response) sets into datagen_pairs: plain JSON/JSONL, Alpaca, ShareGPT and FastChat shapes.

Files may be JSON Lines, a JSON array, or a JSON object holding the array under "data"/"rows"/"examples";
`.gz` files are read transparently. A record that lacks a field is skipped and counted, never guessed at.
"""

from __future__ import annotations

import gzip
import io
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..core.errors import UserError
from .tables import DatagenTables

FORMATS = ("auto", "pairs", "alpaca", "sharegpt", "fastchat")
CHUNK = 5000
_MAX_SKIP_EXAMPLES = 3


class SkipRecord(Exception):
    """This record cannot become a pair; the message says why (counted, not fatal)."""


def get_field(record: dict, path: str):
    """Read a dotted path ("answer.text", "choices.0.text") from nested dicts and lists."""
    value = record
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.lstrip("-").isdigit() and -len(value) <= int(part) < len(value):
            value = value[int(part)]
        else:
            raise SkipRecord(f"missing field '{path}'")
    return value


def _text(value, name: str) -> str:
    if not isinstance(value, str):
        raise SkipRecord(f"field '{name}' is not text")
    if not value.strip():
        raise SkipRecord(f"field '{name}' is empty")
    return value.strip()


@dataclass
class PairsShape:
    """Records with a prompt field and a response field (names configurable, dotted paths allowed)."""

    prompt_field: str = "prompt"
    response_field: str = "response"

    def extract(self, record: dict) -> tuple[str, str]:
        return (
            _text(get_field(record, self.prompt_field), self.prompt_field),
            _text(get_field(record, self.response_field), self.response_field),
        )


@dataclass
class AlpacaShape:
    """{"instruction", "input", "output"}: the prompt is the instruction, then the input after a blank line."""

    def extract(self, record: dict) -> tuple[str, str]:
        instruction = _text(get_field(record, "instruction"), "instruction")
        extra = record.get("input") or ""
        prompt = f"{instruction}\n\n{extra.strip()}" if isinstance(extra, str) and extra.strip() else instruction
        return prompt, _text(get_field(record, "output"), "output")


_USER_ROLES = {"human", "user"}
_ASSISTANT_ROLES = {"gpt", "assistant", "model", "chatgpt", "bing", "bard"}


@dataclass
class ShareGPTShape:
    """{"conversations": [{"from": "human", "value"}, {"from": "gpt", "value"}, ...]} or OpenAI-style
    {"messages": [{"role": "user", "content"}, ...]}.

    Only the first user turn and the answer to it become a pair: later turns lean on the conversation
    before them, so on their own they are not prompts that produced those answers.
    """

    def extract(self, record: dict) -> tuple[str, str]:
        turns = record.get("conversations", record.get("messages"))
        if not isinstance(turns, list):
            raise SkipRecord("missing field 'conversations' (or 'messages')")
        turns = [t for t in turns if isinstance(t, dict) and _role(t) != "system"]
        for i, turn in enumerate(turns[:-1]):
            if _role(turn) in _USER_ROLES:
                answer = turns[i + 1]
                if _role(answer) not in _ASSISTANT_ROLES:
                    raise SkipRecord("first user turn is not followed by an assistant turn")
                return _text(_content(turn), "value"), _text(_content(answer), "value")
        raise SkipRecord("no user turn followed by an answer")


@dataclass
class FastChatShape:
    """FastChat's benchmark answers (MT-bench, Arena-Hard: `model_answer/*.jsonl`), joined to their questions.

    An answer record holds {"question_id", "model_id", "choices": [{"turns": [...]}]}; the prompt is in a
    separate question file, {"question_id", "turns": [...]}, so `questions` maps question_id to its first turn.
    A turn is a string or {"content": ...} (both dialects occur). Only the first turn and its answer become a
    pair, as for ShareGPT: MT-bench's second turns lean on the first.
    """

    questions: dict[str, tuple[str, str | None]]

    def extract(self, record: dict) -> tuple[str, str]:
        qid = record.get("question_id")
        if qid is None:
            raise SkipRecord("missing field 'question_id'")
        if str(qid) not in self.questions:
            raise SkipRecord("question_id not in the --questions files")
        answer = get_field(record, "choices.0.turns.0")
        return self.questions[str(qid)][0], _text(_turn_text(answer), "choices.0.turns.0")

    def model(self, record: dict) -> str | None:
        return _str_or_none(record.get("model_id"))

    def category(self, record: dict) -> str | None:
        return self.questions.get(str(record.get("question_id")), ("", None))[1]


def _turn_text(turn):
    return turn.get("content") if isinstance(turn, dict) else turn


def load_fastchat_questions(paths) -> dict[str, tuple[str, str | None]]:
    """question_id -> (first turn, category) from FastChat question files; the first file to name an id wins."""
    questions: dict[str, tuple[str, str | None]] = {}
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise UserError(f"no such file: {path}")
        good = 0
        for _, record in read_records(path):
            if not isinstance(record, dict) or "question_id" not in record:
                continue
            try:
                text = _text(_turn_text(get_field(record, "turns.0")), "turns.0")
            except SkipRecord:
                continue
            questions.setdefault(str(record["question_id"]), (text, _str_or_none(record.get("category"))))
            good += 1
        if not good:
            raise UserError(f'{path}: no FastChat questions in it (records with "question_id" and "turns")')
    return questions


def _role(turn: dict) -> str:
    return str(turn.get("from", turn.get("role", ""))).lower()


def _content(turn: dict):
    content = turn.get("value", turn.get("content"))
    if isinstance(content, list):  # OpenAI content parts: [{"type": "text", "text": ...}]
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content


def detect_shape(record: dict, prompt_field: str, response_field: str, questions=None):
    if isinstance(record, dict):
        if "question_id" in record and "choices" in record:
            if questions is None:
                raise UserError("these are FastChat answers: name their question file with --questions")
            return FastChatShape(questions)
        if "instruction" in record and "output" in record:
            return AlpacaShape()
        if isinstance(record.get("conversations"), list) or isinstance(record.get("messages"), list):
            return ShareGPTShape()
    return PairsShape(prompt_field, response_field)


def make_shape(fmt: str, prompt_field: str, response_field: str, questions=None):
    if fmt == "fastchat":
        if questions is None:
            raise UserError("--format fastchat needs the question file: --questions question.jsonl")
        return FastChatShape(questions)
    if fmt == "pairs":
        return PairsShape(prompt_field, response_field)
    if fmt == "alpaca":
        return AlpacaShape()
    if fmt == "sharegpt":
        return ShareGPTShape()
    return None  # auto: decided from the first record


def read_records(path: Path) -> Iterator[tuple[int, object]]:
    """(position, record) for each record: line numbers for JSONL, 1-based indexes for JSON arrays.

    A line that is not JSON comes back as (line, SkipRecord) so the importer can count it and go on.
    """
    opener = gzip.open if path.suffix == ".gz" else open
    if path.name.lower().removesuffix(".gz").endswith((".jsonl", ".ndjson")):
        with opener(path, "rt", encoding="utf-8") as handle:  # streamed: JSONL files can be large
            yield from _json_lines(handle)
        return
    with opener(path, "rt", encoding="utf-8") as handle:
        head = handle.read(1)
        while head and head.isspace():
            head = handle.read(1)
        if head in ("[", "{"):
            rest = handle.read()
            try:
                data = json.loads(head + rest)
            except json.JSONDecodeError:
                # Not one JSON document: maybe JSON Lines whose first line is an object.
                if head != "{":
                    raise UserError(f"{path}: not valid JSON or JSON Lines") from None
                yield from _json_lines(io.StringIO(head + rest))
                return
            if isinstance(data, dict):
                for key in ("data", "rows", "examples", "records", "items"):
                    if isinstance(data.get(key), list):
                        data = data[key]
                        break
                else:
                    data = [data]
            if not isinstance(data, list):
                raise UserError(f"{path}: expected a JSON array of records")
            yield from enumerate(data, start=1)
        elif head:
            raise UserError(f"{path}: expected JSON or JSON Lines (file starts with {head!r})")


def _json_lines(handle) -> Iterator[tuple[int, object]]:
    for lineno, line in enumerate(handle, start=1):
        if not line.strip():
            continue
        try:
            yield lineno, json.loads(line)
        except json.JSONDecodeError as exc:
            yield lineno, SkipRecord(f"not valid JSON ({exc.msg})")


@dataclass
class ImportReport:
    path: str
    shape: str = ""
    read: int = 0
    added: int = 0
    skipped: int = 0
    skip_reasons: Counter = field(default_factory=Counter)
    skip_examples: list[str] = field(default_factory=list)

    @property
    def duplicates(self) -> int:
        return self.read - self.skipped - self.added


class _FileImport:
    """The state of importing one file: the shape (fixed by the first good record), the pending chunk, counts."""

    def __init__(
        self,
        tables: DatagenTables,
        path: Path,
        shape,
        source: str,
        model: str | None,
        model_field: str,
        prompt_field: str,
        response_field: str,
        questions: dict | None = None,
    ):
        self.tables, self.path, self.shape = tables, path, shape
        self.questions = questions
        self.source, self.model, self.model_field = source, model, model_field
        self.prompt_field, self.response_field = prompt_field, response_field
        self.report = ImportReport(str(path))
        self.chunk: list[dict] = []

    def take(self, position: int, record) -> None:
        self.report.read += 1
        try:
            if isinstance(record, SkipRecord):
                raise record
            if not isinstance(record, dict):
                raise SkipRecord("record is not a JSON object")
            if self.shape is None:
                self.shape = detect_shape(record, self.prompt_field, self.response_field, self.questions)
            prompt, response = self.shape.extract(record)
        except SkipRecord as why:
            self.report.skipped += 1
            self.report.skip_reasons[str(why)] += 1
            if len(self.report.skip_examples) < _MAX_SKIP_EXAMPLES:
                self.report.skip_examples.append(f"record {position}: {why}")
            return
        meta = {"file": self.path.name, "record": position}
        if isinstance(record.get("id"), (str, int)):
            meta["id"] = record["id"]
        fastchat = isinstance(self.shape, FastChatShape)
        if fastchat:
            meta["question_id"] = str(record["question_id"])
        self.chunk.append(
            {
                "prompt": prompt,
                "response": response,
                "source": self.source,
                "model": self.model
                or (self.shape.model(record) if fastchat else _str_or_none(record.get(self.model_field))),
                "category": self.shape.category(record) if fastchat else _str_or_none(record.get("category")),
                "meta": meta,
            }
        )
        if len(self.chunk) >= CHUNK:
            self.flush()

    def flush(self) -> None:
        if self.chunk:
            with self.tables.store.transaction():
                self.report.added += self.tables.insert_pairs(self.chunk)
            self.chunk.clear()


def _str_or_none(value) -> str | None:
    return value if isinstance(value, str) else None


def import_file(
    tables: DatagenTables,
    path: str | Path,
    fmt: str = "auto",
    prompt_field: str = "prompt",
    response_field: str = "response",
    source: str | None = None,
    model: str | None = None,
    model_field: str = "model",
    questions: dict | None = None,
) -> ImportReport:
    """Import one file, committing every 5,000 pairs as it goes. Returns what happened.

    `questions` (from `load_fastchat_questions`) is what FastChat answer files are joined to."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no such file: {path}")
    if fmt not in FORMATS:
        raise UserError(f"unknown format {fmt!r} (choose from {', '.join(FORMATS)})")
    job = _FileImport(
        tables,
        path,
        make_shape(fmt, prompt_field, response_field, questions),
        source or path.name.split(".")[0],
        model,
        model_field,
        prompt_field,
        response_field,
        questions,
    )
    try:
        for position, record in read_records(path):
            job.take(position, record)
    except (UnicodeDecodeError, OSError, EOFError) as exc:
        job.flush()  # keep what was read before the damage
        raise UserError(
            f"{path}: cannot read past record {job.report.read} ({type(exc).__name__}); "
            f"{job.report.added} pairs were imported"
        ) from None
    job.flush()
    report = job.report
    report.shape = type(job.shape).__name__.removesuffix("Shape").lower() if job.shape else fmt
    if report.read and report.skipped == report.read:
        top = report.skip_reasons.most_common(1)[0][0]
        raise UserError(
            f"{path}: no record could be imported ({top}); pick --format or name the fields with "
            f"--prompt-field/--response-field"
        )
    return report
