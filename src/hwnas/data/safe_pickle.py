"""Reading user-supplied pickles without the general unpickler.

``pickle.load`` runs whatever a file names (``os.system`` included), so user files go through
``RestrictedUnpickler``, whose ``find_class`` refuses every global except the few that the
CIFAR-10 python batches need, and even those are stand-ins that run no library code on file
contents:

- ``numpy.core.multiarray._reconstruct``, ``numpy.ndarray`` and ``numpy.dtype`` (the official
  batches, written by Python 2's cPickle, store ``data`` as a uint8 numpy array; numpy >= 2
  names the module ``numpy._core.multiarray``). They build inert placeholders that are turned
  into real arrays after loading, only for plain numeric dtypes, with the byte count checked.
- ``_codecs.encode`` with the ``latin1`` codec, which Python 3 uses to write ``bytes`` at
  pickle protocols 0-2 (a batch re-saved with ``pickle.dump(batch, protocol=2)``).

Everything else (dicts, lists, tuples, ints, floats, strings, bytes) needs no global.
"""

from __future__ import annotations

import io
import math
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from hwnas.errors import HwnasError, one_line
from hwnas.files import MiB, read_limited

MAX_PICKLE_BYTES = 256 * MiB
"""A CIFAR-10 batch is 31 MiB; a file eight times that is not one, and reading it whole
could exhaust memory."""


class RefusedPickle(pickle.UnpicklingError):
    """The pickle is well formed but asks for something other than plain data."""


_DTYPES = frozenset({"b1", "i1", "u1", "i2", "u2", "i4", "u4", "i8", "u8", "f2", "f4", "f8"})


class _Global:
    """An allowed global as the pickle sees it: callable, with no attributes a BUILD could set.

    A pickle can BUILD (set state on) any object it holds, including what ``find_class``
    returned; plain functions and classes would accept new attributes that outlive this load.
    """

    __slots__ = ("_function",)

    def __init__(self, function: Callable[..., Any]) -> None:
        self._function = function

    def __call__(self, *args: Any) -> Any:
        return self._function(*args)

    def __setstate__(self, state: object) -> None:
        raise RefusedPickle("refused state for a global")


def _not_callable(*args: Any) -> Any:
    raise RefusedPickle("refused call of numpy.ndarray")


_NDARRAY = _Global(_not_callable)  # only meaningful as the subtype argument of _reconstruct


class _DtypeStub:
    """A numeric dtype named by the pickle; its byte order comes from the pickled state."""

    def __init__(self, name: object, align: object = 0, copy: object = 1) -> None:
        if isinstance(name, bytes):
            name = name.decode("ascii", "replace")
        if not isinstance(name, str) or name.lstrip("<>=|") not in _DTYPES:
            raise RefusedPickle(f"refused numpy dtype {name!r}")
        self.name = name.lstrip("<>=|")
        self.order = {"<": "<", ">": ">"}.get(name[0], "=")

    def __setstate__(self, state: object) -> None:
        if not (isinstance(state, tuple) and len(state) >= 8 and state[2:5] == (None,) * 3):
            raise RefusedPickle("refused numpy dtype state (only plain dtypes allowed)")
        order = state[1].decode("ascii", "replace") if isinstance(state[1], bytes) else state[1]
        if order not in ("<", ">", "=", "|"):
            raise RefusedPickle(f"refused numpy byte order {order!r}")
        self.order = "=" if order == "|" else order

    def to_numpy(self) -> np.dtype:
        return np.dtype(self.name).newbyteorder(self.order)


