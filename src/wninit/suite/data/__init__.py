"""Datasets as normalized tensors (`load_dataset`, `TensorSource`) and the on-device `Loader`.

docs/method.md §6.1 "Data" and "Validation"; see `.sources` for the files and splits, `.loader` for the
batched augmentation and `.checksums` for the published MD5s and the verified download.
"""
from wninit.suite.data.loader import Loader, cutout, cutout_, cutout_area, random_crop_flip
from wninit.suite.data.sources import (AUGMENTED_DATASETS, CIFAR_MEAN_STD, DATASETS, MNIST_MEAN_STD, Dataset, Split, TensorSource, data_root,
                      load_dataset, val_split_indices)

__all__ = ["DATASETS", "AUGMENTED_DATASETS", "Split", "Dataset", "load_dataset", "TensorSource", "Loader", "random_crop_flip",
           "cutout", "cutout_", "cutout_area", "data_root", "val_split_indices", "MNIST_MEAN_STD", "CIFAR_MEAN_STD"]
