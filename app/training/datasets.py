"""The public data sets each shipped model learns from: which file, which label, which group.

A group keeps images that must not be split apart (the same patient, or near-duplicate slices)
in the same fold.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

SHARED_DATASETS = Path(__file__).resolve().parents[2].parent / "shared" / "datasets"


@dataclass(frozen=True)
class Sample:
    image: Path
    label: int
    group: str
    masks: tuple[Path, ...] = ()  # segmentation: every mask file of the image (their union is the target)


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    classes: tuple[str, ...]
    folders: tuple[str, ...]  # one per class, relative to the data set root
    root: str
    licence: str


BUSI = DatasetSpec("busi", ("normal", "benign", "malignant"), ("normal", "benign", "malignant"), "busi",
                   "CC BY 4.0 (Al-Dhabyani et al., Data in Brief 28:104863, 2020)")
BRAIN = DatasetSpec("brain_mri", ("glioma", "meningioma", "no_tumor", "pituitary"),
                    ("glioma_tumor", "meningioma_tumor", "no_tumor", "pituitary_tumor"), "brain_mri/Training",
                    "as published on Kaggle (Bhuvaji et al., brain-tumor-classification-mri)")
CHEST = DatasetSpec("chest_xray", ("normal", "pneumonia"), ("NORMAL", "PNEUMONIA"), "chest_xray/train",
                    "CC BY 4.0 (Kermany et al., Cell 2018)")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
BUSI_MASK = re.compile(r"^(?P<stem>.+?)_mask(_\d+)?$")
# Kermany chest X-ray names carry the patient: person123_bacteria_45.jpeg, IM-0119-0001.jpeg, NORMAL2-IM-0563-0001.jpeg
CHEST_PATIENT = re.compile(r"^(?P<patient>person\d+|(?:NORMAL2-)?IM-\d+)[-_]")


def data_root(spec: DatasetSpec, base: Path = SHARED_DATASETS) -> Path:
    root = base / spec.root
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is missing: the {spec.name} data set lives in ../shared/datasets")
    return root


def list_samples(spec: DatasetSpec, base: Path = SHARED_DATASETS) -> list[Sample]:
    root = data_root(spec, base)
    samples = []
    for label, folder in enumerate(spec.folders):
        files = sorted(p for p in (root / folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        masks: dict[str, list[Path]] = {}
        images = []
        for path in files:
            match = BUSI_MASK.match(path.stem)
            if match:
                masks.setdefault(match["stem"], []).append(path)
            else:
                images.append(path)
        for path in images:
            samples.append(Sample(path, label, group=f"{folder}/{path.stem}",
                                  masks=tuple(sorted(masks.get(path.stem, [])))))
    if spec in (BRAIN, BUSI):  # both hold near-duplicate images (BUSI: 150 of 659 in groups of <= 4)
        samples = group_near_duplicates(samples)
    if spec is CHEST:
        samples = [Sample(s.image, s.label, group=_chest_patient(s.image.name), masks=s.masks) for s in samples]
    return samples


def _chest_patient(name: str) -> str:
    match = CHEST_PATIENT.match(name)
    return f"patient-{match['patient']}" if match else f"file-{name}"


def difference_hash(path: Path, size: int = 16) -> np.ndarray:
    """256-bit dHash, packed: brightness steps between neighbours of a 17x16 thumbnail (survives resizing
    and JPEG)."""
    grey = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    small = cv2.resize(grey, (size + 1, size), interpolation=cv2.INTER_AREA)
    return np.packbits((small[:, 1:] > small[:, :-1]).ravel())


def group_near_duplicates(samples: list[Sample], max_distance: int = 20) -> list[Sample]:
    """Images whose dHashes differ in <= max_distance of 256 bits share a group (union-find over all pairs).

    On the brain-MRI training set, 20 bits joins 316 of 2870 images into groups of at most 7 (repeated
    slices of one scan); at 40 bits the chains merge 410 unrelated images into one group.
    """
    hashes = np.stack([difference_hash(s.image) for s in samples])
    parent = list(range(len(samples)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(samples) - 1):
        distance = np.unpackbits(hashes[i] ^ hashes[i + 1:], axis=1).sum(axis=1)
        for j in np.nonzero(distance <= max_distance)[0] + i + 1:
            parent[find(int(j))] = find(i)
    return [Sample(s.image, s.label, group=f"dup-{find(i)}", masks=s.masks) for i, s in enumerate(samples)]
