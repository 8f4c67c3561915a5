"""User-facing errors: each one is printed as a single line, without a traceback."""


class LamMtebError(Exception):
    """An error caused by the user's input or environment; its message says what to do."""


class DataNotFound(LamMtebError):
    """A data directory lacks the raw files a dataset builder needs."""


def one_line(exc: BaseException) -> str:
    """``<type>: <first line of the message>`` (the type alone for an empty message)."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
