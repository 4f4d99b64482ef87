"""`revprompt serve`: a warm engine behind a JSON HTTP API on 127.0.0.1, here with the tiny random model."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request

import pytest

from revprompt.core.types import DEFAULT_SWEEP

TEXT = "Sourdough needs flour, water, salt and a lively starter. Mix, fold, rest overnight and bake it hot."


@pytest.fixture(scope="module")
def server(tiny_model, gemma_tokenizer):
    from revprompt.core.engine import Engine
    from revprompt.core.serve import make_server

    engine = Engine(
        tiny_model,
        gemma_tokenizer,
        configs=DEFAULT_SWEEP[:4],
        max_new_tokens=5,
        model_name="tiny",
        max_input_tokens=16,
        top_n=3,
    )
    srv = make_server(engine, "127.0.0.1", 0)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}", engine
    srv.shutdown()
    srv.server_close()


def call(url, body=None, raw=None):
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_health(server):
    base, _ = server
    status, body = call(base + "/health")
    assert status == 200
    assert body["status"] == "ok" and body["model"] == "tiny" and body["dtype"] == "float32"
    assert body["device"] == "cpu" and body["max_input_tokens"] == 16 and body["rerank"] == "perplexity"


def test_analyze_answers_like_analyze_json(server):
    base, engine = server
    status, body = call(base + "/analyze", {"text": TEXT, "top": 2})
    assert status == 200
    assert {
        "uri",
        "run_id",
        "doc_id",
        "n_input_tokens",
        "truncated",
        "seconds",
        "candidates",
        "title",
        "status",
    } <= set(body)
    assert body["uri"].startswith("text:") and body["truncated"] is True  # 16-token window
    assert 1 <= len(body["candidates"]) <= 2 and body["candidates"][0]["rank"] == 1
    assert {"prompt", "perplexity", "confidence", "top_k", "penalty_alpha", "configs", "tokens"} <= set(
        body["candidates"][0]
    )
    assert engine.top_n == 3  # a request's "top" does not stick
    status, again = call(base + "/analyze", {"text": TEXT})  # the same warm engine, same answer
    assert status == 200 and again["candidates"][0]["prompt"] == body["candidates"][0]["prompt"]
    status, as_page = call(base + "/analyze", {"text": TEXT, "kind": "page"})  # a web page's text
    assert status == 200 and as_page["candidates"]


@pytest.mark.parametrize(
    "payload,raw,code",
    [
        ({"text": "   "}, None, 400),
        ({"text": 5}, None, 400),
        ({"text": "ok", "top": 0}, None, 400),
        ({"text": "a\x00b"}, None, 400),
        ({"text": "ok", "kind": "article"}, None, 400),
        (None, b"{not json", 400),
        (None, b"[1, 2]", 400),
    ],
)
def test_bad_requests_are_one_line_errors(server, payload, raw, code):
    base, _ = server
    status, body = call(base + "/analyze", payload, raw)
    assert status == code and isinstance(body["error"], str) and "Traceback" not in body["error"]


def test_unknown_path_is_404(server):
    base, _ = server
    assert call(base + "/nope")[0] == 404
    assert call(base + "/nope", {"text": TEXT})[0] == 404


def test_serve_command_is_registered_on_loopback():
    from revprompt.core.cli import cli

    command = cli.get_command(None, "serve")
    host = next(p for p in command.params if p.name == "host")
    assert host.default == "127.0.0.1"
    assert {p.name for p in command.params} >= {"port", "model", "dtype", "device"}
