"""`prepare`'s plan (which clip goes to which shard, fixed before anything is
written, so that a resumed run writes the same shards) and its manifest.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import time

import numpy as np
import tensorflow as tf

from keras_dgl.datasets import _prepared
from keras_dgl.datasets._shards import (
    _atomic_write,
    _ORDER_SEED,
)


def _plan(source, resolved, positions, config, writer, shard_bytes, root):
    """Which clip (by its position in its list, after the label check) goes
    to which shard, and the hashes that identify sources and settings."""
    splits = {}
    listing = {}
    for split, entries in resolved.items():
        listed = [positions[split][(e.csv, e.line)] for e in entries]
        sizes = {
            p: writer.record_bytes(split, len(e.frames))
            for p, e in zip(listed, entries)
        }
        order = list(listed)
        if split == "train":
            order = [order[i] for i in
                     np.random.default_rng(_ORDER_SEED).permutation(len(order))]
        groups, current, current_bytes = [], [], 0
        for position in order:
            if current and current_bytes + sizes[position] > shard_bytes:
                groups.append(current)
                current, current_bytes = [], 0
            current.append(position)
            current_bytes += sizes[position]
        if current:
            groups.append(current)
        stored = set(listed)
        by_position = dict(zip(listed, entries))
        splits[split] = {
            "clips": [
                [e.clip, e.label, i in stored]
                for i, e in enumerate(source.entries[split])
            ],
            "shards": [
                {
                    "file": f"{split}-{n:05d}-of-{len(groups):05d}.tfrecord",
                    "indices": group,
                }
                for n, group in enumerate(groups)
            ],
        }
        listing[split] = [
            [i, by_position[i].clip, by_position[i].label,
             os.path.relpath(by_position[i].audio, root),
             [os.path.relpath(f, root) for f in writer.frames_to_store(
                 split, by_position[i].frames)]]
            for i in listed
        ]
    source_sha = hashlib.sha256(
        json.dumps([source.classes, listing], sort_keys=True).encode()
    ).hexdigest()
    plan = {
        "format": _prepared.FORMAT,
        "format_version": _prepared.FORMAT_VERSION,
        "dataset": config.name,
        "class_names": list(source.classes),
        "preprocessing": {
            key: getattr(config, key)
            for key in _prepared.STORED_PARAMETERS + ("random_audio_crop",)
        },
        "storage": writer.storage(),
        "source_sha256": source_sha,
        "lists": {split: path for split, (path, _) in source.lists.items()},
        "splits": splits,
    }
    plan["plan_sha256"] = hashlib.sha256(
        json.dumps(plan, sort_keys=True).encode()
    ).hexdigest()
    return plan


def _adopt_plan(out, plan):
    """Writes the plan, or checks that an interrupted run's plan is this
    one; removes that run's unfinished temporary files."""
    path = os.path.join(out, _prepared.PLAN_NAME)
    if os.path.exists(path):
        try:
            with open(path, encoding="utf-8") as handle:
                old = json.load(handle)
        except (OSError, ValueError) as error:
            raise ValueError(
                f"Unreadable {path} ({error}): delete {out} and prepare again."
            ) from error
        if old.get("plan_sha256") != plan["plan_sha256"]:
            raise ValueError(
                f"{out} holds an unfinished preparation with other sources or "
                "settings. Re-run it with its own arguments, or choose another "
                "folder (or delete this one)."
            )
    else:
        others = [n for n in os.listdir(out) if not n.startswith(".")]
        if others:
            raise ValueError(
                f"{out} is not empty ({sorted(others)[:3]}...). prepare writes "
                "into an empty folder, or continues its own run there."
            )
        _atomic_write(path, json.dumps(plan).encode())
    for stale in glob.glob(os.path.join(out, ".*.tmp-*")):
        os.remove(stale)


def _finished_shard(out, shard):
    """The status of a shard an earlier run finished, or `None`."""
    path = os.path.join(out, shard["file"])
    if not os.path.exists(path):
        return None
    side = path + ".json"
    if os.path.exists(side):
        try:
            with open(side, encoding="utf-8") as handle:
                status = json.load(handle)
            if status.get("bytes") == os.path.getsize(path):
                return status
        except (OSError, ValueError):
            pass
    # Renamed into place (so complete) but killed before its status file:
    # rebuild the status from the shard itself.
    present = [
        int(tf.io.parse_single_example(
            record, {"index": tf.io.FixedLenFeature([], tf.int64)}
        )["index"])
        for record in tf.data.TFRecordDataset(path)
    ]
    missing = sorted(set(shard["indices"]) - set(present))
    status = {
        "file": shard["file"],
        "records": len(present),
        "bytes": os.path.getsize(path),
        "sha256": _prepared.sha256_of(path),
        "skipped": [{"index": i, "reason": "skipped by an earlier run"}
                    for i in missing],
    }
    _atomic_write(side, json.dumps(status).encode())
    return status

# ----------------------------------------------------------------------------
# The manifest.


def _manifest(plan, done, checked_skips, root):
    manifest = {k: v for k, v in plan.items() if k != "splits"}
    manifest["created_by"] = "keras_dgl.datasets.prepare"
    manifest["source_root"] = root
    splits = {}
    skipped = list(checked_skips)
    for split, split_plan in plan["splits"].items():
        clips = [list(c) for c in split_plan["clips"]]
        shards = []
        for shard in split_plan["shards"]:
            status = done[shard["file"]]
            for item in status["skipped"]:
                clip = clips[item["index"]]
                clip[2] = False
                skipped.append({
                    "split": split, "clip": clip[0],
                    "file": item.get("file", ""), "reason": item["reason"],
                })
            shards.append({k: status[k] for k in
                           ("file", "records", "bytes", "sha256")})
        labels = [c[1] for c in clips if c[2]]
        splits[split] = {
            "count": len(labels),
            "class_counts": np.bincount(
                labels, minlength=len(plan["class_names"])).tolist(),
            "clips": clips,
            "shards": shards,
        }
    manifest["splits"] = splits
    manifest["skipped"] = skipped
    return manifest


def _stored_count(manifest):
    return sum(s["count"] for s in manifest["splits"].values())


def _summary(out, manifest, decoded, reused, workers, started, skipped):
    shards = [s for split in manifest["splits"].values()
              for s in split["shards"]]
    return {
        "out": out,
        "dataset": manifest["dataset"],
        "counts": {k: v["count"] for k, v in manifest["splits"].items()},
        "shards": len(shards),
        "bytes": sum(s["bytes"] for s in shards),
        "decoded": decoded,
        "reused": reused,
        "skipped": list(skipped),
        "workers": workers,
        "seconds": time.perf_counter() - started,
        "clips_per_second": 0.0,
        "manifest": os.path.join(out, _prepared.MANIFEST_NAME),
    }
