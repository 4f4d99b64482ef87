"""`revprompt serve`: one warm engine behind a small JSON HTTP API, for editors, notebooks and scripts.

Loading the model is most of what a one-off `revprompt analyze` costs; a resident engine answers a short text
in about the time of its sweep. The API is deliberately small and stdlib-only:

    GET  /health                         {"status": "ok", "model": ..., "dtype": ..., "device": ..., ...}
    POST /analyze {"text": "...", "top": 10, "kind": "response"}
                                         the object `revprompt analyze --json` prints for one text; "kind"
                                         is "response" (an assistant's answer, the default) or "page"

Nothing is stored (use `analyze` for that) and nothing is fetched: the engine only computes. It listens on
127.0.0.1 unless told otherwise, and has no authentication: bind it elsewhere only on a network you trust.
Requests are answered one sweep at a time (the model is one set of weights; a second sweep in parallel would
only split the same cores).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import click

from .cli_options import beams_option, hardware_options, load_engine, rerank_option
from .errors import UserError

log = logging.getLogger("revprompt.serve")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
MAX_BODY_BYTES = 4 * 1024 * 1024  # a long web page is ~100 KB of text; anything far larger is a mistake
MAX_TOP = 100


class BadRequest(Exception):
    def __init__(self, message: str, status: HTTPStatus = HTTPStatus.BAD_REQUEST):
        super().__init__(message)
        self.status = status


def _analyze(engine, lock: threading.Lock, payload) -> dict:
    from ..sources.text import text_uri
    from .output import result_to_json

    if not isinstance(payload, dict):
        raise BadRequest('the body must be a JSON object like {"text": "...", "top": 10}')
    text = payload.get("text")
    if not isinstance(text, str) or not text.strip():
        raise BadRequest('"text" must be a non-empty string')
    if "\x00" in text:
        raise BadRequest('"text" looks binary (contains NUL characters)')
    kind = payload.get("kind", "response")
    if kind not in ("response", "page"):
        raise BadRequest('"kind" must be "response" (an assistant\'s answer) or "page" (a web page\'s text)')
    top = payload.get("top", engine.top_n)
    if isinstance(top, bool) or not isinstance(top, int) or not 1 <= top <= MAX_TOP:
        raise BadRequest(f'"top" must be an integer from 1 to {MAX_TOP}')
    with lock:  # one sweep at a time; top_n is the engine's, so it is set and restored under the same lock
        before = engine.top_n
        engine.top_n = top
        try:
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # truncation is in the answer: "truncated", "max_input_tokens"
                result = engine.sweep(text, kind=kind)
        finally:
            engine.top_n = before
    out = result_to_json(text_uri(text), result)
    out.update(title=None, status="done", model=engine.model_name, max_input_tokens=engine.max_input_tokens)
    return out


def _health(engine) -> dict:
    describe = engine.describe() if hasattr(engine, "describe") else {}
    return {
        "status": "ok",
        **{
            k: describe.get(k)
            for k in ("model", "dtype", "device", "max_input_tokens", "max_new_tokens", "top_n", "rerank", "beams")
        },
    }


def make_server(engine, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> ThreadingHTTPServer:
    """An HTTP server around a loaded engine (port 0: any free port, see `server.server_address`)."""
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        server_version = "revprompt"

        def log_message(self, format, *args):  # noqa: A002  (the stdlib's signature)
            log.info("%s %s", self.address_string(), format % args)

        def _send(self, status: HTTPStatus, body: dict) -> None:
            data = json.dumps(body, ensure_ascii=False).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):  # noqa: N802
            if self.path.split("?")[0].rstrip("/") == "/health":
                self._send(HTTPStatus.OK, _health(engine))
            else:
                self._send(HTTPStatus.NOT_FOUND, {"error": "unknown path: GET /health or POST /analyze"})

        def do_POST(self):  # noqa: N802
            if self.path.split("?")[0].rstrip("/") != "/analyze":
                self._send(HTTPStatus.NOT_FOUND, {"error": "unknown path: GET /health or POST /analyze"})
                return
            try:
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY_BYTES:
                    raise BadRequest(
                        f"the body is over {MAX_BODY_BYTES // 2**20} MB", HTTPStatus.REQUEST_ENTITY_TOO_LARGE
                    )
                try:
                    payload = json.loads(self.rfile.read(length) or b"null")
                except ValueError:
                    raise BadRequest("the body is not valid JSON") from None
                self._send(HTTPStatus.OK, _analyze(engine, lock, payload))
            except BadRequest as exc:
                self._send(exc.status, {"error": str(exc)})
            except Exception as exc:  # noqa: BLE001  (one line to the client, the details in the log)
                log.exception("analyze failed")
                self._send(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"{type(exc).__name__}: {exc}"})

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@click.command("serve")
@click.option(
    "--host",
    default=DEFAULT_HOST,
    show_default=True,
    help="Address to listen on. The API has no authentication: keep it on loopback unless the network is trusted.",
)
@click.option("--port", type=click.IntRange(0, 65535), default=DEFAULT_PORT, show_default=True)
@click.option(
    "--model",
    default=None,
    envvar="REVPROMPT_MODEL",
    help="'base', a local model or PEFT adapter directory, or a Hugging Face id. Default: the shipped model.",
)
@click.option("--top", "top_n", default=10, show_default=True, help="Candidates per text unless a request says.")
@click.option("--max-new-tokens", default=48, show_default=True, help="Longest prompt the decoder may write.")
@click.option(
    "--max-input-tokens",
    type=int,
    default=None,
    help="Texts are read up to this many tokens. Default: the length the model was trained on.",
)
@hardware_options
@rerank_option
@beams_option
def serve_command(host, port, model, top_n, max_new_tokens, max_input_tokens, dtype, device, rerank, beams):
    """Keep one engine loaded and answer JSON requests over HTTP (loopback by default).

    \b
    Endpoints:
      GET  /health                              model, dtype, device, window
      POST /analyze  {"text": "...", "top": 10}  ranked candidates, as `analyze --json` prints them

    \b
    Example:
      revprompt serve &
      curl -s localhost:8765/analyze -d '{"text": "Here are five tips for better sleep: ..."}'

    Nothing is stored; use `revprompt analyze` to keep results in the database.
    """
    click.echo("revprompt: loading the model ...", err=True)
    engine = load_engine(
        model,
        dtype=dtype,
        device=device,
        top_n=top_n,
        max_new_tokens=max_new_tokens,
        max_input_tokens=max_input_tokens,
        rerank=rerank,
        beams=beams,
    )
    try:
        server = make_server(engine, host, port)
    except OSError as exc:
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}", 1) from None
    bound_host, bound_port = server.server_address[:2]
    if not _is_loopback(host):
        click.echo(
            f"revprompt: warning: listening on {host}, not loopback: anyone who can reach it can use it "
            "(there is no authentication)",
            err=True,
        )
    click.echo(
        f"revprompt: serving {engine.model_name} ({engine.dtype}, {engine.device}, inputs read up to "
        f"{engine.max_input_tokens} tokens) on http://{bound_host}:{bound_port}  "
        "(POST /analyze, GET /health; ctrl+c stops)",
        err=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        click.echo("revprompt: stopped", err=True)
    finally:
        server.server_close()
