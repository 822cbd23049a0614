"""Credentials for ``nbstream serve``, read from files and environment variables.

Who may connect (``auth``), the TLS certificate and the Redis password never come
from the command line: a Kubernetes Secret or a Compose secret is mounted as a file
(``--auth-users-file``, ``NBSTREAM_AUTH_USERS_FILE``, ...) or set as an environment
variable (``NBSTREAM_AUTH_USERS``, ...). Errors name the file or variable and the
line, never the secret.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from urllib.parse import quote, urlsplit, urlunsplit

from nbstream.cliargs import UsageError, read_secret
from nbstream.redact import redact_url
from nbstream.server.auth import AuthSpec

SHORT_TOKEN = 16
"""Tokens shorter than this are accepted, with a warning (guessable)."""


def auth_from(token_file: str | None, users_file: str | None,
              environ: Mapping[str, str]) -> tuple[AuthSpec | None, str]:
    """``serve(auth=...)`` and a description for the log ("3 users from /path").

    One shared token (``NBSTREAM_AUTH_TOKEN[_FILE]``: everyone presenting it is the user
    ``"user"``) or per-user tokens (``NBSTREAM_AUTH_USERS[_FILE]``, lines
    ``USER:TOKEN``), not both; neither leaves the server open (None).

    Raises:
        UsageError: both are set, a file cannot be read, or a line is malformed.
    """
    token = read_secret("auth token", token_file, "NBSTREAM_AUTH_TOKEN", environ)
    users = read_secret("auth users", users_file, "NBSTREAM_AUTH_USERS", environ)
    if token is not None and users is not None:
        raise UsageError(f"auth is set twice ({token[1]} and {users[1]}): give either one "
                         "shared token or a list of users with their tokens")
    if token is not None:
        return token[0], f"one shared token from {token[1]}"
    if users is not None:
        table = parse_users(*users)
        return table, f"{len(set(table.values()))} user(s) from {users[1]}"
    return None, "none"


def parse_users(text: str, source: str) -> dict[str, str]:
    """Tokens to users from lines ``USER:TOKEN`` (like htpasswd; ``#`` starts a comment).

    Raises:
        UsageError: naming the line (not its content) that is malformed or repeats a
            token already given to someone.
    """
    table: dict[str, str] = {}
    lines: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        user, colon, token = (part.strip() for part in line.partition(":"))
        if not (colon and user and token):
            raise UsageError(f"{source}, line {number}: expected USER:TOKEN")
        if token in table:
            raise UsageError(f"{source}, line {number}: the same token as line "
                             f"{lines[token]}; every user needs a token of their own")
        table[token], lines[token] = user, number
    if not table:
        raise UsageError(f"{source} has no USER:TOKEN line")
    return table


def short_token_users(auth: AuthSpec | None) -> list[str]:
    """The users (or ``"the shared token"``) whose token is shorter than SHORT_TOKEN."""
    if isinstance(auth, str):
        return ["the shared token"] if len(auth) < SHORT_TOKEN else []
    if isinstance(auth, Mapping):
        return sorted({user for token, user in auth.items() if len(token) < SHORT_TOKEN})
    return []


def tls_from(cert: str | None, key: str | None) -> ssl.SSLContext | None:
    """A server TLS context (TLS 1.2 or later) from PEM files, or None without them.

    Raises:
        UsageError: only one of the two is given, or they cannot be loaded.
    """
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise UsageError("TLS needs both a certificate and its key: --tls-cert and "
                         "--tls-key (NBSTREAM_TLS_CERT, NBSTREAM_TLS_KEY)")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise UsageError(f"cannot load the TLS certificate {cert} with key {key}: "
                         f"{reason}") from None
    return context


def backplane_from(url: str, password_file: str | None, environ: Mapping[str, str]) -> str:
    """The backplane URL with the Redis password (``NBSTREAM_REDIS_PASSWORD[_FILE]``) in it.

    The password may also be in the URL itself (``redis://:PASSWORD@host:6379/0``), but
    then it is on the command line; not both.

    Raises:
        UsageError: a password for a backplane that is not Redis, or given twice.
    """
    secret = read_secret("Redis password", password_file, "NBSTREAM_REDIS_PASSWORD", environ)
    if secret is None:
        return url
    password, source = secret
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        raise UsageError(f"a Redis password is set ({source}) but the backplane is "
                         f"{redact_url(url)!r}: use --backplane redis://HOST:6379/0")
    if parts.password is not None:
        raise UsageError(f"the Redis password is set twice: in the backplane URL and in "
                         f"{source}; keep it out of the URL")
    userinfo, _, host = parts.netloc.rpartition("@")
    netloc = f"{userinfo}:{quote(password, safe='')}@{host}"
    return urlunsplit(parts._replace(netloc=netloc))
