# Helpers shared by every rule file: where the dataset is, which users it has, and the stage code that
# each rule lists as an input (editing a stage's module reruns that stage).
import os
import sys
from pathlib import Path

SRC = Path(workflow.basedir) / "src"
# The rules run `python -m facemorphic ...`; putting src/ on PYTHONPATH makes that work in a pip install,
# in a checkout, and inside per-rule conda environments alike.
sys.path.insert(0, str(SRC))
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH", "")]))
# `python` in the rules is the interpreter running Snakemake (a venv need not be activated); with
# `--sdm conda` the rule's environment is activated after this and its python comes first.
os.environ["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])

from facemorphic.dataset.layout import list_users  # noqa: E402

FACEMORPHIC = "python -m facemorphic"
SYNTHETIC_ROOT = "resources/synthetic"


def is_synthetic():
    return config["dataset"]["source"] == "synthetic"


def dataset_root():
    """The folder holding {user}/AU_{n}/... recordings."""
    if is_synthetic():
        return f"{SYNTHETIC_ROOT}/recordings"
    return config["dataset"]["root"]


def users():
    """Users at parse time: from the config for generated data, from the dataset folders otherwise."""
    if is_synthetic():
        return [f"user{i:02d}" for i in range(config["synthetic"]["n_users"])]
    if config["dataset"]["users"]:
        return list(config["dataset"]["users"])
    root = dataset_root()
    found = list_users(root)
    if not found:
        raise WorkflowError(
            f"config dataset.root={root!r}: no user folders with AU_* recordings there "
            "(set dataset.source: synthetic to run on the generated dataset)"
        )
    return found


def stage_code(*packages):
    """The Python files of the named facemorphic subpackages (rule inputs, so edits rerun the stage)."""
    files = []
    for package in packages:
        files += sorted(str(p) for p in (SRC / "facemorphic" / package).glob("*.py"))
    return files


def user_recording_files(wildcards):
    """Everything the ingest of one user reads: its RAW files, RGB videos and JPEG folders."""
    if is_synthetic():
        return [f"{SYNTHETIC_ROOT}/truth/{wildcards.user}.h5"]
    user_dir = Path(dataset_root()) / wildcards.user
    return sorted(
        str(p)
        for p in user_dir.glob("AU_*/*")
        if p.name.startswith(("event_", "frames_")) or p.name in ("sentences.txt",)
    ) + sorted(str(p) for p in user_dir.glob("sync.csv"))


def sync_csv_files():
    path = config["dataset"]["sync_csv"]
    return [path] if path else []


def final_targets():
    """What `snakemake all` builds."""
    return [
        "results/manifest.csv",
    ]
