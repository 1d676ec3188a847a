"""A Ray cluster for the book's long jobs: joining or starting one, task resources, and failures after retries.

Shared by the two Ray runners, `qid.measure.ray_sweep` (one task per checkpoint of a QiD sweep) and
`qid.suite.ray_training` (one task per training group of the suite); neither imports the other.

`connect(address)` joins a cluster: None starts a private local one; 'auto' joins the one started on this
machine with `ray start`; 'ray://HOST:10001' uses Ray Client. On a cluster the repository (without .venv,
.git, runs/) is shipped to the workers as the job's working directory, so they run the driver's code.
"""

from __future__ import annotations

import os
import socket
import sys

from qid.common.paths import REPO_ROOT

LOCAL_NODE_ADDRESS = "127.0.0.1"  # where a private local cluster listens
DEFAULT_ATTEMPTS = 3  # tries per task: the first run and two retries
# Not shipped to a cluster's workers: environments, history, large regenerable outputs.
SHIPPING_EXCLUDES = [".git", ".venv", ".venv-bench", "runs", "_build", "chapters", "**/__pycache__", "*.pt",
                     "*.egg-info", ".pytest_cache"]


class DistributedSweepError(RuntimeError):
    """Some checkpoints (named in the message) failed after their retries; `summary` has everything else."""

    def __init__(self, message: str, summary: dict):
        super().__init__(message)
        self.summary = summary


def ray_module():
    """The `ray` package, imported on first use (it is slow to import and only --ray needs it)."""
    try:
        import ray
    except ImportError as error:  # pragma: no cover - ray is a requirement
        raise RuntimeError("--ray needs the `ray` package (pip install -r requirements.txt)") from error
    return ray


def connect(address: str | None = None, num_cpus: int | None = None, log=None) -> dict:
    """Join (or start) a Ray cluster unless already connected; returns the cluster's resources.

    address None or 'local': a private cluster on this machine (`num_cpus` CPUs; all of them when None).
    Anything else ('auto', 'HOST:6379', 'ray://HOST:10001') joins a running cluster and ships the repository
    as the job's working directory.
    """
    ray = ray_module()
    log = log or (lambda message: print(message, file=sys.stderr))
    if not ray.is_initialized():
        if address in (None, "", "local"):
            # Loopback only: a private cluster has no reason to listen on the machine's network interface. Ray
            # resolves 127.0.0.1 to that interface unless clusters are "disabled" (its flag for single-machine use);
            # the environment variable carries the setting to the processes Ray starts.
            os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
            ray._private.ray_constants.ENABLE_RAY_CLUSTER = False
            ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False, configure_logging=False,
                     _node_ip_address=LOCAL_NODE_ADDRESS)
            # A driver killed with SIGKILL never shuts Ray down; the watchdog stops what would outlive it.
            from qid.common import raywatch

            raywatch.start()
        else:
            check_reachable(address)
            runtime_env = {"working_dir": str(REPO_ROOT), "excludes": SHIPPING_EXCLUDES}
            try:
                ray.init(address=address, runtime_env=runtime_env, log_to_driver=True)
            except ConnectionError as error:
                raise ValueError(
                    f"--ray {address}: no Ray cluster reachable there ({str(error).splitlines()[0]}); a cluster with "
                    "token authentication (the default of `ray start` in Ray 2.60) also needs RAY_AUTH_MODE=token "
                    "and its token (RAY_AUTH_TOKEN or ~/.ray/auth_token) in the driver's environment") from error
    resources = ray.cluster_resources()
    log(f"Ray cluster: {resources.get('CPU', 0):g} CPU(s), {resources.get('GPU', 0):g} GPU(s) on "
        f"{len([node for node in ray.nodes() if node.get('Alive')])} node(s)")
    return resources


CONNECT_TIMEOUT_S = 10.0  # a cluster's head answers a TCP connection at once; Ray itself would retry for minutes


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Fail fast when nothing listens at HOST:PORT (or ray://HOST:PORT): Ray's own client keeps retrying the GCS
    for minutes. 'auto' (a cluster started here) is left to Ray."""
    text = address.removeprefix("ray://")
    host, separator, port = text.rpartition(":")
    if address == "auto" or not separator or not port.isdigit():
        return
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as error:
        reason = "timed out" if isinstance(error, TimeoutError) else (error.strerror or type(error).__name__)
        raise ValueError(f"--ray {address}: no Ray cluster reachable there ({reason} after at most {timeout:g} s); "
                         "start one with `ray start --head` or give the head node's HOST:6379") from None


def task_resources(device: str, resources: dict, cpus_per_task: int = 1) -> dict:
    """The resource request of one task: a whole GPU when the cluster has GPUs and the device allows it."""
    gpus = resources.get("GPU", 0)
    if str(device).startswith("cuda") and gpus < 1:
        raise ValueError(f"device={device!r}: the Ray cluster has no GPU; use --device auto or cpu")
    if device != "cpu" and gpus >= 1:
        return {"num_gpus": 1, "num_cpus": 1}
    return {"num_cpus": cpus_per_task}


def failure_text(error, input_errors: tuple = ()) -> tuple[str, bool]:
    """(one line describing a task failure, whether retrying could help: not for one of `input_errors`)."""
    cause = getattr(error, "cause", None)
    if cause is not None:
        return f"{type(cause).__name__}: {str(cause).splitlines()[0] if str(cause) else ''}", not isinstance(cause, input_errors)
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}", True
