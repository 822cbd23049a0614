"""Secrets taken out of text before anything writes it: logs, reprs, stored results.

Credentials reach nbstream in four shapes, and each has a rewrite here:

* a URL's query, ``ws://host/ws?token=...`` (the browser's only way to send a token);
* a URL's password, ``redis://:password@host:6379/0`` (the backplane);
* a header, ``Authorization: Bearer ...``, also as a mapping or a list of pairs;
* an ``auth`` message, ``{"type": "auth", "data": {"token": "..."}}``, as websockets
  logs its frames at DEBUG.

The value becomes :data:`REDACTED`; names, hosts and everything else stay, so a
redacted line still says which server and which parameter it was about. Call
:func:`redact_url` for a URL you are about to show, :func:`redact_text` for free text
(a log message), :func:`redact_value` for JSON-like structures (load-test parameters).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

REDACTED = "[redacted]"
"""What a secret value is replaced with."""

SECRET_NAMES = frozenset({
    "token", "access_token", "auth_token", "password", "passwd", "secret", "api_key",
    "apikey", "authorization", "proxy-authorization", "cookie", "x-api-key",
})
"""Query parameters, mapping keys and header names whose values are secrets (any case)."""

_NAMES = "|".join(sorted((re.escape(n) for n in SECRET_NAMES), key=len, reverse=True))
_QUERY = re.compile(rf"(?i)((?:^|[?&\s;,])(?:{_NAMES})=)[^&\s'\";,]+")
_USERINFO = re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://[^/@\s:'\"]*:)[^/@\s'\"]+(?=@)")
_BEARER = re.compile(r"(?i)(\b(?:bearer|basic)\s+)[^\s'\",}\]]+")
_KEYED = re.compile(rf"(?i)([\"'](?:{_NAMES})[\"']\s*:\s*[\"'])(?:[^\"'\\]|\\.)*")
_HEADER = re.compile(rf"(?i)(\b(?:{_NAMES}):\s*)[^\s'\",}}\]]+(?:\s+[^\s'\",}}\]]+)?")


def redact_text(text: str) -> str:
    """``text`` with every secret value in it replaced by :data:`REDACTED`.

    Covers ``token=`` (and the other :data:`SECRET_NAMES`) in query strings, URL
    passwords, ``Bearer``/``Basic`` credentials, ``Name: value`` header lines and
    ``"token": "..."`` keys of JSON or Python reprs, also when websockets cut the
    frame short with ``...``.
    """
    text = _USERINFO.sub(rf"\1{REDACTED}", text)
    text = _QUERY.sub(rf"\1{REDACTED}", text)
    text = _KEYED.sub(rf"\1{REDACTED}", text)
    text = _HEADER.sub(rf"\1{REDACTED}", text)
    return _BEARER.sub(rf"\1{REDACTED}", text)


def redact_url(url: str) -> str:
    """``url`` with its password and secret query values replaced; the rest unchanged."""
    try:
        parts = urlsplit(url)
    except ValueError:  # not a URL after all (an unclosed IPv6 bracket): treat as text
        return redact_text(url)
    netloc = parts.netloc
    if parts.password is not None:
        userinfo, _, host = netloc.rpartition("@")
        user = userinfo.partition(":")[0]
        netloc = f"{user}:{REDACTED}@{host}"
    query = "&".join(_redact_pair(pair) for pair in parts.query.split("&")) \
        if parts.query else ""
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def _redact_pair(pair: str) -> str:
    name, sep, _ = pair.partition("=")
    return f"{name}={REDACTED}" if sep and unquote(name).lower() in SECRET_NAMES else pair


def redact_value(value: Any) -> Any:
    """A copy of a JSON-like ``value`` with secrets replaced, for storing or showing.

    Mapping entries and ``(name, value)`` pairs (headers as websockets takes them)
    whose name is in :data:`SECRET_NAMES` lose their value; strings go through
    :func:`redact_text`; other values are returned as they are.
    """
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {key: REDACTED if _secret(key) else redact_value(item)
                for key, item in value.items()}
    if isinstance(value, list | tuple):
        if len(value) == 2 and _secret(value[0]):
            items = [value[0], REDACTED]
        else:
            items = [redact_value(item) for item in value]
        return tuple(items) if isinstance(value, tuple) else items
    return value


def _secret(name: object) -> bool:
    return isinstance(name, str) and name.lower() in SECRET_NAMES
