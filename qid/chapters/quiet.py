"""A published page shows results, not the libraries' chatter: one call at the top of a chapter that trains or
loads models silences what they print on their own (progress bars, notes about GPU kernels a CPU build lacks,
deprecation notices about their own internals). Errors still show."""

from __future__ import annotations

import logging
import os
import warnings

# Loggers that print on a plain CPU build, with the reason each is silenced below ERROR.
CHATTY_LOGGERS = (
    "torchao",  # "Failed to load .../torchao/_C_*.so": its CUDA kernels, absent on CPU (and the path is the build machine's)
    "torch.utils._pytree",  # torchao's enum registrations, deprecated by torch: a notice about torchao, not about us
)


def quiet_libraries() -> None:
    """Every tqdm bar off (transformers' weight loading, datasets, our own sweeps), chatty loggers at ERROR."""
    os.environ["TQDM_DISABLE"] = "1"  # tqdm >= 4.66 reads its defaults from TQDM_* variables
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    os.environ["HF_DATASETS_DISABLE_PROGRESS_BARS"] = "1"
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        from tqdm import TqdmWarning

        warnings.filterwarnings("ignore", category=TqdmWarning)  # no ipywidgets in the book's kernel
    except ImportError:
        pass
    try:
        from transformers.utils import logging as transformers_logging
    except ImportError:
        return
    transformers_logging.disable_progress_bar()
