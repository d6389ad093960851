"""Token corpora and the windows the `gpt` family trains and evaluates on.

A `Corpus` is a train and a validation array of token ids (1-D, uint8 or
uint16) and the vocabulary size. `load_corpus(source)` reads one of:

- ``"stdlib"``: the Python standard library's own ``.py`` sources as bytes
  (vocab 256), ~1800 files and ~31 MB on CPython 3.11, outside
  ``site-packages``, concatenated in the order of their sorted relative paths.
  Built once into ``cache_dir()/stdlib-py<version>-<digest>/{train,val}.u8``
  (the digest covers the file list and sizes), written atomically so that
  trial processes building it at once never read a half file, then opened as
  a `numpy.memmap`.
- a text file: its bytes (vocab 256); the last ~2% of the bytes are validation.
- a directory of text files: the bytes of its non-hidden files (vocab 256),
  read into memory and split by file like the standard library.
- a ``.bin`` file of little-endian uint16 token ids, memory-mapped: the last
  ~2% of the tokens are validation; the vocab is given or the largest id + 1.

Splits by file put a file in validation when ``zlib.crc32`` of its relative
POSIX path is 0 modulo 50 (~2% of files): stable across runs, machines and
Python's hash randomisation, and a file keeps its split when others are added.

Windows: an example is ``seq_len + 1`` consecutive tokens; the inputs are the
first ``seq_len`` and the targets the last ``seq_len`` (int64 tensors of shape
``(batch_size, seq_len)``). `train_batches` draws window starts uniformly with
``numpy.random.default_rng(seed)``, endlessly; `val_batches` yields a fixed set
of evenly spaced windows in order, the same for every seed and batch size.
"""

from __future__ import annotations

import hashlib
import os
import platform
import sysconfig
import tempfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.family import Batch

BYTE_VOCAB = 256
"""Vocabulary size of byte corpora (tokens are bytes)."""
VAL_FRACTION = 0.02
"""Share of a position-split corpus (a text or ``.bin`` file) held out for validation."""
_VAL_BUCKETS = 50
"""A file is in validation when ``crc32(relative path) % _VAL_BUCKETS == 0`` (~2% of files)."""


@dataclass(frozen=True)
class Corpus:
    """Token ids split into train and validation.

    ``train`` and ``val`` are 1-D arrays of token ids (uint8 for byte corpora,
    uint16 for ``.bin`` files; possibly `numpy.memmap`), every id below
    ``vocab_size``. ``name`` is the source it was loaded from.
    """

    train: np.ndarray
    val: np.ndarray
    vocab_size: int
    name: str


def cache_dir() -> Path:
    """Folder for cached corpora: ``$HPO_CACHE_DIR``, else ``$XDG_CACHE_HOME/hpo``,
    else ``~/.cache/hpo``."""
    if os.environ.get("HPO_CACHE_DIR"):
        return Path(os.environ["HPO_CACHE_DIR"])
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "hpo"
    return Path.home() / ".cache" / "hpo"


def is_val_file(relative_path: str) -> bool:
    """Whether a file of a split-by-file corpus goes to validation, by a stable
    hash of its relative POSIX path."""
    return zlib.crc32(relative_path.encode("utf-8")) % _VAL_BUCKETS == 0


def check_source(source: str) -> None:
    """Raise `ValueError` naming `source` unless it is ``"stdlib"`` or an existing path."""
    if source != "stdlib" and not Path(source).exists():
        raise ValueError(f"corpus {source!r} does not exist: give 'stdlib' or a path to a file or folder")


def stdlib_files() -> tuple[list[str], list[str]]:
    """Relative POSIX paths of the standard library's ``.py`` files (outside
    ``site-packages``), sorted, as ``(train, val)``."""
    root = _stdlib_root()
    files = _relative_files(root, lambda name: name.endswith(".py"), skip_dirs={"site-packages"})
    return _split_by_file(files)


