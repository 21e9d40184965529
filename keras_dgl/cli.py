"""The `keras-dgl` command.

`keras-dgl train` compares DGL with joint training, published baselines
and unimodal models (see `keras_dgl.experiments`); `keras-dgl tune` runs a
small KerasTuner search (see `keras_dgl.experiments.run_tune`). Keras is
imported only after the arguments are parsed and the settings checked,
because `--backend` must be in `KERAS_BACKEND` before the first
`import keras` of the process; `import keras_dgl` does not import it (the
package is lazy), and the modules used before that point
(`keras_dgl.registry`, `keras_dgl.experiments.config`) import no Keras.
"""

import argparse
import ast
import os
import sys
import textwrap

from keras_dgl import registry
from keras_dgl.experiments.config import DEFAULT_METHODS
from keras_dgl.experiments.config import ExperimentConfig
from keras_dgl.experiments.config import check_number
from keras_dgl.experiments.config import seed_list
from keras_dgl.experiments.errors import ExperimentError
from keras_dgl.experiments.presets import PRESETS

PROG = "keras-dgl"


def _methods_epilog():
    lines = ["methods (--methods; all but unimodal share encoders, fusion and budget):"]
    width = max(len(name) for name in registry.METHODS) + 2
    for name, method in registry.METHODS.items():
        text = method.summary.replace("`", "")
        if method.reference != "—":
            text += f" ({method.reference})"
        wrapped = textwrap.wrap(text, 76 - width - 2)
        lines.append(f"  {name.ljust(width)}{wrapped[0]}")
        lines += [" " * (width + 2) + rest for rest in wrapped[1:]]
    return "\n".join(lines)


_EPILOG = _methods_epilog() + """

With Adam (the built-in data's default), alpha does not change dgl and a
gradient's scale barely matters to ogm; use --optimizer sgd to study them.
gblend estimates its own loss weights (--alpha does not apply).

Every multimodal run is scored as trained, then its fusion layer is refit on
frozen encoder features (length chosen on the validation split) and scored
again: the '<method> + refit' rows (--no-refit skips this). Each run also
records its modality contribution (fused accuracy with each modality zeroed
at test time) and its encoders' gradient ratios per epoch
(gradient_ratio_<method>.png).

examples:
  keras-dgl train                              # smartwatch: dgl, joint, unimodal; 3 splits
  keras-dgl train --dataset synthetic --epochs 5 --seeds 2 --out /tmp/dgl
  keras-dgl train --backend jax --fusion gated --methods dgl,joint
  keras-dgl train --methods dgl,joint,ogm_ge,gblend --optimizer sgd --learning-rate 0.01
  keras-dgl train --dataset crema-d --data-dir /data/CREMA-D --data-option cache=True

Running the same command again with the same --out resumes it: finished
runs are skipped, an interrupted run continues after its last epoch.
Exit status: 0 done, 1 a run diverged (non-finite loss), 2 bad options,
data or output folder, 130 interrupted.
"""

_PREPARE_EPILOG = """\
Each clip is decoded once, in parallel over the host's cores, into TFRecord
shards of about 100 MB plus manifest.json (keras_dgl.datasets.prepare).
Then give the output folder to --data-dir: keras-dgl train and the loaders
(keras_dgl.datasets.crema_d(...), ...) read the shards instead of the raw
clips. Running the same command again resumes an interrupted prepare;
finished shards are never rewritten.

examples:
  keras-dgl prepare --dataset crema-d --data-dir /data/CREMA-D --out /data/crema-d-prepared
  keras-dgl train --dataset crema-d --data-dir /data/crema-d-prepared
"""

_TUNE_EPILOG = """\
The search space: method (dgl, joint, joint_aux), alpha (when the method
uses it), learning rate (SGD with momentum 0.9) and fusion layer; see
keras_dgl.tuner.DGLHyperModel. Trials are compared on validation accuracy;
the best model is scored once on the test split.

examples:
  keras-dgl tune                                # smartwatch, 4 random trials x 4 epochs
  keras-dgl tune --dataset synthetic --tuner bayesian --max-trials 8
  keras-dgl tune --tuner hyperband --epochs 9 --backend jax

Running the same command again with the same --out resumes the search
(finished trials are kept); --overwrite starts it afresh.
"""


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, without the usage block."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _number(text, strict):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}")
    try:
        return check_number("value", value, 0.0, strict=strict)
    except ExperimentError:
        bound = "> 0" if strict else ">= 0"
        raise argparse.ArgumentTypeError(
            f"expected a finite number {bound}, got {text!r}"
        ) from None


