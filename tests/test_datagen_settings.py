"""Where Gemini settings and the key come from, how the key is kept secret, and the cost estimate."""

from __future__ import annotations

import pytest
from fixtures.datagen.helpers import API_KEY, gemini_env  # noqa: F401

from revprompt.core.errors import UserError
from revprompt.datagen.estimate import estimate_prompt_stage, estimate_response_stage, price_for
from revprompt.datagen.gemini import Backoff, retry_after
from revprompt.datagen.settings import GeminiSettings


def test_key_from_env_is_hidden_in_repr_and_redacted(gemini_env):
    settings = GeminiSettings.resolve()
    assert settings.api_key.reveal() == API_KEY
    assert API_KEY not in repr(settings) and API_KEY not in str(settings.api_key)
    assert API_KEY not in str(settings.describe())
    assert settings.redact(f"bad key {API_KEY}!") == "bad key ***!"


def test_google_api_key_also_works(gemini_env, monkeypatch):
    monkeypatch.delenv("GEMINI_API_KEY")
    monkeypatch.setenv("GOOGLE_API_KEY", "other-key")
    assert GeminiSettings.resolve().api_key.reveal() == "other-key"


def test_google_api_key_wins_over_gemini_api_key_as_in_the_sdk(gemini_env, monkeypatch):
    # google.genai._api_client.get_env_api_key: GOOGLE_API_KEY first. A different order would make revprompt
    # bill another project than every other tool on the same machine.
    monkeypatch.setenv("GOOGLE_API_KEY", "google-key")
    settings = GeminiSettings.resolve()
    assert settings.api_key.reveal() == "google-key"
    assert settings.api_key_source == "GOOGLE_API_KEY"
    assert "GOOGLE_API_KEY" in settings.key_note and "google-key" not in settings.key_note
    assert settings.describe()["api_key"] == "set (GOOGLE_API_KEY)"


def test_config_file_supplies_key_model_and_base_url(gemini_env, monkeypatch, tmp_path):
    monkeypatch.delenv("GEMINI_API_KEY")
    conf = tmp_path / "config.toml"
    conf.write_text('[gemini]\napi_key = "from-file"\nmodel = "gemini-2.5-flash-lite"\nbase_url = "http://x:1"\n')
    monkeypatch.setenv("REVPROMPT_CONFIG", str(conf))
    settings = GeminiSettings.resolve()
    assert (settings.api_key.reveal(), settings.model, settings.base_url) == (
        "from-file",
        "gemini-2.5-flash-lite",
        "http://x:1",
    )
    # Options beat the environment, which beats the file.
    monkeypatch.setenv("GEMINI_API_KEY", "from-env")
    monkeypatch.setenv("REVPROMPT_GEMINI_BASE_URL", "http://env:2")
    settings = GeminiSettings.resolve(model="gemini-2.5-pro")
    assert (settings.api_key.reveal(), settings.model, settings.base_url) == (
        "from-env",
        "gemini-2.5-pro",
        "http://env:2",
    )
    assert GeminiSettings.resolve(base_url="http://opt:3").base_url == "http://opt:3"


def test_broken_config_file_error_names_the_file_not_its_content(gemini_env, monkeypatch, tmp_path):
    conf = tmp_path / "config.toml"
    conf.write_text('[gemini]\napi_key = "sk-secret-in-file\n')
    monkeypatch.setenv("REVPROMPT_CONFIG", str(conf))
    with pytest.raises(UserError) as info:
        GeminiSettings.resolve()
    assert str(conf) in str(info.value) and "sk-secret" not in str(info.value)


def test_vertex_settings_from_config(gemini_env, monkeypatch, tmp_path):
    monkeypatch.delenv("GEMINI_API_KEY")
    conf = tmp_path / "config.toml"
    conf.write_text('[gemini]\nvertexai = true\nproject = "proj"\nlocation = "europe-west4"\n')
    monkeypatch.setenv("REVPROMPT_CONFIG", str(conf))
    settings = GeminiSettings.resolve()
    assert settings.vertexai and settings.project == "proj" and settings.location == "europe-west4"
    assert settings.api_key is None
    monkeypatch.setenv("REVPROMPT_CONFIG", str(tmp_path / "none.toml"))
    with pytest.raises(UserError, match="Vertex AI needs a project"):
        GeminiSettings.resolve(vertexai=True)


def test_backoff_doubles_with_jitter_and_respects_server_hint():
    backoff = Backoff(base_s=1.0, max_s=10.0)
    for attempt, full in ((1, 1.0), (2, 2.0), (3, 4.0), (6, 10.0)):
        delays = [backoff.delay(attempt) for _ in range(50)]
        assert all(full / 2 <= d <= full for d in delays)
    assert backoff.delay(1, server_hint=7.0) >= 7.0
    assert backoff.delay(1, server_hint=100.0) <= 10.0


def test_retry_after_reads_retryinfo():
    class Err:
        details = {"error": {"details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "12s"}]}}
        response = None

    assert retry_after(Err()) == 12.0
    Err.details = {"error": {"message": "no hint"}}
    assert retry_after(Err()) is None


def test_estimates_scale_with_the_run():
    price = price_for("gemini-2.5-flash")
    assert price == (0.30, 2.50)
    assert price_for("models/gemini-2.5-flash-001") == price
    assert price_for("my-tuned-model") is None
    small = estimate_prompt_stage([(100, 6)] * 10, "gemini-2.5-flash", price)
    big = estimate_prompt_stage([(100, 150)] * 1000, "gemini-2.5-flash", price)
    assert small.calls == 10 and not small.needs_confirmation
    assert big.cost_usd > 30 * small.cost_usd and big.needs_confirmation
    answers = estimate_response_stage([400] * 1000, "gemini-2.5-flash", price, 2048, 0)
    assert answers.input_tokens == 100_000 and answers.calls == 1000
    assert "$" in answers.describe()
    unknown = estimate_response_stage([400], "custom", None, 2048, 0)
    assert unknown.cost_usd is None and "cost unknown" in unknown.describe()
