"""Full check of a folder written by `keras_dgl.datasets.prepare`."""

from __future__ import annotations

import os

from keras_dgl.datasets import _prepared


def verify_prepared(path):
    """Checks every shard of a prepared folder against its manifest.

    The loaders check, when they open a prepared folder, that each shard
    exists with the size its manifest records (and TensorFlow checks each
    record's CRC32C as it reads it). This also compares each shard's
    SHA-256 with the manifest, which reads all the data once; the first
    mismatch raises an error that names the shard.

    Args:
        path: path. A folder written by `keras_dgl.datasets.prepare`.

    Returns:
        A dict: `shards` (count checked), `bytes` (total), `counts` (clips
        per stored list).

    Raises:
        FileNotFoundError: no manifest, or a shard is missing.
        ValueError: another format version, or a shard of another size or
            checksum.

    Example:

    ```python
    keras_dgl.datasets.verify_prepared("/data/CREMA-D-prepared")
    ```
    """
    path = os.fspath(path)
    if not _prepared.is_prepared(path):
        raise FileNotFoundError(
            f"No {_prepared.MANIFEST_NAME} in {path}: not a prepared folder, "
            f"or its preparation did not finish. {_prepared.RERUN}"
        )
    manifest = _prepared.read_manifest(path)
    _prepared.verify_shards(path, manifest, list(manifest["splits"]),
                            "checksum")
    shards = [s for split in manifest["splits"].values()
              for s in split["shards"]]
    return {
        "shards": len(shards),
        "bytes": sum(s["bytes"] for s in shards),
        "counts": {k: v["count"] for k, v in manifest["splits"].items()},
    }