def _non_negative_float(text):
    return _number(text, strict=False)


def _positive_float(text):
    return _number(text, strict=True)


def _methods(text):
    if text.strip() == "all":
        return tuple(registry.METHODS)
    methods = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in methods if m not in registry.METHODS]
    if unknown or not methods:
        raise argparse.ArgumentTypeError(
            f"unknown method(s) {', '.join(unknown) or repr(text)}; "
            f"choose from {','.join(registry.METHODS)}"
        )
    return tuple(dict.fromkeys(methods))


def _seeds(text):
    """`N` (seeds 0..N-1) or a comma list of seeds."""
    try:
        if "," in text:
            seeds = [int(s) for s in text.split(",") if s.strip()]
        else:
            seeds = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a count or a comma list of distinct seeds, got {text!r}"
        )
    try:
        seed_list(seeds)
    except ExperimentError:
        if isinstance(seeds, int):
            raise argparse.ArgumentTypeError(f"expected at least 1 seed, got {text!r}")
        raise argparse.ArgumentTypeError(
            f"expected a count or a comma list of distinct seeds, got {text!r}"
        ) from None
    return seeds


def _data_option(text):
    key, sep, raw = text.partition("=")
    if not sep or not key.strip().isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        value = raw  # A bare word is a string.
    return key.strip(), value


