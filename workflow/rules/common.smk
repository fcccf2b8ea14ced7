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
SPLITS = ["train", "test"]
TABLES = [
    "table2_coefficients",
    "table3_event_vs_rgb",
    "table4_per_au",
    "table5_alpha_ablation",
    "runs",
    "predictions",
]
#: Keys of the training block an experiment may override.
EXPERIMENT_OVERRIDABLE = ("epochs", "batch_size", "lr", "clip_length")


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


def resnet_weights_argument():
    path = config["features"]["resnet_weights"]
    return f"--resnet-weights {shlex.quote(path)}" if path else ""


def training_gpus():
    """gpu=1 for training jobs unless they are told to run on the CPU."""
    if config["training"]["accelerator"] == "cpu":
        return 0
    if config["training"]["accelerator"] == "gpu":
        return 1
    return int(shutil.which("nvidia-smi") is not None)


def experiment(wildcards):
    try:
        return config["experiments"][wildcards.experiment]
    except KeyError:
        raise WorkflowError(f"experiment {wildcards.experiment!r} is not in config 'experiments'") from None


def uses_feature_cache(spec):
    return config["features"]["enabled"] and spec["model"].startswith("resnet18_")


def experiment_features(wildcards):
    """The cached backbone features a ResNet-18 experiment trains on (none for the other models)."""
    spec = experiment(wildcards)
    if not uses_feature_cache(spec):
        return []
    return expand("results/features/resnet18/{modality}/{split}.h5", modality=spec["modality"], split=SPLITS)


def experiment_arguments(wildcards, input):
    """The train CLI's options for one experiment: the training block, overridden by the experiment."""
    spec, training = experiment(wildcards), config["training"]
    values = {key: spec.get(key, training[key]) for key in EXPERIMENT_OVERRIDABLE}
    args = [
        f"--model {spec['model']}",
        f"--modality {spec['modality']}",
        f"--lambda-alpha {spec['lambda_alpha']}",
        f"--epochs {values['epochs']}",
        f"--batch-size {values['batch_size']}",
        f"--lr {values['lr']}",
        f"--clip-length {values['clip_length']}",
        f"--eval-windows {training['eval_windows']}",
        f"--num-workers {training['num_workers']}",
        f"--accelerator {training['accelerator']}",
        f"--devices {training['devices']}",
        f"--precision {training['precision']}",
        f"--strategy {training['strategy']}",
        f"--backbone-seed {config['features']['backbone_seed']}",
        "--predict-splits test",
    ]
    if training["eval_stride"]:
        args.append(f"--eval-stride {training['eval_stride']}")
    if input.features:
        args.append(f"--features-dir {shlex.quote(str(Path(input.features[0]).parent))}")
    if config["features"]["resnet_weights"]:
        args.append(resnet_weights_argument())
    if training["i3d_weights"] and spec["model"] == "i3d":
        args.append(f"--i3d-weights {shlex.quote(training['i3d_weights'])}")
    return " ".join(args)


def final_targets():
    """What `snakemake all` builds."""
    return [
        "results/manifest.csv",
        "results/figures/au_components.png",
        *expand("results/tables/{table}.csv", table=TABLES),
    ]


wildcard_constraints:
    user="[^/]+",
