"""Who a connection belongs to: tokens checked at the handshake or in a first message.

``serve(auth=...)`` takes a static token (any user presenting it is ``"user"``), a
mapping of tokens to user names, or a function (sync or async) from a token to a
user name or None. Tokens are compared in constant time and never logged.
"""

from __future__ import annotations

import hmac
import inspect
from collections.abc import Awaitable, Callable, Mapping

from websockets.datastructures import Headers

TokenCheck = Callable[[str], str | Awaitable[str | None] | None]
AuthSpec = str | Mapping[str, str] | TokenCheck

STATIC_TOKEN_USER = "user"
"""The user name given to holders of a static ``auth`` token."""


class Authenticator:
    """Resolves tokens to users according to ``serve(auth=...)``."""

    def __init__(self, spec: AuthSpec) -> None:
        if isinstance(spec, str):
            if not spec:
                raise ValueError("auth token must not be empty")
            self._static: str | None = spec
            self._table: Mapping[str, str] | None = None
            self._check: TokenCheck | None = None
        elif isinstance(spec, Mapping):
            self._static, self._table, self._check = None, dict(spec), None
        elif callable(spec):
            self._static, self._table, self._check = None, None, spec
        else:
            raise TypeError("auth must be a token, a mapping of tokens to users, or a function")

    async def user_for(self, token: str) -> str | None:
        """The user this token belongs to, or None if it is not valid."""
        if self._static is not None:
            return STATIC_TOKEN_USER if hmac.compare_digest(token, self._static) else None
        if self._table is not None:
            for known, user in self._table.items():
                if hmac.compare_digest(token, known):
                    return user
            return None
        assert self._check is not None
        result = self._check(token)
        if inspect.isawaitable(result):
            result = await result
        return result if isinstance(result, str) and result else None


def token_from(headers: Headers, query: Mapping[str, list[str]]) -> str | None:
    """The token of a handshake: ``Authorization: Bearer`` first, then ``?token=``."""
    header = headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    values = query.get("token")
    return values[0] if values else None
