"""hwnas.data: splits, loaders (digits, CIFAR-10 pickles, image folders), augmentation, registry."""

from __future__ import annotations

import os
import pickle
import struct
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hwnas.data import (
    DATASETS,
    Augment,
    calibration_subset,
    load_cifar10,
    load_dataset,
    load_digits,
    load_image_folder,
    stratified_split,
)
from hwnas.data.safe_pickle import RefusedPickle, loads_restricted
from hwnas.errors import HwnasError

# -- splits ------------------------------------------------------------------------------


def test_stratified_split_is_disjoint_covering_exact_and_seeded():
    labels = np.repeat(np.arange(4), [10, 20, 30, 40])
    train, val, test = stratified_split(labels, 0, 0.2, 0.1)
    assert (len(train), len(val), len(test)) == (70, 20, 10)
    assert np.array_equal(np.sort(np.concatenate([train, val, test])), np.arange(100))
    assert np.array_equal(np.bincount(labels[val]), [2, 4, 6, 8])  # proportions kept exactly
    again = stratified_split(labels, 0, 0.2, 0.1)
    assert all(np.array_equal(a, b) for a, b in zip((train, val, test), again, strict=True))
    assert not np.array_equal(val, stratified_split(labels, 1, 0.2, 0.1)[1])


@pytest.mark.parametrize(("val", "test"), [(0.0, 0.1), (0.5, 0.5), (1.2, 0.0), (0.1, -0.1)])
def test_stratified_split_refuses_bad_fractions(val, test):
    with pytest.raises(HwnasError, match="fraction"):
        stratified_split(np.arange(10) % 2, 0, val, test)


def test_stratified_split_refuses_too_few_samples():
    with pytest.raises(HwnasError, match="too few"):
        stratified_split(np.array([0, 1]), 0, 0.3, 0.3)


# -- digits ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits():
    return load_digits(seed=0)


def _rows(x: torch.Tensor) -> set[bytes]:
    return {row.numpy().tobytes() for row in x}


def test_digits_shapes_classes_and_normalisation(digits):
    assert (digits.name, digits.num_classes, digits.in_channels, digits.image_size) == (
        "digits", 10, 1, 32,
    )  # fmt: skip
    sizes = [len(s) for s in (digits.train, digits.val, digits.test)]
    assert sum(sizes) == 1797 and sizes[1] == sizes[2] == 270
    for split in (digits.train, digits.val, digits.test):
        x, y = split.tensors
        assert x.dtype == torch.float32 and x.shape[1:] == (1, 32, 32)
        assert y.dtype == torch.int64 and set(y.tolist()) == set(range(10))
    x = digits.train.tensors[0]
    assert abs(float(x.mean())) < 1e-4 and abs(float(x.std()) - 1) < 1e-3
    assert digits.augment == Augment(pad=4, hflip=False)


def test_digits_splits_disjoint_covering_and_seeded(digits):
    from sklearn.datasets import load_digits as sklearn_digits

    raw = torch.as_tensor(sklearn_digits().images, dtype=torch.float32)[:, None] / 16
    raw = torch.nn.functional.interpolate(raw, size=(32, 32), mode="bilinear")
    everything = Counter(_rows((raw - digits.mean[0]) / digits.std[0]))
    parts = [Counter(_rows(s.tensors[0])) for s in (digits.train, digits.val, digits.test)]
    assert parts[0] + parts[1] + parts[2] == everything  # disjoint and covering, as multisets

    same = load_digits(seed=0)
    other = load_digits(seed=1, image_size=24)
    for a, b in zip(
        (digits.train, digits.val, digits.test), (same.train, same.val, same.test), strict=True
    ):
        assert torch.equal(a.tensors[0], b.tensors[0]) and torch.equal(a.tensors[1], b.tensors[1])
    assert other.image_size == 24 and other.val.tensors[0].shape[1:] == (1, 24, 24)
    assert not torch.equal(digits.val.tensors[1], other.val.tensors[1])


# -- CIFAR-10 pickles --------------------------------------------------------------------


class _Python2Pickler(pickle._Pickler):
    """What Python 2's cPickle wrote for the official batches at protocol 2: every str (keys,
    the pixel bytes, numpy's typecodes) as BINSTRING, numpy under ``numpy.core.multiarray``,
    and numpy's dtype flags as ints."""

    dispatch = dict(pickle._Pickler.dispatch)

    def _save_str(self, obj):
        raw = obj if isinstance(obj, bytes) else obj.encode("latin1")
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(obj)

    def _save_bool(self, obj):
        self.save_long(int(obj))

    dispatch[bytes] = _save_str
    dispatch[str] = _save_str
    dispatch[bool] = _save_bool

    def save_global(self, obj, name=None):
        module = obj.__module__.replace("numpy._core", "numpy.core")
        self.write(pickle.GLOBAL + f"{module}\n{name or obj.__qualname__}\n".encode())
        self.memoize(obj)


