"""Result tables and figures, recomputed from the runs' predictions."""

from .evaluate import evaluate_runs
from .figures import confusion_matrix, save_confusion_figure
from .tables import PAPER_RESULTS, build_tables, load_runs, topk_hits

__all__ = ["evaluate_runs", "confusion_matrix", "save_confusion_figure", "PAPER_RESULTS", "build_tables",
           "load_runs", "topk_hits"]
