"""Importing existing pairs (pairs / Alpaca / ShareGPT / FastChat shapes, JSON and JSONL) and exporting train/dev JSONL."""

from __future__ import annotations

import gzip
import json

import pytest
from fixtures.datagen.helpers import query, run_cli


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def pairs(db):
    return sorted(query(db, "SELECT prompt, response, source FROM datagen_pairs"))


def test_import_jsonl_pairs_with_default_fields_and_model(tmp_path, capsys):
    db = tmp_path / "d.duckdb"
    src = write_jsonl(
        tmp_path / "chat.jsonl",
        [
            {"id": "a1", "prompt": "What is DNS?", "response": "DNS maps names to addresses.", "model": "gpt-4"},
            {"id": "a2", "prompt": "Define HTTP", "response": "A protocol."},
        ],
    )
    code, out, err = run_cli(capsys, "datagen", "import", src, "--db", db)
    assert code == 0, err
    assert "2 pairs added (pairs shape), 0 duplicates, 0 skipped" in out
    rows = query(
        db,
        "SELECT prompt, response, source, model, json_extract_string(meta, '$.id') FROM datagen_pairs ORDER BY pair_id",
    )
    assert rows == [
        ("What is DNS?", "DNS maps names to addresses.", "chat", "gpt-4", "a1"),
        ("Define HTTP", "A protocol.", "chat", None, "a2"),
    ]


def test_reimporting_adds_nothing(tmp_path, capsys):
    db = tmp_path / "d.duckdb"
    src = write_jsonl(tmp_path / "x.jsonl", [{"prompt": "p", "response": "r"}, {"prompt": "P ", "response": "r"}])
    assert run_cli(capsys, "datagen", "import", src, "--db", db)[1].startswith(f"{src}: 1 pairs added")
    code, out, _ = run_cli(capsys, "datagen", "import", src, "--db", db)
    assert "0 pairs added" in out and "2 duplicates" in out
    assert query(db, "SELECT count(*) FROM datagen_pairs") == [(1,)]


def test_alpaca_json_array_joins_instruction_and_input(tmp_path, capsys):
    db = tmp_path / "d.duckdb"
    src = tmp_path / "alpaca_data.json"
    src.write_text(
        json.dumps(
            [
                {"instruction": "Translate to French.", "input": "Good morning", "output": "Bonjour"},
                {"instruction": "Name a prime.", "input": "", "output": "7"},
                {"instruction": "No answer here.", "input": "", "output": ""},
            ]
        )
    )
    code, out, err = run_cli(capsys, "datagen", "import", src, "--db", db, "--source", "alpaca52k")
    assert code == 0, err
    assert "2 pairs added (alpaca shape), 0 duplicates, 1 skipped" in out
    assert "record 3: field 'output' is empty" in err
    assert pairs(db) == [
        ("Name a prime.", "7", "alpaca52k"),
        ("Translate to French.\n\nGood morning", "Bonjour", "alpaca52k"),
    ]


def test_sharegpt_takes_the_first_exchange_of_both_dialects(tmp_path, capsys):
    db = tmp_path / "d.duckdb"
    src = write_jsonl(
        tmp_path / "sg.jsonl",
        [
            {
                "id": "s1",
                "conversations": [
                    {"from": "system", "value": "You are helpful."},
                    {"from": "human", "value": "Hi, what is 2+2?"},
                    {"from": "gpt", "value": "4."},
                    {"from": "human", "value": "And 3+3?"},
                    {"from": "gpt", "value": "6."},
                ],
            },
            {
                "messages": [
                    {"role": "user", "content": [{"type": "text", "text": "Summarise WW2"}]},
                    {"role": "assistant", "content": "A global war, 1939-45."},
                ]
            },
            {"conversations": [{"from": "gpt", "value": "Hello!"}]},
        ],
    )
    code, out, err = run_cli(capsys, "datagen", "import", src, "--db", db, "--format", "sharegpt")
    assert code == 0, err
    assert "2 pairs added (sharegpt shape), 0 duplicates, 1 skipped" in out
    assert pairs(db) == [("Hi, what is 2+2?", "4.", "sg"), ("Summarise WW2", "A global war, 1939-45.", "sg")]


