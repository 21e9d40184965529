"""What a run knows after some epochs: the record its checkpoints hold."""

import dataclasses


@dataclasses.dataclass
class RunState:
    """What a run knows after some epochs.

    Args:
        epochs_done: int. Completed epochs.
        history: dict mapping a 0-based epoch (as str) to its logs.
        best: dict or `None`. `{"epoch": 0-based epoch, "value": float}` of
            the best monitored value so far.
    """

    epochs_done: int = 0
    history: dict = dataclasses.field(default_factory=dict)
    best: dict = None
