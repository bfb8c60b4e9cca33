"""The reference's per-sample data pipeline, written out (docs/method.md §6.1), for bench/data.py.

torchvision is not a dependency (its wheels do not work next to the CPU torch wheel), so its transforms
are written out with PIL and numpy: the same operations in the same order. ``TorchOpsImages`` is the
same per-sample pipeline with torch ops on a uint8 tensor.
"""
from __future__ import annotations

import time

import numpy as np
import torch
from PIL import Image, ImageOps  # Pillow: matplotlib's dependency, so the suite's

# ---- the reference's per-sample pipeline, written out (torchvision's transforms, docs/method.md §6.1) --------
# NOTE: torchvision's functionals also log API usage and check types on every call; left out here, so
# this pipeline is if anything faster than the reference's and the speed-ups below are lower bounds.

class RandomCrop(torch.nn.Module):  # torchvision's transforms are nn.Modules: their call overhead too

    def __init__(self, size: int, padding: int):
        super().__init__()
        self.size, self.padding = size, padding

    def forward(self, img):
        img = ImageOps.expand(img, border=self.padding, fill=0)  # F.pad, padding_mode="constant"
        width, height = img.size
        i = torch.randint(0, height - self.size + 1, size=(1,)).item()  # RandomCrop.get_params
        j = torch.randint(0, width - self.size + 1, size=(1,)).item()
        return img.crop((j, i, j + self.size, i + self.size))  # F.crop


class RandomHorizontalFlip(torch.nn.Module):
    def forward(self, img):
        return img.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if torch.rand(1) < 0.5 else img


class ToTensor:  # F.to_tensor of a PIL image
    def __call__(self, pic):
        img = torch.from_numpy(np.array(pic, np.uint8, copy=True))
        img = img.view(pic.size[1], pic.size[0], len(pic.getbands())).permute((2, 0, 1)).contiguous()
        return img.to(dtype=torch.get_default_dtype()).div(255)


class Normalize(torch.nn.Module):  # inplace=False, its default: a copy
    def __init__(self, mean, std):
        super().__init__()
        self.mean, self.std = mean, std

    def forward(self, tensor):
        tensor = tensor.clone()
        mean = torch.as_tensor(self.mean, dtype=tensor.dtype, device=tensor.device)
        std = torch.as_tensor(self.std, dtype=tensor.dtype, device=tensor.device)
        if (std == 0).any():
            raise ValueError("std evaluated to zero")
        return tensor.sub_(mean.view(-1, 1, 1)).div_(std.view(-1, 1, 1))


class Cutout:  # DeVries & Taylor's: n_holes squares of side length zeroed by a numpy mask
    def __init__(self, n_holes: int, length: int):
        self.n_holes, self.length = n_holes, length

    def __call__(self, img):
        h, w = img.size(1), img.size(2)
        mask = np.ones((h, w), np.float32)
        for _ in range(self.n_holes):
            y, x = np.random.randint(h), np.random.randint(w)
            y1, y2 = np.clip(y - self.length // 2, 0, h), np.clip(y + self.length // 2, 0, h)
            x1, x2 = np.clip(x - self.length // 2, 0, w), np.clip(x + self.length // 2, 0, w)
            mask[y1:y2, x1:x2] = 0.0
        return img * torch.from_numpy(mask).expand_as(img)


class Compose:  # with ``seconds``, it adds up the CPU time spent in each transform
    def __init__(self, transforms, seconds: dict | None = None):
        self.transforms, self.seconds = transforms, seconds

    def __call__(self, img):
        for t in self.transforms:
            start = time.process_time() if self.seconds is not None else 0.0
            img = t(img)
            if self.seconds is not None:
                name = type(t).__name__
                self.seconds[name] = self.seconds.get(name, 0.0) + time.process_time() - start
        return img


class PilImages(torch.utils.data.Dataset):  # torchvision's CIFAR10 (HWC numpy) and MNIST (HW tensor)
    def __init__(self, images: np.ndarray, labels: list[int], transform):
        self.data, self.targets, self.transform = images, labels, transform

    def __len__(self):
        return len(self.data)

    def __getitem__(self, i):
        img = self.data[i]
        img = Image.fromarray(img.numpy() if isinstance(img, torch.Tensor) else img)
        return self.transform(img), self.targets[i]


def pil_transform(mean_std, augment: bool, cutout: int, seconds: dict | None = None) -> Compose:
    ts = [RandomCrop(32, padding=4), RandomHorizontalFlip()] if augment else []
    ts += [ToTensor(), Normalize(*mean_std)] + ([Cutout(1, cutout)] if cutout else [])
    return Compose(ts, seconds)


class TorchOpsImages(torch.utils.data.Dataset):  # the same transforms with torch ops on a uint8 image
    def __init__(self, images: torch.Tensor, labels: torch.Tensor, mean_std, augment: bool, cutout: int):
        self.images, self.labels, self.augment, self.cutout = images, labels, augment, cutout
        self.mean, self.std = (torch.tensor(v).view(-1, 1, 1) for v in mean_std)

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):  # docs/method.md §6.1's order: RandomCrop, RandomHorizontalFlip, ToTensor, Normalize, Cutout
        img, p = self.images[i], 4
        _, h, w = img.shape
        if self.augment:
            padded = torch.nn.functional.pad(img, (p, p, p, p))  # RandomCrop(32, padding=4): black padding
            top, left = (int(v) for v in torch.randint(0, 2 * p + 1, (2,)))
            img = padded[:, top:top + h, left:left + w]
            if torch.rand(()) < 0.5:  # RandomHorizontalFlip
                img = img.flip(2)
        img = (img.float() / 255 - self.mean) / self.std  # ToTensor, Normalize
        if self.cutout:
            cy, cx, half = int(torch.randint(0, h, ())), int(torch.randint(0, w, ())), self.cutout // 2
            img[:, max(cy - half, 0):min(cy + half, h), max(cx - half, 0):min(cx + half, w)] = 0
        return img, self.labels[i]
