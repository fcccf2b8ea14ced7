# Helpers shared by all rule files. They say where the dataset is, which users it has, and which stage
# code each rule lists as an input (editing a stage module reruns that stage).
import sys
from pathlib import Path

from snakemake_interface_executor_plugins.settings import DeploymentMethod

SRC = Path(workflow.basedir) / "src"
# Parse-time helpers below import facemorphic from this checkout even before `pip install`.
sys.path.insert(0, str(SRC))

from facemorphic.dataset.layout import list_users  # noqa: E402

SYNTHETIC_ROOT = "resources/synthetic"


def facemorphic_command():
    """How rules call the CLI: this Snakemake's own interpreter (a venv need not be activated); under
    `--sdm conda` the rule environment's python, with this checkout's src/ on its path."""
    if DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method:
        return f"PYTHONPATH={SRC} python -m facemorphic"
    return f"{sys.executable} -m facemorphic"


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