def _python2_dump(obj, path: Path) -> None:
    with path.open("wb") as handle:
        _Python2Pickler(handle, protocol=2).dump(obj)


def _batch(n: int, start: int) -> dict:
    rng = np.random.default_rng(start)
    data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    data[:, 0] = np.arange(start, start + n)  # image identity in the red top-left pixel
    labels = [int(v) for v in (np.arange(start, start + n) % 10)]
    return {
        b"batch_label": b"training batch",
        b"labels": labels,
        b"data": data,
        b"filenames": [f"img_{i}.png".encode() for i in range(start, start + n)],
    }


@pytest.fixture()
def cifar_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    _python2_dump(_batch(20, 0), folder / "data_batch_1")
    _python2_dump(_batch(20, 20), folder / "data_batch_2")
    _python2_dump(_batch(10, 100), folder / "test_batch")
    return folder


def test_fixture_writer_matches_the_official_python2_layout(cifar_dir):
    payload = (cifar_dir / "data_batch_1").read_bytes()
    # the opening of the official files: PROTO 2, dict, then SHORT_BINSTRING keys and numpy
    # globals under their Python 2 names; no _codecs (Python 3's way of writing bytes)
    assert payload.startswith(b"\x80\x02}")
    assert b"cnumpy.core.multiarray\n_reconstruct\n" in payload and b"_codecs" not in payload
    assert b"U\x04data" in payload and b"U\x02u1" in payload
    # the official loader recipe, pickle.load(f, encoding="bytes"), reads it back
    batch = pickle.loads(payload, encoding="bytes")
    assert batch[b"data"].dtype == np.uint8 and batch[b"data"].shape == (20, 3072)


def test_cifar_loads_with_right_shapes_labels_and_pixels(cifar_dir):
    data = load_cifar10(cifar_dir.parent, seed=0, val_fraction=0.2)  # parent folder also works
    assert (data.name, data.num_classes, data.in_channels, data.image_size) == (
        "cifar10", 10, 3, 32,
    )  # fmt: skip
    assert (len(data.train), len(data.val), len(data.test)) == (32, 8, 10)
    assert data.class_names[0] == "airplane" and data.augment.hflip
    train_y = torch.cat([data.train.tensors[1], data.val.tensors[1]])
    assert sorted(train_y.tolist()) == sorted(list(range(10)) * 4)

    x, y = data.test.tensors
    assert x.shape == (10, 3, 32, 32) and y.tolist() == [(100 + i) % 10 for i in range(10)]
    raw = _batch(10, 100)[b"data"]
    mean, std = torch.tensor(data.mean), torch.tensor(data.std)
    pixels = (x * std[:, None, None] + mean[:, None, None]) * 255
    for c, r, col in [(0, 0, 0), (1, 5, 7), (2, 31, 30)]:  # data[i, c*1024 + r*32 + col]
        expected = torch.from_numpy(raw[:, c * 1024 + r * 32 + col].astype(np.float32))
        assert torch.allclose(pixels[:, c, r, col], expected, atol=1e-3)


def test_cifar_accepts_batches_resaved_with_python3_protocol2(cifar_dir):
    for name in ("data_batch_1", "data_batch_2", "test_batch"):
        batch = pickle.loads((cifar_dir / name).read_bytes(), encoding="bytes")
        with (cifar_dir / name).open("wb") as handle:
            pickle.dump(batch, handle, protocol=2)  # bytes via _codecs.encode, numpy._core
    assert b"_codecs" in (cifar_dir / "test_batch").read_bytes()
    data = load_cifar10(cifar_dir, seed=0, val_fraction=0.2, image_size=16)
    assert data.test.tensors[0].shape == (10, 3, 16, 16)


_CALLED: list[str] = []


def _record(value):  # a stand-in for a harmful function: records that it ran
    _CALLED.append(value)
    return {b"data": np.zeros((1, 3072), np.uint8), b"labels": [0]}


class _Evil:
    def __init__(self, reduce):
        self.reduce = reduce

    def __reduce__(self):
        return self.reduce


