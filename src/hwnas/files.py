"""Output folders, and files written whole or not at all.

A crash or a full disk mid-write must never leave a truncated checkpoint, profile or model
where a user (or ``--resume``) would trust it: data goes to a uniquely named temporary file
beside the target, is flushed to disk, then renamed over the target in one step.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from hwnas.errors import HwnasError


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


def make_out(out: Path) -> None:
    """Create an output folder (``--out``); called only once every input has been checked,
    so a bad input leaves nothing behind."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise HwnasError(f"--out {out}: cannot create ({exc.strerror})") from None
