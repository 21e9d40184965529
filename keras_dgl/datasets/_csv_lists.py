"""Clip lists of the audio-visual loaders: CSV rows, labels, validation carve,
and the report of bad rows and files under `on_error`.
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import logging
import os

import numpy as np


logger = logging.getLogger("keras_dgl.datasets")

_MEDIA_EXTENSIONS = (".wav", ".mp4", ".flv", ".avi", ".mkv", ".webm", ".mov")
_HEADER_LABELS = {"label", "labels", "class", "category", "emotion"}


@dataclasses.dataclass
class _Entry:
    clip: str
    label: int
    csv: str
    line: int
    audio: str = ""
    frames: tuple = ()
    rate: int = 0


def _read_rows(path):
    """Returns `[(clip, label, line), ...]` of one CSV list."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Clip list not found: {path}")
    rows = []
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            for line, row in enumerate(csv.reader(handle), start=1):
                fields = [field.strip() for field in row]
                if not any(fields):
                    continue
                if not rows and len(fields) >= 2 and fields[1].lower() in (
                    _HEADER_LABELS
                ):
                    continue
                if len(fields) < 2 or not fields[0] or not fields[1]:
                    raise ValueError(
                        f"Malformed row in {path}, line {line}: expected "
                        f"'clip_id,label', got {row!r}"
                    )
                rows.append((_clip_id(fields[0]), fields[1], line))
    except UnicodeDecodeError as error:
        raise ValueError(f"Clip list {path} is not UTF-8 text: {error}") from error
    return rows


_SPLIT_NAMES = {"train": "train", "test": "test", "val": "validation",
                "valid": "validation", "validation": "validation"}


def _read_split_rows(path):
    """Returns `{split: [(clip, label, line), ...]}` of a list with a split
    column: rows `clip,label,split` or VGGSound's
    `youtube_id,start_seconds,label,split` (clip id
    `<youtube_id>_<start, 6 digits>`)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Clip list not found: {path}")
    rows = {}
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            for line, row in enumerate(csv.reader(handle), start=1):
                fields = [field.strip() for field in row]
                if not any(fields):
                    continue
                split = _SPLIT_NAMES.get(fields[-1].lower()) if fields else None
                if split is None and not rows and len(fields) >= 3 and (
                    fields[-2].lower() in _HEADER_LABELS
                ):
                    continue  # header row
                if len(fields) == 3 and split and fields[0] and fields[1]:
                    clip, label = _clip_id(fields[0]), fields[1]
                elif (len(fields) == 4 and split and fields[0] and fields[2]
                      and fields[1].isdigit()):
                    clip = f"{fields[0]}_{int(fields[1]):06d}"
                    label = fields[2]
                else:
                    raise ValueError(
                        f"Malformed row in {path}, line {line}: expected "
                        "'clip_id,label,split' or "
                        "'youtube_id,start_seconds,label,split' with split "
                        f"train / validation / test, got {row!r}"
                    )
                rows.setdefault(split, []).append((clip, label, line))
    except UnicodeDecodeError as error:
        raise ValueError(f"Clip list {path} is not UTF-8 text: {error}") from error
    return rows


@dataclasses.dataclass
class _Source:
    """A raw data set's lists: classes, label-checked entries per split (in
    list order, before any validation carve) and the bad-input report."""

    classes: list
    lists: dict
    entries: dict
    report: "_Report"

    @property
    def has_validation_list(self):
        return "validation" in self.entries


def _read_source(root, name, known_classes, class_names, train_csv, test_csv,
                 validation_csv, split_csv, on_error):
    report = _Report(on_error)
    lists = {}
    if split_csv is not None:
        path = os.path.join(root, os.fspath(split_csv))
        by_split = _read_split_rows(path)
        for split in ("train", "validation", "test"):
            if split in by_split or split != "validation":
                lists[split] = (path, by_split.get(split, []))
    else:
        names = {"train": train_csv, "validation": validation_csv,
                 "test": test_csv}
        for split, csv_name in names.items():
            if csv_name is not None:
                path = os.path.join(root, os.fspath(csv_name))
                lists[split] = (path, _read_rows(path))
    classes = _resolve_classes(class_names, known_classes, lists)
    index = {label: i for i, label in enumerate(classes)}
    entries = {}
    for split, (path, rows) in lists.items():
        kept = []
        for clip, label, line in rows:
            if label not in index:
                report.bad(
                    ValueError,
                    f"Unknown label {label!r} in {path}, line {line} "
                    f"(clip {clip!r}); {name} classes: {classes}",
                    split,
                    clip,
                    path,
                )
                continue
            kept.append(_Entry(clip, index[label], path, line))
        entries[split] = kept
    for split, (path, _) in lists.items():
        report.check_rows(split, path, entries[split], name)
    return _Source(classes, lists, entries, report)


def _clip_id(text):
    text = text.replace("\\", "/").strip("/")
    stem, extension = os.path.splitext(text)
    return stem if extension.lower() in _MEDIA_EXTENSIONS else text


def _resolve_classes(class_names, known_classes, lists):
    classes = class_names if class_names is not None else known_classes
    if classes is None:
        classes = sorted({label for _, rows in lists.values() for _, label, _ in rows})
    classes = [str(c) for c in classes]
    if len(set(classes)) != len(classes):
        raise ValueError(f"Duplicate class names in {classes}.")
    if not classes:
        paths = [path for path, _ in lists.values()]
        raise ValueError(f"No labels found in {paths}.")
    return classes


def _carve_validation(entries, fraction, seed, csv_path):
    if fraction <= 0:
        return entries, []
    if len(entries) < 2:
        raise ValueError(
            f"The training list {csv_path} has {len(entries)} usable clip(s); "
            "cannot carve a validation split (set validation_fraction=0)."
        )
    rng = np.random.default_rng(seed)
    by_class = collections.defaultdict(list)
    for position, entry in enumerate(entries):
        by_class[entry.label].append(position)
    chosen = []
    for label in sorted(by_class):
        positions = np.array(by_class[label])
        take = int(round(fraction * len(positions)))
        chosen.extend(rng.permutation(positions)[:take].tolist())
    if not chosen:
        largest = max(by_class, key=lambda k: len(by_class[k]))
        chosen = [int(rng.choice(by_class[largest]))]
    if len(chosen) == len(entries):
        chosen = chosen[:-1]
    chosen = set(chosen)
    train = [e for i, e in enumerate(entries) if i not in chosen]
    validation = [e for i, e in enumerate(entries) if i in chosen]
    return train, validation


class _Report:
    """Raises or records bad inputs according to `on_error`."""

    def __init__(self, on_error):
        self.on_error = on_error
        self.skipped = []

    def bad(self, error_type, message, split, clip, file):
        if self.on_error == "raise":
            raise error_type(message)
        self.skipped.append(
            {"split": split, "clip": clip, "file": file, "reason": message}
        )

    def check_rows(self, split, csv_path, entries, name):
        if not entries:
            extra = (
                f" ({len(self.skipped)} clip(s) skipped as bad)"
                if self.skipped else ""
            )
            raise ValueError(
                f"The {name} {split} split is empty: no usable clip listed "
                f"in {csv_path}{extra}."
            )

    def warn(self, name):
        if self.skipped:
            shown = "; ".join(s["reason"] for s in self.skipped[:3])
            more = len(self.skipped) - 3
            logger.warning(
                "%s: skipped %d bad clip(s) (see info['skipped']): %s%s",
                name,
                len(self.skipped),
                shown,
                f"; and {more} more" if more > 0 else "",
            )