@pytest.mark.parametrize("kind", ["os.system", "module function", "object array", "instance"])
def test_pickle_with_forbidden_global_is_refused_and_never_runs(cifar_dir, tmp_path, kind):
    marker = tmp_path / "pwned"
    payload = {
        "os.system": _Evil((os.system, (f"touch {marker}",))),
        "module function": _Evil((_record, ("ran",))),
        "object array": {b"data": np.array([1, "x"], dtype=object), b"labels": [0]},
        "instance": {b"data": np.zeros((1, 3072), np.uint8), b"labels": [0], b"x": Augment()},
    }[kind]
    with (cifar_dir / "test_batch").open("wb") as handle:
        pickle.dump(payload, handle, protocol=2)
    with pytest.raises(HwnasError, match="test_batch: not a plain data pickle: refused"):
        load_cifar10(cifar_dir)
    assert not marker.exists() and not _CALLED


def test_restricted_unpickler_keeps_its_allowed_globals_immutable():
    # BUILD on the numpy.ndarray stand-in, trying to give it attributes for later loads
    payload = b"\x80\x02cnumpy\nndarray\n}(U\x01xK\x01u}\x86b."
    with pytest.raises(RefusedPickle, match="refused state for a global"):
        loads_restricted(payload)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("data_batch_1", None, "data_batch_1: CIFAR-10 training batch not found"),
        ("test_batch", None, "test_batch: CIFAR-10 test batch not found"),
        ("test_batch", b"\x80\x02}q\x00(U", "test_batch: corrupt pickle"),
        ("data_batch_2", b"garbage", "data_batch_2: "),
    ],
)
def test_cifar_missing_or_corrupt_files(cifar_dir, name, content, message):
    if content is None:
        (cifar_dir / name).unlink()
    else:
        (cifar_dir / name).write_bytes(content)
    with pytest.raises(HwnasError, match=message):
        load_cifar10(cifar_dir)


def test_cifar_missing_folder(tmp_path):
    with pytest.raises(HwnasError, match="nowhere.*not found"):
        load_cifar10(tmp_path / "nowhere")


