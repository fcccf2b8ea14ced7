# Helpers shared by all rule files. They say where the dataset is, which users it has, and which stage
# code each rule lists as an input (editing a stage module reruns that stage).
import shlex
import shutil
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
        return SYNTHETIC_ROOT
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
        return [f"{SYNTHETIC_ROOT}/{wildcards.user}", f"{SYNTHETIC_ROOT}/truth/{wildcards.user}.h5"]
    user_dir = Path(dataset_root()) / wildcards.user
    return sorted(
        str(p)
        for p in user_dir.glob("AU_*/*")
        if p.name.startswith(("event_", "frames_")) or p.name in ("sentences.txt",)
    ) + sorted(str(p) for p in user_dir.glob("sync.csv"))


def sync_csv_files():
    path = config["dataset"]["sync_csv"]
    return [path] if path else []


def landmark_truth_files(wildcards):
    """The synthetic truth file, when the truth backend reads it."""
    if config["landmarks"]["backend"] == "truth":
        if not is_synthetic():
            raise WorkflowError("config landmarks.backend='truth' needs dataset.source='synthetic'")
        return [f"{SYNTHETIC_ROOT}/truth/{wildcards.user}.h5"]
    return []


def landmarks_gpus():
    """gpu=1 for the landmark jobs when face_alignment runs on CUDA (dlib and truth use no GPU)."""
    landmarks = config["landmarks"]
    if landmarks["backend"] in ("dlib", "truth"):
        return 0
    if landmarks["device"].startswith("cuda"):
        return 1
    return int(landmarks["device"] == "auto" and shutil.which("nvidia-smi") is not None)


def morphable_inputs(wildcards):
    """Scan corpus (generated or the user's), or released bases in the authors' .mat layout."""
    source = config["morphable"]
    if source["source"] == "released":
        return {"released_mat": source["released_mat"]}
    if source["source"] == "synthetic":
        scans = f"{SYNTHETIC_ROOT}/scans"
        return {
            "d3dfacs": f"{scans}/d3dfacs",
            "vocaset": f"{scans}/vocaset",
            "template": f"{scans}/template.ply",
            "embedding": f"{scans}/landmark_embedding.pkl",
        }
    files = {"d3dfacs": source["d3dfacs"], "embedding": source["embedding"]}
    files.update({key: source[key] for key in ("vocaset", "template") if source[key]})
    return files


def morphable_arguments(wildcards, input):
    """The morphable CLI's source options, from the inputs chosen above."""
    keys = ("d3dfacs", "vocaset", "template", "embedding", "released_mat")
    return " ".join(f"--{key.replace('_', '-')} {shlex.quote(input[key])}" for key in keys if key in input.keys())


def fitting_flags(wildcards):
    fitting = config["fitting"]
    return " ".join(
        flag for flag, on in (("--drop-jaw", fitting["drop_jaw"]), ("--normalise-scale", fitting["normalise_scale"])) if on
    )


def final_targets():
    """What `snakemake all` builds."""
    return [
        "results/manifest.csv",
        *expand("results/events/{user}.h5", user=users()),
        *expand("results/coefficients/{user}.h5", user=users()),
        "results/figures/au_components.png",
    ]


wildcard_constraints:
    user="[^/]+",
