"""One exception type for bad input: the CLIs print its message as a single line and exit 2."""


class BenchError(Exception):
    """A user-facing error: the message names the file, key or value and what to do."""


def first_line(exc: BaseException, limit: int = 300) -> str:
    """The first line of an exception's message (its type name when it has none), for one-line reports."""
    text = str(exc).strip().splitlines()
    return text[0][:limit] if text and text[0].strip() else type(exc).__name__