@pytest.mark.parametrize(
    ("batch", "message"),
    [
        ({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, r"shape \(N, 3072\)"),
        ({b"data": np.zeros((2, 3072), np.float32), b"labels": [0, 1]}, "uint8"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, "2 images but 1 labels"),
        ({b"data": np.zeros((1, 3072), np.uint8), b"labels": [10]}, r"labels must be in 0\.\.9"),
        ({b"labels": [0]}, "needs 'data' and 'labels'"),
        ([1, 2, 3], "expected a pickled dict"),
    ],
)
def test_cifar_wrong_contents(cifar_dir, batch, message):
    _python2_dump(batch, cifar_dir / "test_batch")
    with pytest.raises(HwnasError, match=f"test_batch: .*{message}"):
        load_cifar10(cifar_dir)


# -- image folders -----------------------------------------------------------------------


def _image_folder(root: Path, grey_only: bool = False) -> Path:
    rng = np.random.default_rng(0)
    for k, name in enumerate(["zebra", "apple", "mango"]):
        (root / name).mkdir(parents=True)
        for i in range(6):
            size = (10 + i, 12)
            if grey_only or i % 2:
                pixels = rng.integers(0, 256, size=size[::-1], dtype=np.uint8)
            else:
                pixels = rng.integers(0, 256, size=(*size[::-1], 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{k}_{i}.png")
    (root / "apple" / "notes.txt").write_text("not an image, skipped")
    return root


def test_image_folder_loads_sorted_classes_resized(tmp_path):
    data = load_image_folder(_image_folder(tmp_path / "imgs"), image_size=16, seed=0)
    assert data.class_names == ("apple", "mango", "zebra") and data.num_classes == 3
    assert (data.in_channels, data.image_size) == (3, 16)  # grey images repeated to RGB
    assert (len(data.train), len(data.val), len(data.test)) == (12, 3, 3)
    for split in (data.val, data.test):
        assert sorted(split.tensors[1].tolist()) == [0, 1, 2]  # stratified
    assert data.train.tensors[0].shape == (12, 3, 16, 16)
    assert data.augment == Augment(pad=2, hflip=False)
    again = load_image_folder(tmp_path / "imgs", image_size=16, seed=0)
    assert torch.equal(again.val.tensors[0], data.val.tensors[0])


def test_image_folder_all_grey_is_one_channel(tmp_path):
    data = load_image_folder(_image_folder(tmp_path / "g", grey_only=True), image_size=8)
    assert data.in_channels == 1 and data.test.tensors[0].shape[1:] == (1, 8, 8)


def test_image_folder_unreadable_image(tmp_path):
    root = _image_folder(tmp_path / "imgs")
    (root / "mango" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(HwnasError, match=r"broken\.png: unreadable image"):
        load_image_folder(root)


def test_image_folder_structure_errors(tmp_path):
    with pytest.raises(HwnasError, match="missing: image folder not found"):
        load_image_folder(tmp_path / "missing")
    (tmp_path / "one" / "only").mkdir(parents=True)
    with pytest.raises(HwnasError, match="at least 2 classes, found 1"):
        load_image_folder(tmp_path / "one")
    (tmp_path / "one" / "other").mkdir()
    with pytest.raises(HwnasError, match="only: no images"):
        load_image_folder(tmp_path / "one")


# -- augmentation ------------------------------------------------------------------------


def test_augment_is_deterministic_and_shape_preserving():
    images = torch.randn(16, 3, 12, 12)
    augment = Augment(pad=2, hflip=True)
    first = augment(images, torch.Generator().manual_seed(7))
    second = augment(images, torch.Generator().manual_seed(7))
    other = augment(images, torch.Generator().manual_seed(8))
    assert first.shape == images.shape and torch.equal(first, second)
    assert not torch.equal(first, other) and not torch.equal(first, images)


def test_shift_moves_content_and_fills_zeros():
    images = torch.arange(1, 26, dtype=torch.float32).reshape(1, 1, 5, 5).repeat(64, 1, 1, 1)
    shifted = Augment(pad=1)(images, torch.Generator().manual_seed(0))
    for out in shifted:  # every output is the input moved by at most one pixel
        assert any(
            torch.equal(
                out, torch.nn.functional.pad(images[0], (1, 1, 1, 1))[:, r : r + 5, c : c + 5]
            )
            for r in range(3)
            for c in range(3)
        )
    assert len({out.numpy().tobytes() for out in shifted}) > 1
    assert torch.equal(Augment()(images, torch.Generator()), images)  # no-op augmentation


def test_flip_mirrors_some_images():
    images = torch.arange(4, dtype=torch.float32).reshape(1, 1, 1, 4).repeat(32, 1, 1, 1)
    flipped = Augment(hflip=True)(images, torch.Generator().manual_seed(0))
    mirrored = [bool(torch.equal(f, images[0].flip(-1))) for f in flipped]
    assert any(mirrored) and not all(mirrored)
    assert all(m or torch.equal(f, images[0]) for f, m in zip(flipped, mirrored, strict=True))


# -- calibration subset and registry -----------------------------------------------------


def test_calibration_subset_fixed_by_seed(digits):
    a = calibration_subset(digits, 64, seed=3)
    assert a.shape == (64, 1, 32, 32) and torch.equal(a, calibration_subset(digits, 64, seed=3))
    assert not torch.equal(a, calibration_subset(digits, 64, seed=4))
    assert _rows(a) <= _rows(digits.train.tensors[0])
    assert len(calibration_subset(digits, 10_000, seed=0)) == len(digits.train)
    with pytest.raises(HwnasError, match="at least 1"):
        calibration_subset(digits, 0, seed=0)


def test_registry_names_and_errors(cifar_dir):
    assert list(DATASETS) == ["digits", "cifar10", "image-folder", "python"]
    with pytest.raises(HwnasError, match="unknown; choose from digits, cifar10, image-folder, py"):
        load_dataset("mnist", None, seed=0)
    for name in ("cifar10", "image-folder"):
        with pytest.raises(HwnasError, match="needs a path"):
            load_dataset(name, None, seed=0)
    with pytest.raises(HwnasError, match="bundled and takes no path"):
        load_dataset("digits", "/tmp/x", seed=0)
    with pytest.raises(HwnasError, match="unknown option.*imagesize.*accepted: .*image_size"):
        load_dataset("digits", None, seed=0, imagesize=24)
    with pytest.raises(HwnasError, match="image_size must be an integer of at least 8"):
        load_dataset("digits", None, seed=0, image_size=4)
    data = load_dataset("cifar10", str(cifar_dir), seed=0, image_size=32, val_fraction=0.2)
    assert data.name == "cifar10" and len(data.test) == 10


def test_a_configs_val_fraction_sizes_the_validation_split():
    from hwnas.config import RunConfig
    from hwnas.run import prepare

    sizes = {}
    for fraction in (None, 0.4):
        data = (
            {"name": "digits"} if fraction is None else {"name": "digits", "val_fraction": fraction}
        )
        task, _ = prepare(RunConfig.model_validate({"data": data}))
        sizes[fraction] = (len(task.data.train), len(task.data.val), len(task.data.test))
    total = sum(sizes[None])
    assert sizes[None][1] == round(0.15 * total) and sizes[0.4][1] == round(0.4 * total)
    assert sizes[0.4][2] == sizes[None][2]  # the test share stays the data set's own
    with pytest.raises(HwnasError, match=r"^data\.val_fraction: .*below 1, got 0\.9 \+ 0\.15"):
        prepare(RunConfig.model_validate({"data": {"name": "digits", "val_fraction": 0.9}}))