def vocab_size_of(source: str, vocab_size: int | None = None) -> int:
    """The vocabulary size `load_corpus(source, vocab_size)` gives, without
    reading a byte corpus: 256 for bytes; for a ``.bin`` file `vocab_size`, else
    its largest id + 1 (one pass over the file)."""
    check_source(source)
    needed = int(_read_tokens(Path(source)).max()) + 1 if _is_token_file(source) else BYTE_VOCAB
    return _check_vocab(source, needed, vocab_size)


def load_corpus(source: str, vocab_size: int | None = None) -> Corpus:
    """The corpus at `source`: ``"stdlib"`` (which wins over a file of that
    name), a text file, a directory of text files, or a ``.bin`` file of uint16
    token ids (see the module docstring).

    `vocab_size` defaults to 256 for byte corpora and to the largest id + 1 for
    ``.bin`` files; a given one must cover every id.
    """
    check_source(source)
    needed = BYTE_VOCAB
    if source == "stdlib":
        train, val = _stdlib_arrays()
    elif Path(source).is_dir():
        train, val = _directory_arrays(Path(source))
    else:
        tokens = _read_tokens(Path(source)) if _is_token_file(source) else _read_bytes(Path(source))
        if len(tokens) == 0:
            raise ValueError(f"corpus {source!r} is empty")
        if _is_token_file(source):
            needed = int(tokens.max()) + 1
        n_val = max(1, round(len(tokens) * VAL_FRACTION))
        train, val = tokens[:-n_val], tokens[-n_val:]
    if len(train) == 0 or len(val) == 0:
        raise ValueError(
            f"corpus {source!r} is too small to split into train and val: "
            f"{len(train)} train and {len(val)} val tokens"
        )
    return Corpus(train=train, val=val, vocab_size=_check_vocab(source, needed, vocab_size), name=source)


def train_batches(tokens: np.ndarray, seq_len: int, batch_size: int, seed: int) -> Iterator[Batch]:
    """Endless batches of `batch_size` windows of `seq_len` + 1 tokens at
    uniformly random starts, drawn by ``numpy.random.default_rng(seed)``."""
    _check_windows(tokens, seq_len, batch_size, "train")
    return _train_batches(tokens, seq_len, batch_size, np.random.default_rng(seed))


def val_batches(tokens: np.ndarray, seq_len: int, batch_size: int, n_windows: int) -> Iterator[Batch]:
    """`n_windows` evenly spaced windows of `seq_len` + 1 tokens (first at the
    start, last at the end of `tokens`), in order, in batches of `batch_size`
    (the last one smaller when `batch_size` does not divide `n_windows`)."""
    _check_windows(tokens, seq_len, batch_size, "val")
    if n_windows < 1:
        raise ValueError(f"n_windows={n_windows!r} is invalid: use an integer >= 1")
    starts = np.linspace(0, len(tokens) - seq_len - 1, num=n_windows).round().astype(np.int64)
    return (_windows(tokens, starts[i : i + batch_size], seq_len) for i in range(0, n_windows, batch_size))


def _train_batches(
    tokens: np.ndarray, seq_len: int, batch_size: int, rng: np.random.Generator
) -> Iterator[Batch]:
    while True:
        starts = rng.integers(0, len(tokens) - seq_len, size=batch_size)
        yield _windows(tokens, starts, seq_len)


def _windows(tokens: np.ndarray, starts: np.ndarray, seq_len: int) -> Batch:
    import torch  # here, not at the top: reading a corpus's size or vocabulary needs no torch

    windows = np.asarray(tokens[starts[:, None] + np.arange(seq_len + 1)], dtype=np.int64)  # (B, T + 1)
    batch = torch.from_numpy(windows)
    return batch[:, :-1].contiguous(), batch[:, 1:].contiguous()  # (B, T), (B, T)


