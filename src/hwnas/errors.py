"""The one exception type for errors a user can cause.

The CLI turns an ``HwnasError`` into a one-line message and exit code 2; anything else is a
bug and keeps its traceback.
"""


class HwnasError(Exception):
    """A bad input: wrong config key or value, missing or corrupt file, mismatched checkpoint.

    The message must fit on one line and say what is wrong and where.
    """
