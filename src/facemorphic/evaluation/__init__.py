"""Result tables and figures, recomputed from the runs' predictions."""

from __future__ import annotations

from .._lazy import lazy_exports

#: name -> the submodule that defines it, imported on first use (see facemorphic._lazy)
_EXPORTS = {name: module for module, names in {
    ".evaluate": ("evaluate_runs",),
    ".figures": ("confusion_matrix", "save_confusion_figure"),
    ".tables": ("PAPER_RESULTS", "bootstrap_interval", "build_tables", "lambda_sweep_table", "load_runs", "topk_hits"),
}.items() for name in names}
__all__ = list(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