def test_fastchat_answers_are_joined_to_their_questions(tmp_path, capsys):
    """Arena-Hard writes turns as {"content": ...}, MT-bench and the older arena-bench as plain strings."""
    db = tmp_path / "d.duckdb"
    questions = write_jsonl(
        tmp_path / "question.jsonl",
        [
            {"question_id": "q1", "category": "arena-hard-v0.1", "turns": [{"content": "Write a haiku about rain."}]},
            {"question_id": 81, "category": "writing", "turns": ["Plan a trip to Hawaii.", "Now as a limerick."]},
        ],
    )
    answers = write_jsonl(
        tmp_path / "gpt-4-0314.jsonl",
        [
            {
                "question_id": "q1",
                "answer_id": "a1",
                "model_id": "gpt-4-0314",
                "choices": [{"index": 0, "turns": [{"content": "Soft rain on the roof"}]}],
            },
            {
                "question_id": 81,
                "answer_id": "a2",
                "model_id": "gpt-4-0314",
                "choices": [{"index": 0, "turns": ["Day one: Honolulu.", "There once was a trip ..."]}],
            },
            {"question_id": "q-unknown", "model_id": "gpt-4-0314", "choices": [{"turns": ["orphan"]}]},
            {"question_id": "q1", "model_id": "gpt-4-0314", "choices": []},
        ],
    )
    code, out, err = run_cli(capsys, "datagen", "import", answers, "--questions", questions, "--db", db)
    assert code == 0, err
    assert "2 pairs added (fastchat shape), 0 duplicates, 2 skipped" in out
    rows = sorted(query(db, "SELECT prompt, response, source, model, category FROM datagen_pairs"))
    assert rows == [
        ("Plan a trip to Hawaii.", "Day one: Honolulu.", "gpt-4-0314", "gpt-4-0314", "writing"),
        ("Write a haiku about rain.", "Soft rain on the roof", "gpt-4-0314", "gpt-4-0314", "arena-hard-v0.1"),
    ]
    assert "question_id not in the --questions files" in err


def test_fastchat_answers_without_their_questions_are_a_one_line_error(tmp_path, capsys):
    db = tmp_path / "d.duckdb"
    answers = write_jsonl(tmp_path / "a.jsonl", [{"question_id": "q1", "model_id": "m", "choices": [{"turns": ["x"]}]}])
    code, _, err = run_cli(capsys, "datagen", "import", answers, "--db", db)
    assert code != 0 and "--questions" in err and "Traceback" not in err
    code, _, err = run_cli(capsys, "datagen", "import", answers, "--format", "fastchat", "--db", db)
    assert code != 0 and "--questions" in err and "Traceback" not in err
    not_questions = write_jsonl(tmp_path / "q.jsonl", [{"prompt": "p", "response": "r"}])
    code, _, err = run_cli(capsys, "datagen", "import", answers, "--questions", not_questions, "--db", db)
    assert code != 0 and "no FastChat questions" in err and "Traceback" not in err
    questions = write_jsonl(tmp_path / "question.jsonl", [{"question_id": "q1", "turns": ["Hi"]}])
    code, _, err = run_cli(
        capsys, "datagen", "import", answers, "--format", "pairs", "--questions", questions, "--db", db
    )
    assert code != 0 and "--questions is for FastChat" in err and "Traceback" not in err


