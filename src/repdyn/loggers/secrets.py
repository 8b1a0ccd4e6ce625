"""What counts as a secret, and how one is kept out of every file a run writes (README "Failures").

Credentials come from the environment only (``WANDB_API_KEY``, or the netrc entry of ``wandb login``); the run config
never holds one. :func:`repdyn.config.validate` refuses config keys that look like credentials and command-line
overrides that carry a secret's value, before any file is written. What can still reach a written value, e.g.
``name=${oc.env:WANDB_API_KEY}``, is replaced by ``***`` here: :func:`redact` for config.yaml, summary.json and the W&B
config, name, group and tags; :func:`scrub_file` for Hydra's ``.hydra/*.yaml``; :class:`ScrubFilter` for the job log.

A secret is (1) the value of a key whose name looks like a credential (:func:`is_secret_key`), and (2) the value of
an environment variable named like one (``WANDB_API_KEY``, ``HF_TOKEN``, ``AWS_SECRET_ACCESS_KEY``, ...), wherever it
appears in a string. Values shorter than :data:`MIN_SECRET_LEN` characters are not treated as secrets: a
``XYZ_TOKEN=1`` must not turn every ``1`` into ``***``.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

MASK = "***"
MIN_SECRET_LEN = 8
# A credential-like name: its last ``_``/``-``/``.`` separated part(s) are ``api_key``, ``token``, ``secret``,
# ``password``... (``WANDB_API_KEY``, ``HF_TOKEN``, ``client_secret``, ``AWS_SECRET_ACCESS_KEY``), or the name is just
# ``key``. Not any name containing "key": ``diverged_key`` or ``in_keys`` are ours and harmless.
_SECRET_NAME = re.compile(
    r"(?:^|[._-])(?:(?:api|access|secret|private|auth)[_-]?key|apikey|token|secret|password|passwd|credentials?)$|^key$",
    re.IGNORECASE,
)
ENV_VARS = ("WANDB_API_KEY",)  # always secret, whatever the pattern says


def is_secret_key(name: Any) -> bool:
    """True for key names that look like credentials (``api_key``, ``token``, ``password``, ``key``...)."""
    return bool(_SECRET_NAME.search(str(name)))


def secret_env_values(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """``{value: variable name}`` of the environment's secrets, longest value first."""
    environ = os.environ if environ is None else environ
    found = {
        v.strip(): k
        for k, v in environ.items()
        if (k in ENV_VARS or is_secret_key(k)) and len(v.strip()) >= MIN_SECRET_LEN
    }
    return dict(sorted(found.items(), key=lambda kv: -len(kv[0])))


def secret_in(text: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The name of the environment variable whose secret value ``text`` contains, or None."""
    for value, name in secret_env_values(environ).items():
        if value in text:
            return name
    return None


def scrub(text: str, environ: Mapping[str, str] | None = None) -> str:
    """``text`` with every secret value of the environment replaced by ``***``."""
    for value in secret_env_values(environ):
        text = text.replace(value, MASK)
    return text


def redact(obj: Any, environ: Mapping[str, str] | None = None) -> Any:
    """Copy of ``obj`` (dicts, lists, strings, scalars) with secrets replaced by ``***``: the values under
    credential-like keys, ``k=v`` overrides naming such a key, and every environment secret inside a string."""
    if isinstance(obj, Mapping):
        return {k: (MASK if is_secret_key(k) else redact(v, environ)) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [redact(v, environ) for v in obj]
    if isinstance(obj, str):
        key = obj.split("=", 1)[0].lstrip("+~") if "=" in obj else None
        if key is not None and is_secret_key(key.rsplit(".", 1)[-1]):
            return obj.split("=", 1)[0] + "=" + MASK
        return scrub(obj, environ)
    return obj


def scrub_file(path: str | os.PathLike, environ: Mapping[str, str] | None = None) -> bool:
    """Rewrite a text file without the environment's secrets; True if it held one."""
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError):
        return False
    clean = scrub(text, environ)
    if clean == text:
        return False
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(clean)
    os.replace(tmp, path)
    return True


class ScrubFilter(logging.Filter):
    """A logging filter that removes the environment's secrets from every record a handler writes."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: the handler reports it as usual
            return True
        clean = scrub(message)
        if clean != message:
            record.msg, record.args = clean, ()
        return True
