"""One exception type for bad input: the CLIs print its message as a single line and exit 2."""


class BenchError(Exception):
    """A user-facing error: the message names the file, key or value and what to do."""
