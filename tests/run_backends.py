"""Runs the test suite once per Keras backend, the three runs side by side.

`tox` calls this from one environment that holds all three backends, so the
suite installs once and the backends share the machine's cores. Each run is
a separate `pytest` process with its own `KERAS_BACKEND` (a backend cannot
change inside a process). Its output goes to a log that is printed whole
when the run ends, so the three reports do not interleave; a line reports
each run's start, end, exit code and wall time. The exit code is 0 only if
every run passed.

The runs share the machine's cores: each gets `cores // runs` threads (at
least one) for its frameworks' thread pools, through the environment, which
the processes the tests start inherit. Left to themselves, TensorFlow, XLA
and torch each size their pools to every core, and three of them on two
cores mostly wait for each other: the suite's tiny models gain nothing from
threads (benchmarks/RESULTS.md, "Test suite"). A variable already set is
kept.

Usage:

```bash
python tests/run_backends.py -q                  # what `tox` runs
python tests/run_backends.py --backends jax -q -x tests/test_dgl_model.py
```

Every argument after the options is passed to each `pytest` run.
"""

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time

BACKENDS = ("tensorflow", "jax", "torch")


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Run pytest once per Keras backend, in parallel.",
        allow_abbrev=False,  # pytest's own long options pass through
    )
    parser.add_argument(
        "--backends",
        default=",".join(BACKENDS),
        help="comma-separated backends (default: %(default)s)",
    )
    args, pytest_args = parser.parse_known_args(argv)
    backends = [b for b in args.backends.split(",") if b]
    unknown = sorted(set(backends) - set(BACKENDS))
    if unknown or not backends:
        parser.error(
            f"--backends: unknown backend(s) {unknown}; choose from {BACKENDS}"
        )
    runs = {}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="keras_dgl_tests_") as logs:
        try:
            for backend in backends:
                log = open(os.path.join(logs, f"{backend}.log"), "w+b")
                env = dict(os.environ, KERAS_BACKEND=backend)
                env.update(thread_settings(len(backends), env))
                command = [sys.executable, "-m", "pytest", *pytest_args]
                process = subprocess.Popen(
                    command, env=env, stdout=log, stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
                runs[backend] = (process, log, time.monotonic())
                print(f"[{backend}] started: {' '.join(command[1:])}", flush=True)
            codes = _wait(runs, started)
        except BaseException:
            # Ctrl-C or a CI timeout: leave no pytest process behind.
            for process, _, _ in runs.values():
                if process.poll() is None:
                    os.killpg(process.pid, signal.SIGTERM)
            raise
        finally:
            for _, log, _ in runs.values():
                log.close()
    failed = [b for b, code in codes.items() if code != 0]
    total = time.monotonic() - started
    summary = ", ".join(f"{b} {'passed' if codes[b] == 0 else 'FAILED'}" for b in codes)
    print(f"\nAll backends done in {total:.0f} s: {summary}.", flush=True)
    return 1 if failed else 0


def thread_settings(num_runs, environ):
    """The thread-pool variables for one of `num_runs` side-by-side runs.

    Args:
        num_runs: int. How many runs share the machine.
        environ: the environment the run starts from; a variable already
            set there is left as it is.

    Returns:
        A dict of environment variables to add.

    Example:
        >>> thread_settings(3, {})["OMP_NUM_THREADS"]  # on two cores
        '1'
    """
    threads = max(1, (os.cpu_count() or 1) // num_runs)
    settings = {
        "OMP_NUM_THREADS": str(threads),  # torch, NumPy's BLAS
        "TF_NUM_INTRAOP_THREADS": str(threads),
        # Two at least: tf.data and blocking ops wait on inter-op threads.
        "TF_NUM_INTEROP_THREADS": str(max(2, threads)),
    }
    added = {k: v for k, v in settings.items() if k not in environ}
    flags = environ.get("XLA_FLAGS", "")
    if threads == 1 and "--xla_cpu_multi_thread_eigen" not in flags:
        # XLA on CPU: single-threaded Eigen kernels (matmuls, convolutions).
        added["XLA_FLAGS"] = f"{flags} --xla_cpu_multi_thread_eigen=false".strip()
    return added


def _wait(runs, started):
    """Waits for every run; prints each one's log as it ends."""
    codes = {}
    while len(codes) < len(runs):
        for backend, (process, log, start) in runs.items():
            if backend in codes or process.poll() is None:
                continue
            codes[backend] = process.returncode
            log.flush()
            log.seek(0)
            print(f"\n===== {backend} =====", flush=True)
            sys.stdout.buffer.write(log.read())
            sys.stdout.flush()
            print(
                f"[{backend}] exit code {process.returncode} after "
                f"{time.monotonic() - start:.0f} s "
                f"({time.monotonic() - started:.0f} s since the start)",
                flush=True,
            )
        time.sleep(1)
    return codes


if __name__ == "__main__":
    sys.exit(main())
