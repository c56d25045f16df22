"""The limits that keep one hostile or broken file from costing the others: pixels, header bytes, manifests."""

from __future__ import annotations

PIXEL_BUDGET = 400_000_000
"""Most values (rows x columns x frames x samples) one image may declare: twice the largest real
image we know of (a tomosynthesis stack, about 2 x 10^8 values; a mammogram is about 1.4 x 10^7),
so 0.8 GB of 16-bit pixels at most are ever decoded for one file."""

HEADER_PEEK_BYTES = 1 << 20
"""How far into a DICOM file the scan looks for the first compressed frame's own header (1 MiB):
headers before the pixel data are a few KB, so the first frame's marker lies well within it."""

DEFERRED_VALUE_BYTES = 1 << 20
"""DICOM values larger than this (1 MiB) are not read while the header is read, so a huge private
element cannot make the scan of one file slow or large."""

PER_FILE_SECONDS = 2.0
"""What one file may cost the scan, at most (header read, 2-core machine): it reads regular files
only, stops before the pixel data and reads at most HEADER_PEEK_BYTES more; the tests hold every
file of the bad-input folder to it."""

MANIFEST_MAX_BYTES = 1 << 20
"""Largest model.json read (1 MiB): shipped manifests with their model cards are about 5 KB."""
