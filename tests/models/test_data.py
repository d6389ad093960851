"""Tests of `models.data`: the standard library corpus, user corpora and window sampling."""

from __future__ import annotations

import sysconfig
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from models import data
from models.family import Batch


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh `HPO_CACHE_DIR` for this module, with the stdlib corpus built into it once."""
    folder = tmp_path_factory.mktemp("hpo-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HPO_CACHE_DIR", str(folder))
        data.load_corpus("stdlib")
        yield folder


@pytest.fixture(scope="module")
def stdlib(cache: Path) -> data.Corpus:
    return data.load_corpus("stdlib")


def _concat(batches: Iterator[Batch]) -> tuple[torch.Tensor, torch.Tensor]:
    inputs, targets = zip(*batches, strict=True)
    return torch.cat(inputs), torch.cat(targets)


def test_stdlib_split_is_deterministic_and_disjoint_by_file() -> None:
    train, val = data.stdlib_files()
    assert (train, val) == data.stdlib_files()
    assert not set(train) & set(val)
    assert train == sorted(train) and val == sorted(val)
    assert len(train) > 500
    assert 0.005 < len(val) / (len(train) + len(val)) < 0.05
    assert all(f.endswith(".py") and "site-packages" not in f.split("/") for f in train + val)
    assert all(zlib.crc32(f.encode()) % 50 == 0 for f in val)


def test_stdlib_corpus_is_the_files_concatenated_as_bytes(stdlib: data.Corpus) -> None:
    root = Path(sysconfig.get_paths()["stdlib"])
    train_files, val_files = data.stdlib_files()
    assert len(stdlib.train) == sum((root / f).stat().st_size for f in train_files)
    assert len(stdlib.val) == sum((root / f).stat().st_size for f in val_files)
    first = (root / val_files[0]).read_bytes()
    assert bytes(stdlib.val[: len(first)]) == first
    assert stdlib.train.dtype == np.uint8 and isinstance(stdlib.train, np.memmap)
    assert stdlib.vocab_size == 256 and stdlib.name == "stdlib"


def test_stdlib_cache_is_written_once_and_reused(
    cache: Path, stdlib: data.Corpus, monkeypatch: pytest.MonkeyPatch
) -> None:
    (folder,) = cache.iterdir()
    assert folder.name.startswith("stdlib-py3.")
    assert sorted(p.name for p in folder.iterdir()) == ["train.u8", "val.u8"]

    def fail(path: Path, contents: bytes) -> None:
        raise AssertionError(f"rewrote {path}")

    monkeypatch.setattr(data, "_write_atomic", fail)
    again = data.load_corpus("stdlib")
    assert np.array_equal(again.val, stdlib.val)
    assert len(again.train) == len(stdlib.train)


def test_atomic_write_replaces_the_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "tokens.u8"
    data._write_atomic(target, b"old contents")
    data._write_atomic(target, b"new")
    assert target.read_bytes() == b"new"
    assert [p.name for p in target.parent.iterdir()] == ["tokens.u8"]


def test_cache_dir_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HPO_CACHE_DIR", str(tmp_path / "explicit"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data.cache_dir() == tmp_path / "explicit"
    monkeypatch.delenv("HPO_CACHE_DIR")
    assert data.cache_dir() == tmp_path / "xdg" / "hpo"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert data.cache_dir() == tmp_path / ".cache" / "hpo"


def test_val_windows_are_the_same_for_every_batch_size_and_evenly_spaced() -> None:
    tokens = np.arange(1000, dtype=np.uint16)
    inputs, targets = _concat(data.val_batches(tokens, seq_len=16, batch_size=32, n_windows=10))
    for batch_size in (1, 3, 10):
        again = _concat(data.val_batches(tokens, seq_len=16, batch_size=batch_size, n_windows=10))
        assert torch.equal(again[0], inputs) and torch.equal(again[1], targets)
    assert inputs.shape == (10, 16) and inputs.dtype == torch.int64
    assert inputs[0, 0] == 0 and targets[-1, -1] == 999
    assert torch.equal(targets[:, :-1], inputs[:, 1:])
    assert inputs[:, 0].tolist() == np.linspace(0, 1000 - 17, 10).round().astype(int).tolist()


def test_train_batches_are_reproducible_per_seed_and_endless() -> None:
    tokens = np.arange(5000, dtype=np.uint16)
    first = data.train_batches(tokens, seq_len=8, batch_size=4, seed=1)
    second = data.train_batches(tokens, seq_len=8, batch_size=4, seed=1)
    other = data.train_batches(tokens, seq_len=8, batch_size=4, seed=2)
    for _ in range(50):
        (a_in, a_out), (b_in, b_out), (c_in, _) = next(first), next(second), next(other)
        assert torch.equal(a_in, b_in) and torch.equal(a_out, b_out)
        assert not torch.equal(a_in, c_in)
        assert a_in.shape == (4, 8) and a_in.dtype == torch.int64
        assert torch.equal(a_out, a_in + 1)  # windows are consecutive tokens
        assert int(a_out.max()) <= 4999


def test_train_batches_reach_both_ends_of_the_tokens() -> None:
    tokens = np.arange(12, dtype=np.uint8)
    batches = data.train_batches(tokens, seq_len=10, batch_size=64, seed=0)
    inputs, targets = next(batches)
    assert set(inputs[:, 0].tolist()) == {0, 1}
    assert int(targets.max()) == 11


def test_text_file_corpus_is_bytes_split_by_position(tmp_path: Path) -> None:
    path = tmp_path / "book.txt"
    contents = bytes(range(256)) * 40
    path.write_bytes(contents)
    corpus = data.load_corpus(str(path))
    assert corpus.vocab_size == 256 and corpus.name == str(path)
    assert bytes(corpus.train) + bytes(corpus.val) == contents
    assert len(corpus.val) == round(len(contents) * data.VAL_FRACTION)


def test_directory_corpus_is_split_by_file_with_the_stdlib_rule(tmp_path: Path) -> None:
    names = sorted(f"sub{i % 4}/file{i:03d}.txt" for i in range(200))
    for name in names:
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(f"file {name}\n")
    (tmp_path / ".hidden").write_text("never read")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "config").write_text("never read")
    corpus = data.load_corpus(str(tmp_path))
    val_names = [n for n in names if data.is_val_file(n)]
    assert 0 < len(val_names) < 20
    assert bytes(corpus.val) == "".join(f"file {n}\n" for n in val_names).encode()
    assert bytes(corpus.train) == "".join(f"file {n}\n" for n in names if n not in val_names).encode()


def test_small_directory_still_gets_one_validation_file(tmp_path: Path) -> None:
    for name in ("a.txt", "b.txt", "c.txt"):
        (tmp_path / name).write_text(name * 10)
    corpus = data.load_corpus(str(tmp_path))
    assert len(corpus.val) == 50 and len(corpus.train) == 100
    assert data.load_corpus(str(tmp_path)).val.tobytes() == corpus.val.tobytes()


def test_token_file_corpus_is_uint16_split_by_position(tmp_path: Path) -> None:
    path = tmp_path / "tokens.bin"
    tokens = (np.arange(10_000) * 7 % 5000).astype("<u2")
    tokens.tofile(path)
    corpus = data.load_corpus(str(path))
    assert corpus.vocab_size == 5000 and corpus.train.dtype == np.uint16
    assert np.array_equal(np.concatenate([corpus.train, corpus.val]), tokens)
    assert len(corpus.val) == 200
    assert data.vocab_size_of(str(path)) == 5000
    assert data.load_corpus(str(path), vocab_size=8192).vocab_size == 8192
    assert data.vocab_size_of("stdlib") == 256


@pytest.mark.parametrize(
    ("name", "contents", "message"),
    [
        ("missing.txt", None, "does not exist"),
        ("empty.txt", b"", "is empty"),
        ("odd.bin", b"abc", "not a whole number of uint16"),
        ("one.txt", b"x", "too small to split"),
    ],
)
def test_bad_corpus_files_raise_value_errors_naming_the_corpus(
    tmp_path: Path, name: str, contents: bytes | None, message: str
) -> None:
    if contents is not None:
        (tmp_path / name).write_bytes(contents)
    with pytest.raises(ValueError, match=f"corpus '.*{name}' .*{message}"):
        data.load_corpus(str(tmp_path / name))


def test_bad_corpus_folders_raise_value_errors_naming_the_corpus(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="corpus '.*' is empty"):
        data.load_corpus(str(tmp_path))
    (tmp_path / "only.txt").write_text("one file cannot be split")
    with pytest.raises(ValueError, match="corpus '.*' is too small to split"):
        data.load_corpus(str(tmp_path))


def test_a_vocab_too_small_for_the_ids_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "tokens.bin"
    np.array([1, 2, 300], dtype="<u2").tofile(path)
    with pytest.raises(ValueError, match="vocab_size"):
        data.load_corpus(str(path), vocab_size=256)
    with pytest.raises(ValueError, match="vocab_size"):
        data.vocab_size_of("stdlib", vocab_size=100)


def test_bad_window_arguments_raise_value_errors_naming_them() -> None:
    tokens = np.arange(100, dtype=np.uint8)
    with pytest.raises(ValueError, match="seq_len"):
        data.train_batches(tokens, seq_len=100, batch_size=1, seed=0)
    with pytest.raises(ValueError, match="seq_len"):
        data.val_batches(tokens, seq_len=0, batch_size=1, n_windows=1)
    with pytest.raises(ValueError, match="batch_size"):
        data.train_batches(tokens, seq_len=8, batch_size=0, seed=0)
    with pytest.raises(ValueError, match="n_windows"):
        data.val_batches(tokens, seq_len=8, batch_size=1, n_windows=0)