class _ArrayStub:
    """What ``_reconstruct`` returns; filled in by the pickle's BUILD, materialised later."""

    state: tuple | None = None

    def __setstate__(self, state: object) -> None:
        if isinstance(state, tuple) and len(state) == 5:
            state = state[1:]  # (version, shape, dtype, fortran, data)
        if not (isinstance(state, tuple) and len(state) == 4):
            raise RefusedPickle("refused numpy array state")
        self.state = state

    def to_numpy(self) -> np.ndarray:
        if self.state is None:
            raise RefusedPickle("numpy array without data")
        shape, dtype, fortran, raw = self.state
        if not (
            isinstance(shape, tuple)
            and all(isinstance(d, int) and d >= 0 for d in shape)
            and isinstance(dtype, _DtypeStub)
            and isinstance(raw, bytes | bytearray)
        ):
            raise RefusedPickle("refused numpy array state")
        dt = dtype.to_numpy()
        count = math.prod(shape)
        if count * dt.itemsize != len(raw):
            raise RefusedPickle(
                f"numpy array of shape {shape} needs {count * dt.itemsize} bytes, has {len(raw)}"
            )
        flat = np.frombuffer(raw, dtype=dt, count=count).astype(dt.newbyteorder("="))
        return flat.reshape(shape, order="F" if fortran == 1 else "C")


def _reconstruct(subtype: object, shape: object, typecode: object) -> _ArrayStub:
    if subtype is not _NDARRAY:
        raise RefusedPickle("refused numpy array subtype")
    return _ArrayStub()


def _latin1_encode(text: object, encoding: object = "utf-8", errors: object = "strict") -> bytes:
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1") or errors != "strict":
        raise RefusedPickle("refused _codecs.encode call (only str to latin1 bytes)")
    return text.encode("latin1")


_ALLOWED: dict[tuple[str, str], _Global] = {
    ("numpy.core.multiarray", "_reconstruct"): _Global(_reconstruct),
    ("numpy._core.multiarray", "_reconstruct"): _Global(_reconstruct),
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _Global(_DtypeStub),
    ("_codecs", "encode"): _Global(_latin1_encode),
}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler for data-only pickles: every global outside ``_ALLOWED`` is refused."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise RefusedPickle(f"refused global {module}.{name}") from None

    def persistent_load(self, pid: Any) -> Any:
        raise RefusedPickle("refused persistent id")


def _materialise(obj: Any, seen: dict[int, Any]) -> Any:
    """Replace array placeholders by numpy arrays throughout dicts, lists and tuples."""
    if isinstance(obj, _ArrayStub):
        return obj.to_numpy()
    if isinstance(obj, _DtypeStub | _Global):
        raise RefusedPickle("numpy dtype or function outside an array")
    if not isinstance(obj, dict | list | tuple):
        return obj
    if id(obj) in seen:
        return seen[id(obj)]
    if isinstance(obj, tuple):
        seen[id(obj)] = obj  # a cycle through a tuple would need a list or dict inside it
        result = tuple(_materialise(item, seen) for item in obj)
        seen[id(obj)] = result
        return result
    seen[id(obj)] = obj
    if isinstance(obj, dict):
        for key in list(obj):
            obj[key] = _materialise(obj[key], seen)
    else:
        obj[:] = [_materialise(item, seen) for item in obj]
    return obj


def loads_restricted(payload: bytes, encoding: str = "bytes") -> Any:
    """Unpickle ``payload`` with ``RestrictedUnpickler``; ``RefusedPickle`` for non-data.

    ``encoding="bytes"`` keeps Python 2 ``str`` values (the CIFAR keys and pixel data) as bytes.
    """
    unpickler = RestrictedUnpickler(io.BytesIO(payload), encoding=encoding)
    return _materialise(unpickler.load(), {})


def load_pickle_file(path: Path) -> Any:
    """Read a user pickle safely; any problem is an ``HwnasError`` naming the file."""
    try:
        payload = read_limited(path, "file", MAX_PICKLE_BYTES)
    except HwnasError as exc:
        raise HwnasError(f"{path}: {str(exc).partition(f'{path}: ')[2]}") from None
    try:
        return loads_restricted(payload)
    except RefusedPickle as exc:
        raise HwnasError(f"{path}: not a plain data pickle: {one_line(exc)}") from None
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        IndexError,
        KeyError,
        AttributeError,
        OverflowError,
        UnicodeDecodeError,
    ) as exc:
        raise HwnasError(
            f"{path}: corrupt pickle ({type(exc).__name__}: {one_line(exc)})"
        ) from None
    except (MemoryError, RecursionError) as exc:
        raise HwnasError(f"{path}: pickle too large or too deep ({type(exc).__name__})") from None
