"""Runs one tiny experiment in its own process, optionally SIGKILLing itself.

Used by tests/test_crash_safety.py: `python experiment_worker.py SPEC`, where
SPEC is JSON with `config` (ExperimentConfig arguments), `dropout` (added
to the synthetic preset's encoder, so that random masks are part of the
state) and `kill`: `null`, `["replace", REGEX]` (SIGKILL just before the
first rename onto a path matching REGEX: a file or checkpoint about to be
committed) or `["savez", N]` (SIGKILL halfway through writing the N-th
NumPy archive: a checkpoint file cut short). The kill is a real SIGKILL:
nothing is flushed or cleaned up.
"""

import io
import json
import os
import re
import signal
import sys

import numpy as np


def _die():
    os.kill(os.getpid(), signal.SIGKILL)


def main():
    spec = json.loads(sys.argv[1])
    kill = spec.get("kill")
    if kill and kill[0] == "replace":
        pattern, replace = re.compile(kill[1]), os.replace

        def killing_replace(source, target, *args, **kwargs):
            if pattern.search(os.fspath(target)):
                _die()
            return replace(source, target, *args, **kwargs)

        os.replace = killing_replace
    if kill and kill[0] == "savez":
        calls, savez = [0], np.savez

        def killing_savez(file, *args, **kwargs):
            calls[0] += 1
            if calls[0] == kill[1]:
                buffer = io.BytesIO()
                savez(buffer, *args, **kwargs)
                data = buffer.getvalue()
                file.write(data[: len(data) // 2])
                file.flush()
                os.fsync(file.fileno())
                _die()
            return savez(file, *args, **kwargs)

        np.savez = killing_savez

    from keras_dgl.experiments import runner
    from keras_dgl.experiments.config import ExperimentConfig
    from keras_dgl.experiments.presets import PRESETS

    PRESETS["synthetic"]["encoder"]["config"]["dropout"] = spec.get("dropout", 0.0)
    runner.run_experiment(
        ExperimentConfig(**spec["config"]), verbose=0,
        log=lambda line: print(line, flush=True),
    )


if __name__ == "__main__":
    main()
