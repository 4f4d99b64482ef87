"""User configuration and secrets: `~/.config/revprompt/config.toml` (REVPROMPT_CONFIG overrides the path).

Secrets (API keys, passwords) are wrapped in `Secret` as soon as they are read, so a stray log line, repr or
traceback can never show them.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

from .errors import UserError

CONFIG_ENV = "REVPROMPT_CONFIG"


class Secret:
    """A string that never shows itself in repr/str, so a stray log line or traceback cannot leak it."""

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)


def config_path() -> Path:
    override = os.environ.get(CONFIG_ENV)
    if override:
        return Path(override).expanduser()
    from platformdirs import user_config_dir

    return Path(user_config_dir("revprompt")) / "config.toml"


def read_config_section(name: str, path: Path | None = None) -> dict:
    """The `[name]` table of the config file; {} when there is no file."""
    path = path or config_path()
    if not path.exists():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        # The parser's message can quote the offending line, which may hold a secret: name the file only.
        raise UserError(f"cannot read config file {path} ({type(exc).__name__}); fix its TOML syntax") from None
    section = data.get(name, {})
    if not isinstance(section, dict):
        raise UserError(f"config file {path}: [{name}] must be a table")
    return section


def truthy(value) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in {"1", "true", "yes", "on"}
