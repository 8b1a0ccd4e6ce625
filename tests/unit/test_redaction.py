"""What counts as a secret and how it is redacted (src/repdyn/loggers/secrets.py; README "Failures")."""

from __future__ import annotations

import logging

from repdyn.loggers.secrets import ScrubFilter, is_secret_key, redact, secret_env_values

ENV = {"WANDB_API_KEY": "k" * 40, "HF_TOKEN": "hf_abcdefgh", "MY_TOKEN": "1", "TOKENIZERS_PARALLELISM": "falsefalse"}


def test_credential_like_names():
    for name in ("WANDB_API_KEY", "api_key", "apikey", "key", "HF_TOKEN", "client_secret", "password", "x.token"):
        assert is_secret_key(name), name
    for name in ("diverged_key", "in_keys", "max_tokens", "TOKENIZERS_PARALLELISM", "keyboard", "name"):
        assert not is_secret_key(name), name


def test_secret_env_values_skip_short_and_unrelated_values():
    assert secret_env_values(ENV) == {"k" * 40: "WANDB_API_KEY", "hf_abcdefgh": "HF_TOKEN"}


def test_redact_keys_overrides_and_env_values_anywhere():
    obj = {
        "logger": {"api_key": "x", "tags": ["t", "tag-" + "k" * 40], "group": "g-hf_abcdefgh"},
        "overrides": ["+logger.api_key=x", "seed=1", "name=${oc.env:WANDB_API_KEY}"],
        "seed": 1,
    }
    assert redact(obj, ENV) == {
        "logger": {"api_key": "***", "tags": ["t", "tag-***"], "group": "g-***"},
        "overrides": ["+logger.api_key=***", "seed=1", "name=${oc.env:WANDB_API_KEY}"],
        "seed": 1,
    }


def test_log_records_are_scrubbed(monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", "plantedsecret0123")
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "name is %s", ("plantedsecret0123",), None)
    assert ScrubFilter().filter(record) and record.getMessage() == "name is ***"
