"""User-facing errors: each one is printed as a single line, without a traceback."""


class LamMtebError(Exception):
    """An error caused by the user's input or environment; its message says what to do."""


class DataNotFound(LamMtebError):
    """A data directory lacks the raw files a dataset builder needs."""
