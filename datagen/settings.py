"""Where Gemini settings come from: command-line options, then environment, then the config file.

The API key is deliberately not a command-line option (it would end up in shell history and `ps`); it comes
from GOOGLE_API_KEY, then GEMINI_API_KEY (the google-genai SDK's own order, so revprompt and any other tool built
on the SDK use the same key when both are set), or the `[gemini]` table of the config file:

    # ~/.config/revprompt/config.toml  (or the file REVPROMPT_CONFIG names)
    [gemini]
    api_key = "..."            # or: vertexai = true, project = "my-project", location = "us-central1"
    model = "gemini-2.5-flash"
    base_url = "https://..."   # optional: a proxy or gateway

The key is held in a `Secret`, whose repr hides it, and every message that leaves this package goes through
`GeminiSettings.redact`, so it is never printed, logged, stored in DuckDB or put in an error message.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..core.config import Secret, config_path  # noqa: F401  (re-exported)
from ..core.config import read_config_section as _read_config_section
from ..core.config import truthy as _truthy
from ..core.errors import UserError

DEFAULT_MODEL = "gemini-2.5-flash"
BASE_URL_ENV = "REVPROMPT_GEMINI_BASE_URL"
# The SDK's precedence (google.genai._api_client.get_env_api_key): GOOGLE_API_KEY wins over GEMINI_API_KEY.
API_KEY_ENVS = ("GOOGLE_API_KEY", "GEMINI_API_KEY")


def read_config_section(path: Path | None = None) -> dict:
    """The `[gemini]` table of the config file; {} when there is no file."""
    return _read_config_section("gemini", path)


@dataclass
class GeminiSettings:
    """Everything needed to build a google-genai client, secrets kept in a `Secret`."""

    model: str = DEFAULT_MODEL
    api_key: Secret | None = field(default=None, repr=False)
    vertexai: bool = False
    project: str | None = None
    location: str | None = None
    base_url: str | None = None
    timeout_s: float = 300.0
    api_key_source: str | None = None  # where the key came from: an environment variable's name or "config file"
    key_note: str | None = None  # set when several keys were found: says which one is used

    @classmethod
    def resolve(
        cls,
        model: str | None = None,
        base_url: str | None = None,
        vertexai: bool | None = None,
        timeout_s: float | None = None,
        config_file: Path | None = None,
    ) -> GeminiSettings:
        """Options win over the environment, which wins over the config file."""
        conf = read_config_section(config_file)
        env = os.environ
        found = [name for name in API_KEY_ENVS if env.get(name, "").strip()]
        key, source, note = None, None, None
        if found:
            key, source = env[found[0]], found[0]
            if len(found) > 1:
                note = f"both {' and '.join(found)} are set; using {found[0]}, as the google-genai SDK does"
        elif conf.get("api_key"):
            key, source = conf["api_key"], "config file"
        if vertexai is None:
            raw = env.get("GOOGLE_GENAI_USE_VERTEXAI", conf.get("vertexai", False))
            vertexai = _truthy(raw)
        settings = cls(
            model=model or conf.get("model") or DEFAULT_MODEL,
            api_key=Secret(str(key).strip()) if key else None,
            vertexai=vertexai,
            project=env.get("GOOGLE_CLOUD_PROJECT") or conf.get("project"),
            location=env.get("GOOGLE_CLOUD_LOCATION") or conf.get("location"),
            base_url=base_url or env.get(BASE_URL_ENV) or conf.get("base_url"),
            timeout_s=float(timeout_s if timeout_s is not None else conf.get("timeout_s", 300.0)),
            api_key_source=source,
            key_note=note,
        )
        settings.check()
        return settings

    def check(self) -> None:
        if self.vertexai:
            if not (self.api_key or self.project or self.base_url):
                raise UserError(
                    "Vertex AI needs a project (GOOGLE_CLOUD_PROJECT or `project` in the config file) or an API key"
                )
        elif not self.api_key:
            raise UserError(
                f"no Gemini API key: set GOOGLE_API_KEY or GEMINI_API_KEY, or put api_key under [gemini] in "
                f"{config_path()}"
            )

    def redact(self, text: str) -> str:
        """`text` with the API key masked: applied to every error detail before it is shown or stored."""
        text = str(text)
        if self.api_key and self.api_key.reveal():
            text = text.replace(self.api_key.reveal(), "***")
        return text

    def describe(self) -> dict:
        """Settings that are safe to print or store (no key)."""
        return {
            "model": self.model,
            "backend": "vertexai" if self.vertexai else "gemini-api",
            "project": self.project,
            "location": self.location,
            "base_url": self.base_url,
            "api_key": f"set ({self.api_key_source})" if self.api_key else "unset",
        }

    def make_client(self):
        """A google-genai client. Its own retries stay off (the default): our backoff owns them."""
        from google import genai
        from google.genai import types

        http_options = types.HttpOptions(
            base_url=self.base_url or None,
            timeout=int(self.timeout_s * 1000),  # milliseconds
        )
        key = self.api_key.reveal() if self.api_key else None
        try:
            if self.vertexai:
                # With an API key this is Vertex "express mode"; without one the client uses ADC credentials.
                if key:
                    return genai.Client(vertexai=True, api_key=key, http_options=http_options)
                return genai.Client(
                    vertexai=True, project=self.project, location=self.location or "global", http_options=http_options
                )
            # vertexai=False explicitly: left unset, the client would obey GOOGLE_GENAI_USE_VERTEXAI instead.
            return genai.Client(vertexai=False, api_key=key, http_options=http_options)
        except Exception as exc:  # the client validates its arguments; keep the key out of the message
            raise UserError(f"cannot create the Gemini client: {self.redact(exc)}") from None
