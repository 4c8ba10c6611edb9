"""The one exception type for errors a user can cause, and its one-line form of a
validation failure.

The CLI turns an ``HwnasError`` into a one-line message and exit code 2; anything else is a
bug and keeps its traceback.
"""


class HwnasError(Exception):
    """A bad input: wrong config key or value, missing or corrupt file, mismatched checkpoint.

    The message must fit on one line and say what is wrong and where.
    """


def first_invalid(exc: Exception) -> str:
    """``key.path: message`` of the first problem in a pydantic ``ValidationError``: files
    are validated by pydantic models, and the user needs the first bad key, not forty lines."""
    error = exc.errors()[0]
    message = error["msg"].removeprefix("Value error, ")
    where = ".".join(str(p) for p in error["loc"])
    return f"{where}: {message}" if where else message


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (library messages span several), or its type."""
    return " ".join(str(exc).split()) or type(exc).__name__


class KeyedError(HwnasError):
    """An ``HwnasError`` about one key of a nested input (a family's config, a searcher's
    options): ``key`` and ``detail`` let a caller that knows where the input came from say
    it as ``{where}.{key}: {detail}``; the message itself is ``{prefix}{key}: {detail}``."""

    def __init__(self, key: str, detail: str, prefix: str = "") -> None:
        super().__init__(f"{prefix}{key}: {detail}" if key else f"{prefix.rstrip()}: {detail}")
        self.key = key
        self.detail = detail

    def under(self, where: str) -> HwnasError:
        """The same problem, located under ``where`` (``supernet.overrides``)."""
        return HwnasError(
            f"{where}.{self.key}: {self.detail}" if self.key else f"{where}: {self.detail}"
        )
