"""Where the book's files live, independent of the current working directory.

Notebooks run under papermill from the repository root, tests from anywhere: every data path is resolved
from the package location so that both find the same files.
"""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]  # qid/common/paths.py -> the repository
DATA_DIR = REPO_ROOT / "data"
REFERENCE_DIR = DATA_DIR / "reference"
FITS_DIR = DATA_DIR / "fits"
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
# The read-only reference material beside the project (papers' numbers, third-party data we may not commit).
SHARED_REFERENCE_DIR = REPO_ROOT.parent / "shared" / "reference"
