"""Settings for the whole test session: one CPU thread per torch process.

Two `make test` runs side by side on a 2-core machine, each with torch's default of one thread per core, put four
busy threads on two cores. Torch's parallel regions then wait at their barriers for threads that are not
scheduled: the tiny suite's end-to-end test took 26 s with one thread in each of two concurrent runs, and did not
finish in 300 s with the default. One thread per process keeps every test's time proportional to the load.
Subprocesses (the CLI, papermill's kernels, Ray workers) inherit the variables. `QID_TEST_THREADS` sets another
count; tests that need a specific count set it themselves and restore it."""

import os

THREADS = os.environ.get("QID_TEST_THREADS", "1")
for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[variable] = THREADS

import torch  # noqa: E402  (after the variables: torch reads them when its thread pool starts)

torch.set_num_threads(int(THREADS))
