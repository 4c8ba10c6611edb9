"""Image classification data for training and searching super-networks.

Every loader returns an ``ImageData``: normalised float32 NCHW tensors in fixed, seeded,
stratified train/validation/test splits, plus the training augmentation that suits the data.
Data is either bundled (``digits``) or supplied by the user (``cifar10``, ``image-folder``);
nothing is downloaded, and user pickles are read with a restricted unpickler.
"""

from hwnas.data.augment import Augment, random_hflip, random_shift
from hwnas.data.calibration import calibration_subset
from hwnas.data.cifar10 import load_cifar10
from hwnas.data.digits import load_digits
from hwnas.data.image_data import ImageData
from hwnas.data.image_folder import load_image_folder
from hwnas.data.registry import DATASETS, load_dataset
from hwnas.data.splits import stratified_split

__all__ = [
    "DATASETS",
    "Augment",
    "ImageData",
    "calibration_subset",
    "load_cifar10",
    "load_dataset",
    "load_digits",
    "load_image_folder",
    "random_hflip",
    "random_shift",
    "stratified_split",
]
