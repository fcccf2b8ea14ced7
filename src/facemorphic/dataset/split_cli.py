"""``facemorphic split``: merge per-user manifests and rejects and assign the train/test split."""

from .cli import add_split_command_arguments as add_arguments
from .cli import run_split as run

__all__ = ["add_arguments", "run"]
