"""Secrets an endpoint scorer holds: where they may come from, and how they are kept out of text.

- `check_stage_key_env(name)`: a stage read from JSON (a pipeline store, a file: untrusted) may
  only name an API-key variable matching `STAGE_KEY_ENV_PATTERN` (`CROSSRANK_*API_KEY`), so a
  hostile stage cannot send `AWS_SECRET_ACCESS_KEY` or `OPENAI_API_KEY` to its own scorer.
  Code and the command line may name any variable.
- `clean_api_key(key, source)`: surrounding whitespace (a secrets file's newline) is stripped;
  a key that still holds whitespace, a control character or anything but printable ASCII is
  refused before any request (httpx would raise with the key in its message and its log).
- `check_url_credentials(url)`: `user:password@` or `token@` in a URL is refused when the
  config is built; the message names neither.
- `Redactor`: the one masking function (`mask`) every error message and log line of an
  endpoint scorer passes through. It masks each secret raw, escaped (repr, JSON, bytes repr,
  URL quoting, and those twice over) and in part (any run of `FRAGMENT` or more characters of
  a rendering, and a rendering's head or tail at the very end or start of a text), after
  truncation as well as before (`excerpt`), and scrubs parsed server answers (`scrub`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, urlsplit

from crossrank.errors import ConfigError

STAGE_KEY_ENV_PATTERN = re.compile(r"^CROSSRANK_(?:[A-Z0-9]+_)*API_KEY$")
MASK = "***"
MIN_SECRET = 4  # shorter header values are not secrets worth masking (and would mask everything)
FRAGMENT = 8  # this many consecutive characters of a secret are masked wherever they appear
EDGE = 4  # a secret's head (tail) this long is masked at the end (start) of a text: a cut key
_KEY_CHARS = re.compile(r"^[\x21-\x7e]+$")  # printable ASCII, no space: what a header carries


def check_stage_key_env(name: Any, where: str = "stage") -> None:
    """Refuse an API-key variable a stage read from JSON may not name."""
    if name is None:
        return
    if not isinstance(name, str) or not STAGE_KEY_ENV_PATTERN.match(name):
        raise ConfigError(
            f"{where}: scorer_api_key_env {name!r} is not allowed in a stage read from JSON; "
            "a stage may only name variables matching CROSSRANK_*API_KEY (for example "
            "CROSSRANK_RERANK_API_KEY), so a stage from a pipeline store cannot send other "
            "secrets to its scorer. Name any other variable from Python or with "
            "--scorer-api-key-env"
        )


def clean_api_key(key: str | None, source: str) -> str | None:
    """The key without surrounding whitespace, None when empty; a `ConfigError` naming
    `source` (never the key) when it holds characters an HTTP header cannot carry."""
    if key is None:
        return None
    if not isinstance(key, str):
        raise ConfigError(f"the API key from {source} must be a string")
    key = key.strip()
    if not key:
        return None
    if not _KEY_CHARS.match(key):
        raise ConfigError(
            f"the API key from {source} holds whitespace, a control character or a non-ASCII "
            "character inside it; an HTTP header cannot carry it (check the secret's value)"
        )
    return key


def check_header_value(name: str, value: Any) -> str:
    if not isinstance(value, str) or not re.match(r"^[\x20-\x7e]*$", value):
        raise ConfigError(
            f"header {name!r}: its value must be printable ASCII (no control characters)"
        )
    return value


def url_without_credentials(url: str) -> str:
    """`url` with any user information replaced by `***` (for messages)."""
    scheme, sep, rest = url.partition("://")
    authority, tail = re.match(r"([^/?#]*)(.*)", rest, re.DOTALL).groups()  # type: ignore[union-attr]
    if "@" in authority:
        authority = MASK + "@" + authority.rsplit("@", 1)[1]
    return f"{scheme}{sep}{authority}{tail}"


def check_url_credentials(url: str) -> None:
    """A `ValueError` when `url` carries a user name, token or password (naming neither)."""
    rest = url.partition("://")[2]
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    try:
        parts = urlsplit(url)
        has_userinfo = parts.username is not None or parts.password is not None
    except ValueError:
        has_userinfo = False
    if "@" in authority or "%40" in authority.lower() or has_userinfo:
        raise ValueError(
            f"the scorer URL {url_without_credentials(url)} holds credentials (a user name, "
            "token or password before '@'); URLs end up in logs, errors and stage configs, so "
            "pass the key as api_key or in the environment variable named by "
            "scorer_api_key_env instead"
        )


def renderings(secret: str) -> set[str]:
    """How `secret` may appear in text: raw, and escaped once or twice over."""
    found = {secret}
    layer = {secret}
    for _ in range(2):
        escaped = set()
        for s in layer:
            escaped.add(repr(s)[1:-1])
            escaped.add(json.dumps(s)[1:-1])
            escaped.add(json.dumps(s, ensure_ascii=False)[1:-1])
            escaped.add(repr(s.encode("utf-8", "backslashreplace"))[2:-1])
            escaped.add(quote(s, safe=""))
        layer = escaped - found
        found |= layer
    return {r for r in found if r}


class Redactor:
    """Masks a set of secrets in any text; see the module docstring for what is masked."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        forms: set[str] = set()
        for secret in secrets:
            if secret and len(secret) >= MIN_SECRET:
                forms |= renderings(secret)
        self._forms = sorted(forms, key=len, reverse=True)
        self._longest = len(self._forms[0]) if self._forms else 0
        # k-grams of every rendering, by k: a run of them anywhere is a piece of a secret.
        self._grams: dict[int, set[str]] = {}
        for form in self._forms:
            k = min(FRAGMENT, len(form))
            self._grams.setdefault(k, set()).update(
                form[i : i + k] for i in range(len(form) - k + 1)
            )

    def __bool__(self) -> bool:
        return bool(self._forms)

    def __repr__(self) -> str:  # never the secrets
        return f"Redactor({len(self._forms)} renderings)"

    def mask(self, text: str) -> str:
        """`text` with every rendering of every secret, whole or in part, replaced by `***`."""
        if not self._forms or not text:
            return text
        for form in self._forms:
            text = text.replace(form, MASK)
        hidden = [False] * len(text)
        for k, grams in self._grams.items():
            for i in range(len(text) - k + 1):
                if text[i : i + k] in grams:
                    hidden[i : i + k] = [True] * k
        for form in self._forms:  # a secret cut at either end of the text
            for n in range(min(len(form), len(text)) - 1, EDGE - 1, -1):
                if text.endswith(form[:n]):
                    hidden[len(text) - n :] = [True] * n
                    break
            for n in range(min(len(form), len(text)) - 1, EDGE - 1, -1):
                if text.startswith(form[-n:]):
                    hidden[:n] = [True] * n
                    break
        if not any(hidden):
            return text
        out: list[str] = []
        for char, masked in zip(text, hidden, strict=True):
            if not masked:
                out.append(char)
            elif not out or out[-1] is not MASK:
                out.append(MASK)
        return "".join(out)

    def excerpt(self, text: str, limit: int = 200) -> str:
        """The first `limit` characters of `text`, masked before and after the cut."""
        window = self.mask(text[: limit + self._longest])
        cut = window[:limit]
        return self.mask(cut) + ("..." if len(window) > limit or len(text) > len(window) else "")

    def scrub(self, value: Any) -> Any:
        """A parsed JSON value with every string (keys too) masked; other values as they are."""
        if not self._forms:
            return value
        if isinstance(value, str):
            return self.mask(value)
        if isinstance(value, list):
            return [self.scrub(v) for v in value]
        if isinstance(value, dict):
            return {self.scrub(k): self.scrub(v) for k, v in value.items()}
        return value