def test_custom_and_nested_field_names_in_a_wrapped_json_object(tmp_path, capsys):
    db = tmp_path / "d.duckdb"
    src = tmp_path / "qa.json"
    src.write_text(
        json.dumps(
            {
                "data": [
                    {"question": "Why is the sky blue?", "answers": [{"text": "Rayleigh scattering."}]},
                    {"question": "No answers", "answers": []},
                ]
            }
        )
    )
    code, out, err = run_cli(
        capsys,
        "datagen",
        "import",
        src,
        "--db",
        db,
        "--prompt-field",
        "question",
        "--response-field",
        "answers.0.text",
        "--model",
        "human",
    )
    assert code == 0, err
    assert "1 pairs added" in out and "1 skipped" in out
    assert query(db, "SELECT prompt, response, model FROM datagen_pairs") == [
        ("Why is the sky blue?", "Rayleigh scattering.", "human")
    ]


def test_bad_lines_are_skipped_and_gzip_is_read(tmp_path, capsys):
    db = tmp_path / "d.duckdb"
    src = tmp_path / "mixed.jsonl.gz"
    with gzip.open(src, "wt", encoding="utf-8") as handle:
        handle.write('{"prompt": "ok", "response": "fine"}\n{not json\n\n[1, 2]\n{"prompt": "x"}\n')
    code, out, err = run_cli(capsys, "datagen", "import", src, "--db", db)
    assert code == 0, err
    assert "1 pairs added" in out and "3 skipped" in out
    assert "record 2: not valid JSON" in err and "record 4: record is not a JSON object" in err
    assert pairs(db) == [("ok", "fine", "mixed")]


def test_file_with_nothing_importable_is_a_one_line_error(tmp_path, capsys):
    src = write_jsonl(tmp_path / "q.jsonl", [{"question": "a", "answer": "b"}])
    code, _, err = run_cli(capsys, "datagen", "import", src, "--db", tmp_path / "d.duckdb")
    assert code == 2
    assert err.startswith("revprompt: error:") and "missing field 'prompt'" in err and "--prompt-field" in err
    assert len(err.strip().splitlines()) == 1


def test_large_import_is_chunked(tmp_path, capsys, monkeypatch):
    from revprompt.datagen import importers

    monkeypatch.setattr(importers, "CHUNK", 7)
    db = tmp_path / "d.duckdb"
    src = write_jsonl(
        tmp_path / "big.jsonl",
        [{"prompt": f"p{i}", "response": f"r{i % 5}"} for i in range(50)] + [{"prompt": "p3", "response": "r3"}],
    )
    code, out, _ = run_cli(capsys, "datagen", "import", src, "--db", db)
    assert code == 0 and "50 pairs added" in out and "1 duplicates" in out
    assert query(db, "SELECT count(*), count(DISTINCT pair_key) FROM datagen_pairs") == [(50, 50)]


# -- export ---------------------------------------------------------------------------------------------


@pytest.fixture
def filled_db(tmp_path, capsys):
    db = tmp_path / "d.duckdb"
    records = [{"prompt": f"question {i}", "response": f"answer {i}"} for i in range(1000)]
    # The same prompt answered twice: both answers must land on the same side of the split.
    records += [{"prompt": f"question {i}", "response": f"another answer {i}"} for i in range(100)]
    src = write_jsonl(tmp_path / "set_a.jsonl", records)
    other = write_jsonl(tmp_path / "set_b.jsonl", [{"prompt": "only b", "response": "b"}])
    assert run_cli(capsys, "datagen", "import", src, other, "--db", db)[0] == 0
    return db


def read_split(out_dir):
    return {
        name: [json.loads(line) for line in (out_dir / f"{name}.jsonl").read_text().splitlines()]
        for name in ("train", "dev")
    }


