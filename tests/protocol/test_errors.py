from nbstream.protocol import ErrorCode, Message, Severity, StreamError


def test_defaults_follow_the_code() -> None:
    error = StreamError(ErrorCode.RATE_LIMITED, details={"retry_after": 0.25})
    assert error.to_dict() == {
        "code": "RATE_LIMITED", "message": "rate limit reached", "severity": "warning",
        "recoverable": True, "details": {"retry_after": 0.25},
    }
    assert error.close_code is None
    assert str(error) == "RATE_LIMITED: rate limit reached (retry after 0.25 s)"


def test_fatal_codes_name_their_close_code() -> None:
    assert StreamError(ErrorCode.TOO_MANY_CONNECTIONS).close_code == 1013
    assert StreamError(ErrorCode.MESSAGE_TOO_LARGE).close_code == 1009
    assert StreamError(ErrorCode.UNAUTHORIZED).close_code == 1008
    internal = StreamError(ErrorCode.INTERNAL_ERROR)
    assert (internal.close_code, internal.severity, internal.recoverable) == (
        1011, Severity.CRITICAL, False)


def test_round_trip_through_an_error_envelope() -> None:
    error = StreamError(ErrorCode.CONTEXT_EXHAUSTED, details={"limit": 3})
    message = Message("error", error.to_dict())
    assert message.error == error


def test_unknown_codes_from_foreign_servers_are_tolerated() -> None:
    error = StreamError.from_dict({"code": "SOMETHING_ELSE", "message": "m"})
    assert (error.code, error.message, error.recoverable) == ("SOMETHING_ELSE", "m", False)
    assert StreamError.from_dict("junk").code == ErrorCode.INVALID_MESSAGE