def _check_windows(tokens: np.ndarray, seq_len: int, batch_size: int, split: str) -> None:
    if seq_len < 1:
        raise ValueError(f"seq_len={seq_len!r} is invalid: use an integer >= 1")
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r} is invalid: use an integer >= 1")
    if len(tokens) < seq_len + 1:
        raise ValueError(
            f"the {split} split has {len(tokens)} tokens, fewer than one window of seq_len + 1 = "
            f"{seq_len + 1}: use a smaller seq_len or a bigger corpus"
        )


def _stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def _stdlib_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The standard library's train and val bytes, built into the cache the
    first time (atomically, so concurrent builders never expose a half file)."""
    root = _stdlib_root()
    train_files, val_files = stdlib_files()
    digest = hashlib.sha256()
    for relative in sorted(train_files + val_files):
        digest.update(f"{relative}\0{(root / relative).stat().st_size}\n".encode())
    folder = cache_dir() / f"stdlib-py{platform.python_version()}-{digest.hexdigest()[:12]}"
    arrays = []
    for split, files in (("train", train_files), ("val", val_files)):
        path = folder / f"{split}.u8"
        if not path.exists():
            _write_atomic(path, b"".join((root / relative).read_bytes() for relative in files))
        arrays.append(np.memmap(path, dtype=np.uint8, mode="r"))
    return arrays[0], arrays[1]


def _write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` (mode 0644, readable by other users of a shared
    cache) through a temporary file in the same folder and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(handle, 0o644)
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _directory_arrays(root: Path) -> tuple[np.ndarray, np.ndarray]:
    """Bytes of the non-hidden files under `root`, split by file. A folder too
    small for the hash bucket to pick any file gives its file with the smallest
    hash to validation."""
    files = _relative_files(root, lambda name: not name.startswith("."), skip_dirs=set())
    if sum((root / relative).stat().st_size for relative in files) == 0:
        raise ValueError(f"corpus {str(root)!r} is empty: a folder with no non-empty files")
    train_files, val_files = _split_by_file(files)
    if not val_files:
        first = min(files, key=lambda relative: (zlib.crc32(relative.encode("utf-8")), relative))
        train_files, val_files = [f for f in files if f != first], [first]
    train, val = (
        np.frombuffer(b"".join((root / relative).read_bytes() for relative in part), dtype=np.uint8)
        for part in (train_files, val_files)
    )
    return train, val


def _relative_files(root: Path, keep: Callable[[str], bool], skip_dirs: set[str]) -> list[str]:
    """Sorted relative POSIX paths of the files under `root` whose name passes
    `keep`, not descending into hidden folders or folders named in `skip_dirs`."""
    files = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if d not in skip_dirs and not d.startswith(".")]
        base = Path(folder).relative_to(root)
        files.extend((base / name).as_posix() for name in names if keep(name))
    return sorted(files)


def _split_by_file(files: list[str]) -> tuple[list[str], list[str]]:
    train = [f for f in files if not is_val_file(f)]
    val = [f for f in files if is_val_file(f)]
    return train, val


def _check_vocab(source: str, needed: int, vocab_size: int | None) -> int:
    if vocab_size is None:
        return needed
    if vocab_size < needed:
        raise ValueError(f"vocab_size={vocab_size} is too small for corpus {source!r}: it needs {needed}")
    return vocab_size


def _is_token_file(source: str) -> bool:
    return source.endswith(".bin") and Path(source).is_file()


def _read_bytes(path: Path) -> np.ndarray:
    return np.frombuffer(path.read_bytes(), dtype=np.uint8)


def _read_tokens(path: Path) -> np.ndarray:
    """A ``.bin`` file of little-endian uint16 token ids, memory-mapped."""
    size = path.stat().st_size
    if size == 0:
        raise ValueError(f"corpus {str(path)!r} is empty")
    if size % 2:
        raise ValueError(f"corpus {str(path)!r} has {size} bytes, not a whole number of uint16 token ids")
    return np.memmap(path, dtype="<u2", mode="r")
