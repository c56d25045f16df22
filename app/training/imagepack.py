"""Training images decoded once, the way the app decodes them, letterboxed to the input size as uint8.

A pack is one `.npz` file per data set and size: it is what fine-tuning reads (on this machine, or copied
to a GPU machine that has no ../shared), so decoding and resizing happen once, not every epoch. Each image
also carries a few acquisition-look figures (size, brightness, contrast, sharpness) for the shifted
validation. Images are stored as JPEG (quality 85) and masks as PNG, so every pack of the shipped models fits
the 64 MiB a GPU call can carry; the augmentation's noise and blur dwarf the JPEG error.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

JPEG_QUALITY = 85
LOOK_FIGURES = ("height", "width", "aspect", "mean", "std", "p05", "p95", "dark_share", "sharpness")


@dataclass(frozen=True)
class ImagePack:
    images: np.ndarray  # (N, S, S) uint8, letterboxed like the app's `prepare_input`, grey
    labels: np.ndarray  # (N,) int
    groups: np.ndarray  # (N,) str: images that must share a fold
    names: np.ndarray  # (N,) str: file names relative to the data set root
    looks: np.ndarray  # (N, len(LOOK_FIGURES)) float32
    masks: np.ndarray | None = None  # (N, S, S) uint8 0/1 segmentation targets, placed like the images

    @property
    def size(self) -> int:
        return int(self.images.shape[1])

    def save(self, path: Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {"labels": self.labels, "groups": self.groups.astype("U"), "names": self.names.astype("U"),
                  "looks": self.looks, **_encoded("images", self.images, ".jpg", [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])}
        if self.masks is not None:
            arrays.update(_encoded("masks", self.masks * 255, ".png", []))
        np.savez(path, **arrays)
        return path

    @classmethod
    def load(cls, path: Path) -> ImagePack:
        with np.load(Path(path), allow_pickle=False) as data:
            masks = (_decoded(data, "masks") > 127).astype(np.uint8) if "masks_bytes" in data else None
            return cls(_decoded(data, "images"), data["labels"].astype(np.int64), data["groups"], data["names"],
                       data["looks"].astype(np.float32), masks)


def _encoded(name: str, images: np.ndarray, suffix: str, parameters: list) -> dict[str, np.ndarray]:
    parts = [cv2.imencode(suffix, image, parameters)[1].ravel() for image in images]
    return {f"{name}_bytes": np.concatenate(parts) if parts else np.zeros(0, np.uint8),
            f"{name}_ends": np.cumsum([len(p) for p in parts]).astype(np.int64)}


def _decoded(data, name: str) -> np.ndarray:
    raw, ends = data[f"{name}_bytes"], data[f"{name}_ends"]
    starts = np.concatenate([[0], ends[:-1]]).astype(np.int64)
    return np.stack([cv2.imdecode(raw[a:b], cv2.IMREAD_GRAYSCALE) for a, b in zip(starts, ends)])


def letterbox(values: np.ndarray, size: int, interpolation: int = cv2.INTER_AREA) -> np.ndarray:
    """`values` (h, w) scaled to fit a size x size square, centred, zero around: as `prepare_input` places it."""
    height, width = values.shape[:2]
    factor = min(size / height, size / width)
    new_h, new_w = max(1, round(height * factor)), max(1, round(width * factor))
    out = np.zeros((size, size), values.dtype)
    top, left = (size - new_h) // 2, (size - new_w) // 2
    out[top:top + new_h, left:left + new_w] = cv2.resize(values, (new_w, new_h), interpolation=interpolation)
    return out


def look_figures(grey01: np.ndarray) -> np.ndarray:
    """How an acquisition looks, independent of what it shows: size, brightness, contrast, sharpness."""
    height, width = grey01.shape
    sample = grey01[:: max(1, height // 256), :: max(1, width // 256)]
    sharp = float(cv2.Laplacian(cv2.resize(grey01, (256, 256), interpolation=cv2.INTER_AREA), cv2.CV_32F).var())
    return np.array([height, width, width / height, sample.mean(), sample.std(), np.percentile(sample, 5),
                     np.percentile(sample, 95), (sample < 0.05).mean(), sharp], np.float32)


def build_pack(samples, size: int, with_masks: bool = False, progress=None) -> ImagePack:
    """Decode every sample with the app's own reader and intensity scaling, and letterbox it to `size`."""
    from app.inference.preprocess import intensity01
    from app.io.study_loader import decode_image, read_info

    images = np.zeros((len(samples), size, size), np.uint8)
    masks = np.zeros((len(samples), size, size), np.uint8) if with_masks else None
    looks = np.zeros((len(samples), len(LOOK_FIGURES)), np.float32)
    for index, sample in enumerate(samples):
        pixels = intensity01(decode_image(read_info(sample.image)), 0)
        if pixels.ndim == 3:
            pixels = cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY)
        looks[index] = look_figures(pixels)
        images[index] = np.clip(np.rint(letterbox(pixels, size) * 255), 0, 255).astype(np.uint8)
        if masks is not None:
            masks[index] = letterbox(mask_union(sample, pixels.shape), size) >= 0.5
        if progress:
            progress(index + 1, len(samples))
    root = Path(samples[0].image).parents[1] if samples else Path(".")
    names = np.array([str(Path(s.image).relative_to(root)) for s in samples])
    return ImagePack(images, np.array([s.label for s in samples], np.int64), np.array([s.group for s in samples]),
                     names, looks, masks)


def mask_union(sample, shape: tuple[int, int]) -> np.ndarray:
    """The union of an image's lesion masks (BUSI gives several for a few images) as float 0/1."""
    union = np.zeros(shape, np.float32)
    for path in sample.masks:
        mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if mask is not None and mask.shape == union.shape:
            union = np.maximum(union, (mask > 0).astype(np.float32))
    return union