def build_parser():
    """The `keras-dgl` argument parser (standard library only).

    Returns:
        An `argparse.ArgumentParser` with the `train`, `prepare` and `tune`
        sub-commands.

    Example:

    ```python
    args = keras_dgl.cli.build_parser().parse_args(["train", "--seeds", "2"])
    args.seeds  # 2
    ```
    """
    parser = _Parser(
        prog=PROG,
        description="Disentangled Gradient Learning (DGL) for multimodal Keras models.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    train = commands.add_parser(
        "train",
        prog=f"{PROG} train",
        help="compare DGL with joint training and other baselines",
        description=textwrap.fill(
            "Train DGL, joint training, other baselines and per-modality models "
            "with the same budget and seeds over several data splits, choose "
            "each run's epoch on the validation split, and print test accuracy "
            "(fused and per modality, mean ± std over splits) with the paired "
            "DGL - joint gain, the gain of refitting the fusion layer, and "
            "per-modality diagnostics."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    train.add_argument("--dataset", choices=tuple(registry.DATASETS), default="smartwatch",
                       help="data set (default: smartwatch, built in)")
    train.add_argument("--data-dir", metavar="DIR",
                       help="data folder; required for crema-d, kinetics-sounds, ave, vggsound "
                            "(raw clips, or a folder written by keras-dgl prepare)")
    train.add_argument("--data-option", metavar="KEY=VALUE", type=_data_option,
                       action="append", default=[],
                       help="extra argument of the dataset loader, e.g. "
                            "window_seconds=2.0 (repeatable)")
    train.add_argument("--backend", choices=registry.BACKENDS,
                       help="Keras backend (default: $KERAS_BACKEND, else tensorflow)")
    train.add_argument("--fusion", choices=tuple(registry.FUSIONS), default="concat",
                       help="fusion layer (default: concat)")
    train.add_argument("--alpha", type=_non_negative_float,
                       help="weight of the unimodal losses (default: per dataset). "
                            "Acts as an encoder learning-rate factor with SGD; "
                            "no effect on DGL with Adam")
    train.add_argument("--methods", type=_methods, default=DEFAULT_METHODS,
                       help=f"comma list of {', '.join(registry.METHODS)}, or all (default: "
                            f"{','.join(DEFAULT_METHODS)}; see 'methods' below)")
    train.add_argument("--ogm-alpha", type=_non_negative_float, default=0.1,
                       help="modulation strength of ogm and ogm_ge (default: "
                            "0.1; the OGM-GE authors use 0.8 for CREMA-D)")
    smartwatch = PRESETS["smartwatch"]
    train.add_argument("--epochs", type=_positive_int,
                       help="epochs per run (default: per dataset; smartwatch "
                            f"{smartwatch['epochs']})")
    train.add_argument("--batch-size", type=_positive_int,
                       help="batch size (default: per dataset; smartwatch "
                            f"{smartwatch['batch_size']})")
    train.add_argument("--seeds", type=_seeds, default=3,
                       help="number of splits N (seeds 0..N-1) or a comma list "
                            "(default: 3)")
    train.add_argument("--optimizer", choices=tuple(registry.OPTIMIZERS),
                       help="adam, or sgd with momentum 0.9 (default: per dataset)")
    train.add_argument("--learning-rate", type=_positive_float,
                       help="learning rate (default: per dataset)")
    train.add_argument("--probe", action=argparse.BooleanOptionalAction, default=True,
                       help="also score each encoder with a linear probe (default: on)")
    train.add_argument("--refit", action=argparse.BooleanOptionalAction, default=True,
                       help="also refit each multimodal model's fusion layer on "
                            "frozen encoder features and score it again (the "
                            "'+ refit' rows; default: on)")
    train.add_argument("--refit-epochs", type=_positive_int, default=20,
                       help="most epochs of each fusion refit (default: 20)")
    train.add_argument("--deterministic", action=argparse.BooleanOptionalAction,
                       default=True,
                       help="the frameworks' deterministic modes: the same command "
                            "on the same machine prints the same table (default: on)")
    train.add_argument("--unimodal-head", choices=tuple(registry.UNIMODAL_HEADS),
                       default="separate",
                       help="dgl runs' per-modality prediction: separate (default: "
                            "a linear head per modality, fused path set to the "
                            "sum of their logits before scoring and refit) or "
                            "shared (the published form)")
    train.add_argument("--epoch-choice", choices=tuple(registry.EPOCH_CHOICES),
                       help="dgl runs' weights: per-modality (each encoder at its "
                            "own best validation epoch; the default with "
                            "separate heads) or fused (the whole model at the "
                            "best fused epoch; the default with the shared head)")
    train.add_argument("--out", metavar="DIR", default="dgl-results",
                       help="output folder, also used to resume (default: ./dgl-results)")
    train.add_argument("-q", "--quiet", action="store_true",
                       help="no per-epoch training output")

    prepare = commands.add_parser(
        "prepare",
        prog=f"{PROG} prepare",
        help="decode an audio-visual data set once into TFRecord shards",
        description=textwrap.fill(
            "Decode every clip of an audio-visual data set once (frames "
            "resized to uint8, audio as a spectrogram or waveform) into "
            "sharded TFRecord files with a manifest, so that training reads "
            "bytes instead of decoding WAV and JPEG files at every step."
        ),
        epilog=_PREPARE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    prepare.add_argument("--dataset", required=True,
                         choices=tuple(n for n, d in registry.DATASETS.items()
                                       if not d.builtin),
                         help="audio-visual data set")
    prepare.add_argument("--data-dir", metavar="RAW", required=True,
                         help="the raw data folder (CSV lists, audio/, visual/)")
    prepare.add_argument("--out", metavar="PREPARED", required=True,
                         help="output folder for the shards and manifest.json")
    prepare.add_argument("--frame-size", type=_positive_int, default=256,
                         help="short side of the stored frames in pixels "
                              "(default: 256)")
    prepare.add_argument("--train-frames", type=_positive_int,
                         help="frames kept per training clip (default: all, so "
                              "that the random frame choice stays possible)")
    prepare.add_argument("--workers", type=_positive_int,
                         help="parallel decoders (default: the host's cores)")
    prepare.add_argument("--on-error", choices=("raise", "skip"), default="raise",
                         help="a clip that cannot be decoded stops the run "
                              "(raise, default) or is left out and listed (skip)")
    prepare.add_argument("--data-option", metavar="KEY=VALUE", type=_data_option,
                         action="append", default=[],
                         help="extra argument of the dataset's loader, e.g. "
                              "sample_rate=16000 (repeatable)")
    prepare.add_argument("-q", "--quiet", action="store_true",
                         help="no progress bar")

    tune = commands.add_parser(
        "tune",
        prog=f"{PROG} tune",
        help="search DGL hyperparameters with KerasTuner",
        description=textwrap.fill(
            "Run a small KerasTuner search over DGL model settings on a "
            "built-in data set and print the best hyperparameters, their "
            "validation accuracy and the best model's test accuracy."
        ),
        epilog=_TUNE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    tune.add_argument("--dataset", choices=registry.builtin_datasets(),
                      default="smartwatch",
                      help="data set (default: smartwatch, built in)")
    tune.add_argument("--tuner", choices=tuple(registry.TUNERS), default="random",
                      help="search algorithm (default: random)")
    tune.add_argument("--max-trials", type=_positive_int, default=4,
                      help="trials of random and bayesian; hyperband sizes its "
                           "own from --epochs (default: 4)")
    tune.add_argument("--epochs", type=_positive_int, default=4,
                      help="epochs per trial, hyperband's maximum (default: 4)")
    tune.add_argument("--backend", choices=registry.BACKENDS,
                      help="Keras backend (default: $KERAS_BACKEND, else tensorflow)")
    tune.add_argument("--data-option", metavar="KEY=VALUE", type=_data_option,
                      action="append", default=[],
                      help="extra argument of the dataset loader (repeatable)")
    tune.add_argument("--out", metavar="DIR", default="dgl-tune",
                      help="the tuner's folder, also used to resume "
                           "(default: ./dgl-tune)")
    tune.add_argument("--overwrite", action="store_true",
                      help="start the search afresh instead of resuming it")
    tune.add_argument("-q", "--quiet", action="store_true",
                      help="no per-trial output")
    return parser


def main(argv=None):
    """Runs the `keras-dgl` command.

    Args:
        argv: list of str, the arguments after the program name; `None`
            reads `sys.argv[1:]`.

    Returns:
        The exit status: 0 on success, 1 when a run diverged (non-finite
        loss), 2 for a bad option, missing data or an unusable output
        folder, 130 when interrupted.

    Example:

    ```python
    status = keras_dgl.cli.main(
        ["train", "--dataset", "synthetic", "--epochs", "2", "--out", "/tmp/x"]
    )
    ```
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # --help, or a bad option (already reported).
        return stop.code
    config = None
    if args.command == "train":
        config = _config(args)
        try:
            # Before Keras loads: a bad setting costs no framework start-up.
            config.resolved()
        except ExperimentError as error:
            return _fail(f"{PROG} train: error: {error}")

    # Both only take effect if set before TensorFlow or PyTorch is loaded.
    # TensorFlow's start-up INFO lines are noise in a command's output.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    # PyTorch's OpenMP threads otherwise busy-wait between ops and starve the
    # tf.data threads that feed them (benchmarks/RESULTS.md).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

    if getattr(args, "backend", None):
        loaded = _loaded_keras_backend()
        if loaded is not None and loaded != args.backend:
            # Keras fixes its backend when first imported. `import keras_dgl`
            # does not import it, so this happens only when a caller in the
            # same process imported Keras before calling main().
            return _fail(
                f"{PROG} {args.command}: error: --backend {args.backend} "
                f"requested, but Keras is already loaded with backend {loaded} "
                "in this process; set KERAS_BACKEND before importing keras"
            )
        os.environ["KERAS_BACKEND"] = args.backend
    if getattr(args, "deterministic", False):
        from keras_dgl.experiments import determinism

        determinism.prepare_environment(os.environ.get("KERAS_BACKEND", "tensorflow"))

    if args.quiet:
        verbose = 0
    else:
        # Progress bars on a terminal, one line per epoch in logs and pipes.
        verbose = 1 if sys.stdout.isatty() else 2
    if args.command == "tune":
        return _tune(args, verbose)
    if args.command == "prepare":
        return _prepare(args, verbose)
    return _train(config, args, verbose)


def _config(args):
    return ExperimentConfig(
        dataset=args.dataset,
        data_dir=args.data_dir,
        data_options=dict(args.data_option),
        fusion=args.fusion,
        alpha=args.alpha,
        methods=args.methods,
        epochs=args.epochs,
        batch_size=args.batch_size,
        seeds=args.seeds,
        optimizer=args.optimizer,
        learning_rate=args.learning_rate,
        probe=args.probe,
        out=args.out,
        ogm_alpha=args.ogm_alpha,
        refit=args.refit,
        refit_epochs=args.refit_epochs,
        unimodal_head=args.unimodal_head,
        epoch_choice=args.epoch_choice,
    )


def _train(config, args, verbose):
    from keras_dgl.experiments import determinism
    from keras_dgl.experiments import runner  # Imports Keras: only now.
    from keras_dgl.experiments.errors import TrainingDiverged

    if args.deterministic:
        determinism.enable()
    try:
        runner.run_experiment(config, verbose=verbose)
    except TrainingDiverged as error:
        return _fail(f"{PROG} train: error: {error}", status=1)
    except ExperimentError as error:
        return _fail(f"{PROG} train: error: {error}")
    except KeyboardInterrupt:
        return _fail(
            f"{PROG} train: interrupted; run the same command again to resume "
            f"from the last completed epoch (state in {os.path.abspath(args.out)})",
            status=130,
        )
    return 0


def _tune(args, verbose):
    from keras_dgl.experiments import store  # Imports Keras: only now.
    from keras_dgl.experiments import tune

    try:
        result = tune.run_tune(
            dataset=args.dataset,
            max_trials=args.max_trials,
            epochs=args.epochs,
            directory=args.out,
            tuner=args.tuner,
            overwrite=args.overwrite,
            data_options=dict(args.data_option),
            verbose=verbose,
        )
    except (ValueError, OSError, ImportError) as error:
        return _fail(f"{PROG} tune: error: {error}")
    except KeyboardInterrupt:
        return _fail(
            f"{PROG} tune: interrupted; run the same command again to resume "
            f"the search (state in {os.path.abspath(args.out)})",
            status=130,
        )
    saved = {k: v for k, v in result.items() if k != "model"}
    saved["tuner"] = args.tuner
    path = os.path.join(args.out, "best.json")
    store.write_json(path, saved)
    print(f"Saved to {path}")
    return 0


def _prepare(args, verbose):
    from keras_dgl.datasets.prepare import prepare  # Imports TensorFlow.

    try:
        summary = prepare(
            args.dataset,
            args.data_dir,
            args.out,
            frame_size=args.frame_size,
            train_frames=args.train_frames,
            workers=args.workers,
            on_error=args.on_error,
            verbose=1 if verbose else 0,
            **dict(args.data_option),
        )
    except (ValueError, OSError) as error:
        return _fail(f"{PROG} prepare: error: {error}")
    except TypeError as error:
        # An unknown --data-option reaches the loader as a keyword argument.
        return _fail(f"{PROG} prepare: error: bad --data-option: {error}")
    except KeyboardInterrupt:
        return _fail(
            f"{PROG} prepare: interrupted; run the same command again to resume "
            f"(finished shards in {os.path.abspath(args.out)} are kept)",
            status=130,
        )
    counts = ", ".join(f"{split} {n}" for split, n in summary["counts"].items())
    print(
        f"Prepared {args.dataset} in {os.path.abspath(args.out)}: {counts} clips, "
        f"{summary['shards']} shards, {summary['bytes'] / 1e6:.0f} MB; "
        f"{summary['decoded']} decoded, {summary['reused']} reused from an "
        f"earlier run, {len(summary['skipped'])} skipped; "
        f"{summary['seconds']:.1f} s"
    )
    return 0


def _loaded_keras_backend():
    """The backend of an already imported Keras, or `None`."""
    keras = sys.modules.get("keras")
    backend = getattr(getattr(keras, "backend", None), "backend", None)
    return backend() if callable(backend) else None


def _fail(message, status=2):
    print(message.replace("\n", " "), file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
