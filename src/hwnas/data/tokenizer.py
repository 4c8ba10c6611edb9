"""A model's own tokenizer, for text: a Hugging Face ``tokenizer.json`` read by ``tokenizers``.

A pretrained language model reads token ids of its tokenizer, not bytes; fed bytes it
scores as noise. ``load_tokenizer`` reads the ``tokenizer.json`` of a model folder (or the
file itself) with no network access: the file is JSON, so nothing in it runs.

Bits per byte stays the quality metric, so that models reading text differently compare:
every token is charged the bytes of text from its start to the next token's start
(``Tokenizer.encode``), so the bytes of a split are charged exactly once, whatever the
tokenizer merges, splits or trims.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hwnas.errors import HwnasError, one_line
from hwnas.files import read_json_limited, read_text_limited

TOKENIZER_FILE = "tokenizer.json"
MAX_TOKENIZER_BYTES = 512 << 20
OTHER_TOKENIZER_FILES = ("tokenizer.model", "vocab.json", "merges.txt", "spiece.model")
CHUNK_BYTES = 1 << 20  # texts are encoded in pieces of about this size, cut after a newline
_ESCAPED = re.compile("[\udc80-\udcff]")  # bytes that are not UTF-8, kept by surrogateescape


@dataclass(frozen=True)
class Tokenizer:
    """A loaded tokenizer: its file, ``vocab_size`` ids (the model's vocabulary, which may
    extend past the tokenizer's own ids) and the file's digest, which identifies it."""

    path: Path
    vocab_size: int
    sha256: str
    backend: Any

    def describe(self) -> dict[str, Any]:
        return {"path": str(self.path), "sha256": self.sha256, "vocab_size": self.vocab_size}

    def encode(self, data: bytes) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids of ``data`` (int32) and the bytes each token is charged (int32; they sum
        to ``len(data)``). Bytes that are not UTF-8 reach the tokenizer as U+FFFD and are
        charged as the bytes they were."""
        pieces = list(_pieces(data))
        ids, charged, carried = [], [], 0
        for start in range(0, len(pieces), 16):  # a batch: the tokenizer uses every core
            batch = pieces[start : start + 16]
            texts = [_ESCAPED.sub("\ufffd", text) for text in batch]
            for text, encoding in zip(
                batch, self.backend.encode_batch(texts, add_special_tokens=False), strict=True
            ):
                char_bytes = _utf8_lengths(text)
                if not encoding.ids:  # nothing to charge these bytes to: the next token pays
                    carried += int(char_bytes.sum())
                    continue
                ends = np.concatenate([[0], np.cumsum(char_bytes)])
                starts = ends[np.array(encoding.offsets, dtype=np.int64).reshape(-1, 2)[:, 0]]
                starts[0] = 0
                bounds = np.append(np.maximum.accumulate(starts), ends[-1])
                cost = np.diff(bounds)
                cost[0] += carried
                carried = 0
                ids.append(np.asarray(encoding.ids, dtype=np.int32))
                charged.append(cost.astype(np.int32))
        if carried and charged:
            charged[-1][-1] += carried
        if not ids:
            return torch.zeros(0, dtype=torch.int32), torch.zeros(0, dtype=torch.int32)
        tokens = torch.from_numpy(np.concatenate(ids))
        if int(tokens.max()) >= self.vocab_size:
            raise HwnasError(f"tokenizer {self.path}: gave id {int(tokens.max())}, outside its "
                             f"vocabulary of {self.vocab_size}")  # fmt: skip
        return tokens, torch.from_numpy(np.concatenate(charged))


def _pieces(data: bytes):
    """``data`` as text in pieces of about ``CHUNK_BYTES``, each ending after a newline (so
    no character is cut), undecodable bytes kept as surrogate escapes."""
    begin = 0
    while begin < len(data):
        cut = data.find(b"\n", begin + CHUNK_BYTES)
        end = len(data) if cut < 0 else cut + 1
        yield data[begin:end].decode("utf-8", errors="surrogateescape")
        begin = end


def _utf8_lengths(text: str) -> np.ndarray:
    """Bytes each character of ``text`` stood for: its UTF-8 length, one for an escaped byte."""
    points = np.frombuffer(text.encode("utf-32-le", errors="surrogatepass"), dtype=np.uint32)
    lengths = 1 + (points >= 0x80) + (points >= 0x800) + (points >= 0x10000)
    escaped = (points >= 0xDC80) & (points <= 0xDCFF)
    return np.where(escaped, 1, lengths).astype(np.int64)


def tokenizer_file(path: Path) -> Path:
    """The ``tokenizer.json`` that ``path`` (the file, or a model folder) names."""
    return path / TOKENIZER_FILE if path.is_dir() else path


def folder_tokenizer(folder: Path) -> Path | None:
    """A model folder's ``tokenizer.json``; None when it has no tokenizer files at all (its
    text is then bytes). A folder with only a slow tokenizer's files is refused: reading them
    needs the model's own Python code."""
    if (folder / TOKENIZER_FILE).is_file():
        return folder / TOKENIZER_FILE
    others = [name for name in OTHER_TOKENIZER_FILES if (folder / name).exists()]
    if others:
        raise HwnasError(
            f"model {folder}: has {', '.join(others)} but no {TOKENIZER_FILE}; only a fast "
            f"tokenizer's {TOKENIZER_FILE} is read (transformers' AutoTokenizer.from_pretrained("
            "folder).save_pretrained(folder) writes one)"
        )
    return None


def load_tokenizer(path: str | Path) -> Tokenizer:
    """The tokenizer of ``path``: a ``tokenizer.json``, or a model folder holding one. In a
    folder whose ``config.json`` names a larger ``vocab_size`` (a vocabulary padded for
    speed), the ids run up to that. A run asks for it when its config is checked and again
    when the text loads: the files are read and parsed once while they stay unchanged."""
    path = Path(path).expanduser()
    where = f"tokenizer {path}"
    if not path.exists():
        raise HwnasError(f"{where}: no such file or folder")
    file = tokenizer_file(path)
    if path.is_dir() and not file.is_file():
        folder_tokenizer(path)  # a slow tokenizer's files: say so
        raise HwnasError(f"{where}: the folder has no {TOKENIZER_FILE}")
    config = path / "config.json" if path.is_dir() else None
    return _parsed(file, config, _stamp(file), _stamp(config))


def _stamp(path: Path | None) -> tuple[int, int] | None:
    """What tells a file changed (modification time, size); None when there is none."""
    if path is None or not path.is_file():
        return None
    status = path.stat()
    return status.st_mtime_ns, status.st_size


@functools.lru_cache(maxsize=8)
def _parsed(file: Path, config: Path | None, *stamps: tuple[int, int] | None) -> Tokenizer:
    """``load_tokenizer``'s reading and parsing; ``stamps`` key the cache to the files'
    versions."""
    where = f"tokenizer {file}"
    try:
        from tokenizers import Tokenizer as Backend
    except ImportError:
        raise HwnasError(f"{where}: reading it needs the tokenizers package "
                         "(pip install 'hwnas[llama]')") from None  # fmt: skip
    text = read_text_limited(file, "tokenizer", MAX_TOKENIZER_BYTES)
    try:
        backend = Backend.from_str(text)
    except Exception as exc:  # tokenizers raises plain Exceptions for any bad file
        raise HwnasError(f"tokenizer {file}: does not load ({one_line(exc)})") from None
    vocab_size = backend.get_vocab_size(with_added_tokens=True)
    if vocab_size < 1:
        raise HwnasError(f"tokenizer {file}: has no tokens")
    padded = _config_vocab(config) if config is not None else None
    if padded is not None and padded < vocab_size:
        raise HwnasError(f"tokenizer {file}: has {vocab_size} tokens, more than the "
                         f"vocab_size {padded} of {config}")  # fmt: skip
    sha256 = hashlib.sha256(text.encode()).hexdigest()
    return Tokenizer(file, padded or vocab_size, sha256, backend)


def _config_vocab(config: Path) -> int | None:
    """The ``vocab_size`` a model folder's ``config.json`` gives, if it gives one."""
    if not config.is_file():
        return None
    raw = read_json_limited(config, "model config", 64 << 20)
    value = raw.get("vocab_size") if isinstance(raw, dict) else None
    return value if type(value) is int and value > 0 else None