def test_export_split_is_by_prompt_and_stable(filled_db, tmp_path, capsys):
    out_dir = tmp_path / "out"
    code, out, err = run_cli(capsys, "datagen", "export", out_dir, "--db", filled_db, "--dev-fraction", "0.1")
    assert code == 0, err
    split = read_split(out_dir)
    assert len(split["train"]) + len(split["dev"]) == 1101
    assert 60 <= len(split["dev"]) <= 150  # ~10% of prompts, by hash
    for row in split["train"] + split["dev"]:
        assert set(row) >= {"prompt", "response", "id", "source"}
        assert isinstance(row["prompt"], str) and isinstance(row["response"], str)
    train_prompts = {r["prompt"] for r in split["train"]}
    assert not train_prompts & {r["prompt"] for r in split["dev"]}

    # Same seed, same split; another seed, another one.
    again = tmp_path / "again"
    run_cli(capsys, "datagen", "export", again, "--db", filled_db, "--dev-fraction", "0.1")
    assert read_split(again) == split
    other = tmp_path / "other"
    run_cli(capsys, "datagen", "export", other, "--db", filled_db, "--dev-fraction", "0.1", "--seed", "7")
    assert {r["prompt"] for r in read_split(other)["dev"]} != {r["prompt"] for r in split["dev"]}


def test_export_filters_by_source_and_writes_empty_dev_when_asked(filled_db, tmp_path, capsys):
    out_dir = tmp_path / "out"
    (out_dir).mkdir()
    (out_dir / "dev.jsonl").write_text('{"prompt": "stale", "response": "stale"}\n')
    code, out, _ = run_cli(
        capsys, "datagen", "export", out_dir, "--db", filled_db, "--source", "set_b", "--dev-fraction", "0"
    )
    assert code == 0
    split = read_split(out_dir)
    assert split == {
        "train": [
            {
                "id": split["train"][0]["id"],
                "prompt": "only b",
                "response": "b",
                "source": "set_b",
                "category": None,
                "model": None,
            }
        ],
        "dev": [],
    }


def test_export_leaves_out_answers_cut_short_unless_asked(tmp_path, capsys):
    from revprompt.core.store import Store
    from revprompt.datagen.tables import DatagenTables, PendingPrompt, Usage

    db = tmp_path / "d.duckdb"
    with Store(db) as store:
        tables = DatagenTables(store)
        tables.save_batch("simple_prompt", 0, "t", 2, ["full one", "cut one"], "m", Usage(), 1)
        (a, pa), (b, pb) = query_ids = store.con.execute(
            "SELECT prompt_id, prompt FROM datagen_prompts ORDER BY prompt_id"
        ).fetchall()
        assert len(query_ids) == 2
        tables.save_responses(
            [
                (PendingPrompt(a, pa, "simple_prompt"), "done.", "m", "STOP", Usage()),
                (PendingPrompt(b, pb, "simple_prompt"), "and then", "m", "MAX_TOKENS", Usage()),
            ]
        )
    out_dir = tmp_path / "out"
    run_cli(capsys, "datagen", "export", out_dir, "--db", db, "--dev-fraction", "0")
    assert [r["prompt"] for r in read_split(out_dir)["train"]] == ["full one"]
    run_cli(capsys, "datagen", "export", out_dir, "--db", db, "--dev-fraction", "0", "--include-incomplete")
    assert [r["prompt"] for r in read_split(out_dir)["train"]] == ["full one", "cut one"]


def test_export_of_an_empty_table_is_an_error(tmp_path, capsys):
    db = tmp_path / "d.duckdb"
    from revprompt.core.store import Store

    Store(db).close()
    code, _, err = run_cli(capsys, "datagen", "export", tmp_path / "out", "--db", db)
    assert code == 2 and "no pairs to export" in err
    assert not (tmp_path / "out" / "train.jsonl").exists()


def test_unreadable_file_is_a_one_line_error(tmp_path, capsys):
    src = tmp_path / "latin1.jsonl"
    src.write_bytes(b'{"prompt": "caf\xe9", "response": "x"}\n')
    code, _, err = run_cli(capsys, "datagen", "import", src, "--db", tmp_path / "d.duckdb")
    assert code == 2 and "cannot read" in err and "UnicodeDecodeError" in err
    assert len(err.strip().splitlines()) == 1
