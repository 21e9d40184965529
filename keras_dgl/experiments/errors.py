"""The experiment's errors: messages meant for the user as they are; no Keras."""


class ExperimentError(ValueError):
    """A problem with the experiment's settings, data or output folder.

    The message is meant for the user as is (the command prints it as one
    line and exits with status 2).
    """


class TrainingDiverged(ExperimentError):
    """A run's loss became non-finite; the command exits with status 1."""
