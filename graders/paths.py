"""Where things are: the repository and its top-level folders, named once."""

from __future__ import annotations

from pathlib import Path

GRADERS_DIR = Path(__file__).resolve().parent
REPO_ROOT = GRADERS_DIR.parent
# The only code the sandbox mounts; installed or not, it lies beside this package.
WORKER_PACKAGE_DIR = REPO_ROOT / "graders_worker"
SOLUTIONS_DIR = REPO_ROOT / "solutions"
TEMPLATES_DIR = REPO_ROOT / "assignments"
DATASETS_DIR = REPO_ROOT / "datasets"
