"""How a configuration mistake is told: one line, ``<file>: <key>: <problem>``, never a secret.

The wording helpers live here so that every message quotes a value the same way (`show`) and
suggests a key the same way (`unknown_key`); the secrets are scrubbed here too (`scrub`), even a
password typed into the wrong key.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from fsbarge.config.model import ENV_DATABASE_URL, ENV_ESL_PASSWORD, url_password

__all__ = ["ConfigError", "scrub", "secrets_in", "show", "unknown_key"]

# A secret shorter than this is not scrubbed out of error text (it would mangle "freeswitch[1]" etc.);
# the password field itself is never echoed whatever its length.
MIN_SCRUB_LEN = 4


class ConfigError(Exception):
    """An unusable configuration. ``str()`` is one line: ``<file>: <key>: <problem>``."""

    def __init__(self, path: str, key: str | None, problem: str) -> None:
        self.path = path
        self.key = key
        self.problem = problem
        super().__init__(f"{path}: {key}: {problem}" if key else f"{path}: {problem}")


def show(value: Any) -> str:
    """A value as the TOML author wrote it, short, for 'got ...' in messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        import json  # only a mistake needs it

        return json.dumps(value if len(value) <= 40 else value[:37] + "...", ensure_ascii=False)
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return f"a {type(value).__name__}"  # dates and times


def unknown_key(key: str, allowed: Iterable[str]) -> str:
    """The problem for a key that is not one of ``allowed``, with the closest one as a hint."""
    import difflib  # only a mistake needs it

    hint = difflib.get_close_matches(key, list(allowed), n=1, cutoff=0.6)
    return "unknown key" + (f' (did you mean "{hint[0]}"?)' if hint else "")


def secrets_in(doc: dict[str, Any], env: Mapping[str, str]) -> set[str]:
    """Every password-looking string in the raw document and the environment, valid or not."""
    found: set[str] = set()
    if env.get(ENV_ESL_PASSWORD):
        found.add(env[ENV_ESL_PASSWORD])
    nodes = doc.get("freeswitch")
    for node in nodes if isinstance(nodes, list) else ():
        if isinstance(node, dict) and isinstance(node.get("password"), str):
            found.add(node["password"])
    database = doc.get("database")
    if isinstance(database, dict) and isinstance(database.get("url"), str):
        found.add(url_password(database["url"]) or "")
    if env.get(ENV_DATABASE_URL):
        found.add(url_password(env[ENV_DATABASE_URL]) or "")
    hooks = doc.get("webhooks")
    for hook in hooks if isinstance(hooks, list) else ():
        if isinstance(hook, dict) and isinstance(hook.get("secret"), str):
            found.add(hook["secret"])
        if isinstance(hook, dict) and isinstance(hook.get("secret_env"), str):
            found.add(env.get(hook["secret_env"]) or "")
    return {s for s in found if len(s) >= MIN_SCRUB_LEN}


def scrub(text: str, secrets: set[str]) -> str:
    """``text`` with every secret in it replaced by ``***``, the longest first."""
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text
