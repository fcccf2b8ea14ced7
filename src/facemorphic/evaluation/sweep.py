"""The L_alpha sweep's decision, read by the final training runs of a swept experiment. Kept apart from the
tables (:mod:`.tables`) so that a training job depends on this reader only, not on the table code."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..errors import FacemorphicError


def chosen_lambda(sweep_table_path: str | Path, model: str, modality: str) -> float:
    """The lambda the sweep chose for one model on one modality (row ``chosen`` = ``yes``)."""
    table = pd.read_csv(sweep_table_path)
    rows = table[(table["model"] == model) & (table["modality"] == modality) & (table["chosen"] == "yes")]
    if len(rows) != 1:
        raise FacemorphicError(f"{sweep_table_path}: no chosen lambda for model {model!r} on {modality!r}")
    return float(rows["lambda_alpha"].iloc[0])
