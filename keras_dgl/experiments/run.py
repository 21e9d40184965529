"""One training run of an experiment; no Keras."""

from __future__ import annotations

import dataclasses
from typing import Optional


@dataclasses.dataclass(frozen=True)
class Run:
    """One training run of an experiment: a method on one split.

    Args:
        method: str. A key of `keras_dgl.registry.METHODS`.
        seed: int. The split and initialisation seed.
        modality: str or `None`. The modality of a `"unimodal"` baseline.
    """

    method: str
    seed: int
    modality: Optional[str] = None

    @property
    def row(self):
        """The table row this run belongs to."""
        return f"unimodal {self.modality}" if self.modality else self.method

    @property
    def name(self):
        """The run's folder name, e.g. `"dgl-seed0"`."""
        kind = f"unimodal_{self.modality}" if self.modality else self.method
        return f"{kind}-seed{self.seed}"
