"""Python source code as a byte-level corpus: the running interpreter's standard library by
default, or any folder of ``.py`` files.

Every machine with Python has the standard library, so the language-model task runs offline
with no download, and bits per byte on source code does not saturate the way digits
accuracy does. Files are split into train, validation and test by a hash of their path
relative to the root: the same file always lands in the same split, whatever the seed, the
machine or files added elsewhere, and no file is cut between two splits. Each split is its
files' bytes concatenated in path order: the tokens, unless a tokenizer (a model's own
``tokenizer.json``, ``hwnas.data.tokenizer``) reads them into its ids.
"""

from __future__ import annotations

import hashlib
import os
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from hwnas.data.splits import check_fraction
from hwnas.data.tokenizer import load_tokenizer
from hwnas.errors import HwnasError

MAX_CORPUS_BYTES = 2 * 1024**3
_SKIPPED_FOLDERS = {"site-packages", "dist-packages", "__pycache__"}


@dataclass(frozen=True)
class TextData:
    """Token streams of the three splits and what they were made from: bytes (uint8) or,
    with a tokenizer, its ids (int32) and the bytes each one is charged (``token_bytes``).

    ``context``: tokens a model sees at once; ``windows_per_epoch``: training windows drawn
    per epoch; ``eval_windows``: windows, evenly spaced over a split, that quality is
    measured on; ``vocab_size``: the ids a token may take; ``tokenizer``: its identity
    (None: bytes).
    """

    name: str
    root: str
    train: torch.Tensor
    val: torch.Tensor
    test: torch.Tensor
    files: dict[str, int]
    context: int
    windows_per_epoch: int
    eval_windows: int
    fingerprint: str
    vocab_size: int = 256
    token_bytes: dict[str, torch.Tensor] | None = None
    tokenizer: dict[str, Any] | None = None

    def split(self, name: str) -> torch.Tensor:
        return getattr(self, name)

    def byte_counts(self) -> dict[str, int]:
        """Bytes of text in each split (as many as tokens, without a tokenizer)."""
        if self.token_bytes is None:
            return {split: len(self.split(split)) for split in ("train", "val", "test")}
        return {split: int(self.token_bytes[split].sum()) for split in ("train", "val", "test")}


def standard_library() -> Path:
    """The running interpreter's own library folder (``os.py`` and its siblings)."""
    return Path(sysconfig.get_paths()["stdlib"])


def python_files(root: Path) -> list[Path]:
    """Every ``.py`` file under ``root``, sorted by relative path, skipping installed packages,
    caches, hidden folders and symbolic links (a link may lead out of the corpus)."""
    found = []
    for folder, subfolders, names in os.walk(root):
        subfolders[:] = sorted(
            d for d in subfolders if d not in _SKIPPED_FOLDERS and not d.startswith(".")
        )
        for name in names:
            path = Path(folder) / name
            if name.endswith(".py") and not path.is_symlink() and path.is_file():
                found.append(path)
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def split_of(relative: str, val_fraction: float, test_fraction: float) -> str:
    """Test, validation or train, from a hash of the file's relative path."""
    position = int.from_bytes(hashlib.sha256(relative.encode()).digest()[:8], "big") / 2**64
    if position < test_fraction:
        return "test"
    return "val" if position < test_fraction + val_fraction else "train"


def load_python_sources(
    path: str | Path | None = None,
    seed: int = 0,
    context: int = 128,
    windows_per_epoch: int = 2048,
    eval_windows: int = 128,
    val_fraction: float = 0.05,
    test_fraction: float = 0.05,
    tokenizer: str | None = None,
) -> TextData:
    """The ``.py`` files under ``path`` (default: this interpreter's standard library), as
    bytes or, with ``tokenizer`` (a ``tokenizer.json`` or a model folder holding one), as
    its token ids.

    ``seed`` does not move the split (it is fixed by path); it is accepted like every
    loader's. Each split must hold at least one file and more than ``context`` tokens.
    """
    del seed
    for name, value, low in (("context", context, 2), ("windows_per_epoch", windows_per_epoch, 1),
                             ("eval_windows", eval_windows, 1)):  # fmt: skip
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise HwnasError(f"data.{name} must be an integer of at least {low}, got {value!r}")
    check_fraction("val_fraction", val_fraction, allow_zero=False)
    check_fraction("test_fraction", test_fraction, allow_zero=False)
    reader = load_tokenizer(tokenizer) if tokenizer is not None else None  # before the corpus
    bundled = path is None
    root = standard_library() if bundled else Path(path).expanduser()
    where = "the standard library" if bundled else "data.path"
    if not root.is_dir():
        raise HwnasError(f"{where} {root}: no such folder")
    files = python_files(root)
    if not files:
        raise HwnasError(f"{where} {root}: holds no .py files")
    parts: dict[str, list[bytes]] = {"train": [], "val": [], "test": []}
    digest = hashlib.sha256()
    total = 0
    for file in files:
        relative = file.relative_to(root).as_posix()
        try:
            content = file.read_bytes()
        except OSError as exc:
            raise HwnasError(f"{file}: cannot be read ({exc.strerror})") from None
        total += len(content)
        if total > MAX_CORPUS_BYTES:
            raise HwnasError(f"{where} {root}: more than 2 GiB of .py files; point at less")
        parts[split_of(relative, val_fraction, test_fraction)].append(content)
        digest.update(f"{relative}\0{len(content)}\0".encode())
        digest.update(content)
    streams, charged = {}, {}
    unit = "bytes" if reader is None else "tokens"
    for split, contents in parts.items():
        data = b"".join(contents)
        if reader is None:
            streams[split] = torch.frombuffer(bytearray(data), dtype=torch.uint8)
        else:
            streams[split], charged[split] = reader.encode(data)
        if not contents or len(streams[split]) <= context + 1:
            raise HwnasError(
                f"{where} {root}: the {split} split got {len(contents)} file(s), "
                f"{len(streams[split])} {unit}; it needs more than context + 1 = {context + 1} "
                "(add files or shorten data.context)"
            )
    return TextData(
        name="python",
        root=str(root),
        **streams,
        files={split: len(contents) for split, contents in parts.items()},
        context=context,
        windows_per_epoch=windows_per_epoch,
        eval_windows=eval_windows,
        fingerprint=digest.hexdigest()[:16],
        **({} if reader is None else {"vocab_size": reader.vocab_size, "token_bytes": charged,
                                      "tokenizer": reader.describe()}),
    )  # fmt: skip
