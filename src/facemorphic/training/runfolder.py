"""The run folder's ``run.json`` reader (the file is written by :func:`facemorphic.training.run.train_run`);
kept torch-free so that the report and predict read runs without importing the training code."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

from ..errors import InputFileError


def read_run_json(run_dir: str | Path, required: Iterable[str] = ()) -> dict:
    """What one run did and scored; a missing, unreadable or incomplete ``run.json`` names itself."""
    path = Path(run_dir) / "run.json"
    if not path.is_file():
        raise InputFileError(path, "run folder has no run.json (was the training run finished?)")
    try:
        summary = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InputFileError(path, f"not valid JSON ({exc.msg})") from None
    missing = [key for key in required if key not in summary]
    if missing:
        raise InputFileError(path, f"run.json lacks {missing}")
    return summary
