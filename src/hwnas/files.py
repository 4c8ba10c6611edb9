"""Output folders, one writer each, and files written whole or not at all.

A crash or a full disk mid-write must never leave a truncated checkpoint, profile or model
where a user (or ``--resume``) would trust it: data goes to a uniquely named temporary file
beside the target, is flushed to disk, then renamed over the target in one step (a symbolic
link at the target is replaced, never followed). Two processes writing one run would mix
their results: ``run_lock`` lets one at a time hold an output folder.
"""

from __future__ import annotations

import fcntl
import gzip
import io
import json
import os
import tempfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from hwnas.errors import HwnasError, one_line


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def write_atomic(path: Path, data: bytes | str) -> None:
    """Results are read by others (a deployment, a web server): the file gets the mode a
    plain ``open`` would give it (0644 under the usual umask), not the temporary file's 0600."""
    payload = data.encode() if isinstance(data, str) else data
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fchmod(handle.fileno(), 0o666 & ~_umask())
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


@contextmanager
def run_lock(out: Path) -> Iterator[None]:
    """Hold output folder ``out`` for this process while the block runs, before anything in
    it is read or checked: a second process gets a one-line ``HwnasError``. The lock is the
    kernel's (``flock`` on the folder), so a holder that is killed releases it with its last
    breath and never leaves it stuck. A folder this call had to create, and that a failure
    leaves empty, is removed again: a refused run leaves nothing behind."""
    created = False
    if not out.exists() and not out.is_symlink():
        try:
            out.mkdir(parents=True)
            created = True
        except FileExistsError:
            pass  # another process made it just now; the lock decides between us
        except OSError as exc:
            raise HwnasError(f"--out {out}: cannot create ({exc.strerror})") from None
    if not out.is_dir():
        raise HwnasError(f"--out {out}: exists and is not a folder")
    try:
        fd = os.open(out, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise HwnasError(f"--out {out}: cannot open ({exc.strerror})") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise HwnasError(f"--out {out}: another hwnas process is writing this run; wait "
                             "for it to finish or pick another --out") from None  # fmt: skip
        try:
            yield
        except BaseException:
            if created:
                with suppress(OSError):  # only if still empty: never what the block wrote
                    out.rmdir()
            raise
    finally:
        os.close(fd)


def make_out(out: Path) -> None:
    """Create an output folder (``--out``); called only once every input has been checked,
    so a bad input leaves nothing behind."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise HwnasError(f"--out {out}: cannot create ({exc.strerror})") from None


# -- reading user files: bounded, and every failure one line naming the file -------------
KiB, MiB, GiB = 1024, 1024**2, 1024**3


def read_limited(path: Path, what: str, limit: int) -> bytes:
    """The bytes of user file ``path`` (``what``: "config", "profile", ...), refusing a
    missing file, a folder, an unreadable one (a symlink loop, no permission) and one larger
    than ``limit`` bytes, so a wrong path cannot exhaust memory. Errors read
    ``{what} {path}: ...``."""
    where = f"{what} {path}"
    try:
        if not path.exists():
            if path.is_symlink():
                raise HwnasError(f"{where}: a broken or looping symbolic link")
            raise HwnasError(f"{where}: no such file")
        if not path.is_file():
            raise HwnasError(f"{where}: not a file")
        size = path.stat().st_size
        if size > limit:
            raise HwnasError(f"{where}: {_size(size)}, larger than the {_size(limit)} allowed")
        with path.open("rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise HwnasError(f"{where}: cannot be read ({exc.strerror or exc})") from None
    except ValueError as exc:  # an embedded NUL byte in the path
        raise HwnasError(f"{what} {path!r}: not a valid path ({exc})") from None
    if len(data) > limit:  # grew while reading, or a special file that reports no size
        raise HwnasError(f"{where}: larger than the {_size(limit)} allowed")
    return data


def read_inflated(path: Path, what: str, limit: int) -> bytes:
    """``read_limited``, inflated first when the name ends in ``.gz``; a damaged stream,
    or one inflating past ``limit`` (a gzip bomb), is one line naming the file."""
    data = read_limited(path, what, limit)
    if path.suffix != ".gz":
        return data
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as handle:
            data = handle.read(limit + 1)
    except (OSError, EOFError, zlib.error) as exc:
        raise HwnasError(f"{what} {path}: cannot read as gzip ({one_line(exc)})") from None
    if len(data) > limit:
        raise HwnasError(f"{what} {path}: inflates to more than {_size(limit)}")
    return data


def read_text_limited(path: Path, what: str, limit: int) -> str:
    """``read_limited`` decoded as UTF-8; other bytes are refused naming their position."""
    data = read_limited(path, what, limit)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HwnasError(
            f"{what} {path}: not UTF-8 text (byte {data[exc.start]:#04x} at offset {exc.start})"
        ) from None


def read_json_limited(path: Path, what: str, limit: int) -> Any:
    """``read_text_limited`` parsed as JSON; text that is not JSON (or nests too deeply to
    parse) is one line naming the file and where the parse stopped."""
    text = read_text_limited(path, what, limit)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise HwnasError(f"{what} {path}: not JSON ({exc.msg} at line {exc.lineno})") from None
    except RecursionError:
        raise HwnasError(f"{what} {path}: not JSON (nested too deeply)") from None


def _size(n: int) -> str:
    for unit, scale in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} bytes"
