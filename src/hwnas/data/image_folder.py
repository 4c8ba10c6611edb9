"""A user's own images: one sub-folder per class, read with Pillow and resized to a square.

The whole set is decoded once into memory (it is meant for data sets of thousands, not
millions, of images), so training and search never touch the disk again.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageMode, UnidentifiedImageError

from hwnas.data.augment import Augment
from hwnas.data.image_data import ImageData, check_image_size, split_and_assemble
from hwnas.errors import HwnasError, one_line

EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"})


def list_images(path: Path) -> tuple[tuple[str, ...], list[tuple[Path, int]]]:
    """Sorted class names (visible sub-folders) and ``(file, label)`` for every image file.

    Files whose extension is not an image's (notes, ``.DS_Store``) are skipped; a class
    folder with no images is an error, since its class could never be learned or scored.
    """
    if not path.is_dir():
        raise HwnasError(f"{path}: image folder not found")
    classes = tuple(sorted(p.name for p in path.iterdir() if p.is_dir() and p.name[0] != "."))
    if len(classes) < 2:
        raise HwnasError(
            f"{path}: needs one sub-folder per class and at least 2 classes, found {len(classes)}"
        )
    files: list[tuple[Path, int]] = []
    for label, name in enumerate(classes):
        found = sorted(
            p for p in (path / name).iterdir()
            if p.is_file() and p.name[0] != "." and p.suffix.lower() in EXTENSIONS
        )  # fmt: skip
        if not found:
            raise HwnasError(
                f"{path / name}: no images (looked for {', '.join(sorted(EXTENSIONS))})"
            )
        files.extend((p, label) for p in found)
    return classes, files


def read_image(path: Path, image_size: int) -> np.ndarray:
    """One image as uint8 (H, W) if greyscale or (H, W, 3) if colour, resized to a square.

    The whole image is squeezed to ``image_size`` (no crop), so nothing near the edges is lost.
    """
    try:
        with Image.open(path) as image:
            mode = "L" if ImageMode.getmode(image.mode).basemode == "L" else "RGB"
            image = image.convert(mode).resize((image_size, image_size), Image.Resampling.BILINEAR)
            return np.asarray(image, dtype=np.uint8)
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as exc:
        reason = one_line(exc)
        raise HwnasError(f"{path}: unreadable image ({reason})") from None


def load_image_folder(
    path: str | Path,
    image_size: int = 32,
    seed: int = 0,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    hflip: bool = False,
) -> ImageData:
    """Images under ``path/<class>/``: classes in sorted order, stratified splits by ``seed``.

    The set is greyscale (1 channel) only if every image is; otherwise greyscale images are
    repeated to 3 channels so all match. Training augmentation shifts by up to
    ``image_size // 8`` pixels; ``hflip`` adds mirroring, off by default because it is wrong
    for text, digits and other handed shapes.
    """
    check_image_size(image_size)
    path = Path(path)
    classes, files = list_images(path)
    arrays = [read_image(p, image_size) for p, _ in files]
    colour = any(a.ndim == 3 for a in arrays)
    stacked = np.stack(
        [np.repeat(a[..., None], 3, axis=2) if colour and a.ndim == 2 else a for a in arrays]
    )
    images = torch.from_numpy(stacked).float().div_(255.0)
    images = images.permute(0, 3, 1, 2) if colour else images[:, None]
    labels = np.array([label for _, label in files], dtype=np.int64)
    return split_and_assemble(
        "image-folder",
        images,
        labels,
        seed,
        val_fraction,
        test_fraction,
        class_names=classes,
        augment=Augment(pad=image_size // 8, hflip=hflip),
    )
