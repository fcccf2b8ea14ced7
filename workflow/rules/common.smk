# Helpers shared by all the rule files. They say where the dataset is, which users it has, which stage
# code each rule lists as an input (editing a stage module reruns that stage), and give each stage's
# options as one JSON string (docs/ARCHITECTURE.md, "How a value travels"). Rules pass that string as a
# plain param, which Snakemake records, so changing any value reruns exactly the jobs that read it and
# their dependants.
import functools
import json
import math
import os
import re
import shlex
import sys
from pathlib import Path

from snakemake_interface_executor_plugins.settings import DeploymentMethod

SRC = Path(workflow.basedir) / "src"
# Parse-time helpers below import facemorphic from this checkout even before `pip install`.
sys.path.insert(0, str(SRC))

from facemorphic.codedeps import code_fingerprint  # noqa: E402
from facemorphic.dataset.layout import list_users  # noqa: E402
from facemorphic.dataset.options import IngestOptions, SplitOptions  # noqa: E402
from facemorphic.errors import FacemorphicError  # noqa: E402
from facemorphic.events.options import EventsOptions  # noqa: E402
from facemorphic.events.representations import REPRESENTATIONS  # noqa: E402
from facemorphic.fileio import write_text_atomic  # noqa: E402
from facemorphic.fitting.options import FittingOptions  # noqa: E402
from facemorphic.landmarks.options import LandmarksOptions  # noqa: E402
from facemorphic.morphable.options import MorphableOptions  # noqa: E402
from facemorphic.names import SAFE_NAME_PATTERN  # noqa: E402
from facemorphic.options import build_options, options_json  # noqa: E402
from facemorphic.predict.options import PredictOptions  # noqa: E402
from facemorphic.quality.options import QualityOptions  # noqa: E402
from facemorphic.shards.options import ShardsOptions  # noqa: E402
from facemorphic.synthetic.options import CorpusOptions, SynthOptions  # noqa: E402
from facemorphic.training.options import EXPERIMENT_OVERRIDABLE, FeaturesOptions, TrainOptions  # noqa: E402

SYNTHETIC_ROOT = "resources/synthetic"
#: one fingerprint file per stage's code (stage_code)
CODE_FINGERPRINTS = "results/code"
SPLITS = ["train", "test"]
TABLES = [
    "table2_coefficients",
    "table3_event_vs_rgb",
    "table4_per_au",
    "table5_alpha_ablation",
    "runs",
    "predictions",
]
#: How rules call the CLI: this Snakemake's own interpreter (a venv need not be activated); under
#: `--sdm conda` the rule environment's python, with this checkout's src/ on its path.
if DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method:
    FACEMORPHIC = f"PYTHONPATH={shlex.quote(str(SRC))} python -m facemorphic"
else:
    FACEMORPHIC = f"{shlex.quote(sys.executable)} -m facemorphic"
#: the thread counts of numpy's BLAS, OpenMP and numba, set per job by facemorphic_command
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


def facemorphic_command(wildcards, input, threads):
    """The command as a *derived* param (a function of `input`), which Snakemake does not record: the
    interpreter's path must not be a rerun trigger, or moving the project folder would rerun everything.
    It sets the numeric libraries' threads to the cores the job really uses: Snakemake would set them to its
    slots, which grow with -c (see Cores below), and a BLAS sum over another thread count can differ in the
    last bits, so the coefficients, and everything after them, would depend on -c."""
    cores = cores_of(wildcards, threads)
    variables = " ".join(f"{name}={cores}" for name in THREAD_VARIABLES)
    return f"{variables} {FACEMORPHIC}"


# ---------------------------------------------------------------------------------------------------------
# Cores. `-c N` above the machine's cores must not oversubscribe it: locally, a job that keeps k cores busy
# claims k * (N / cores present) of Snakemake's N slots, so the jobs running at once never need more cores
# than the machine has, and the stage is told the k threads it may use. On a cluster every job gets its own.
MACHINE_CORES = os.cpu_count() or 1
try:
    _GIVEN_CORES = workflow.cores
except Exception:  # a dry run without --cores
    _GIVEN_CORES = MACHINE_CORES
CORE_SCALE = max(1.0, _GIVEN_CORES / MACHINE_CORES) if workflow.local_exec else 1.0


def job_slots(cores_used):
    """Snakemake `threads:` of a job that keeps `cores_used` cores busy (see above)."""
    return max(1, min(_GIVEN_CORES, math.ceil(min(cores_used, MACHINE_CORES) * CORE_SCALE)))


def cores_of(wildcards, threads):
    """The cores a job may use, from the slots it was given (a derived param: never a rerun trigger)."""
    return max(1, int(threads / CORE_SCALE))


# ---------------------------------------------------------------------------------------------------------
# Parse-time checks: every stage's options are built once here, so a wrong value or combination stops the
# run before anything starts, naming the key.
def checked_options(block_name, cls, values):
    try:
        return build_options(cls, values)
    except FacemorphicError as exc:
        raise WorkflowError(f"config {block_name}: {exc}") from None


def without(block, *keys):
    return {key: value for key, value in block.items() if key not in keys}


def is_synthetic():
    return config["dataset"]["source"] == "synthetic"


# Workflow-level keys (they choose inputs and jobs; the stages never read them): dataset.* but sync,
# synthetic.n_users, morphable source paths, features.enabled, training.seeds.
RELEASED_KEYS = ("released_identity", "released_au", "released_landmarks", "released_template")
MORPHABLE_SOURCE_KEYS = ("source", "d3dfacs", "vocaset", "template", "embedding", *RELEASED_KEYS)
SYNTH_OPTIONS = checked_options("synthetic", SynthOptions, without(config["synthetic"], "n_users", "corpus"))
CORPUS_OPTIONS = checked_options(
    "synthetic.corpus", CorpusOptions, {**config["synthetic"]["corpus"], "seed": config["synthetic"]["seed"]}
)
INGEST_OPTIONS = checked_options("dataset", IngestOptions, {"sync": config["dataset"]["sync"]})
SPLIT_OPTIONS = checked_options("split", SplitOptions, config["split"])
EVENTS_OPTIONS = checked_options("events", EventsOptions, config["events"])
LANDMARKS_OPTIONS = checked_options("landmarks", LandmarksOptions, config["landmarks"])
MORPHABLE_OPTIONS = checked_options("morphable", MorphableOptions, without(config["morphable"], *MORPHABLE_SOURCE_KEYS))
FITTING_OPTIONS = checked_options("fitting", FittingOptions, config["fitting"])
QUALITY_OPTIONS = checked_options("quality", QualityOptions, config["quality"])
SHARDS_OPTIONS = checked_options("shards", ShardsOptions, config["shards"])
FEATURES_OPTIONS = checked_options("features", FeaturesOptions, without(config["features"], "enabled"))

if config["landmarks"]["backend"] == "truth" and not is_synthetic():
    raise WorkflowError("config landmarks.backend: 'truth' needs dataset.source: synthetic")
if config["dataset"]["source"] == "folder" and not config["dataset"]["root"]:
    raise WorkflowError("config dataset.root: empty, but dataset.source is 'folder' (give the dataset folder)")
for _key in {"released": RELEASED_KEYS, "scans": ("d3dfacs", "embedding")}.get(config["morphable"]["source"], ()):
    if not config["morphable"][_key]:
        raise WorkflowError(
            f"config morphable.{_key}: empty, but morphable.source is {config['morphable']['source']!r} (give the path)"
        )


def is_swept(name):
    """An experiment whose lambda_alpha is chosen by the L_alpha sweep (`lambda_alpha: sweep`)."""
    return config["experiments"][name].get("lambda_alpha") == "sweep"


def swept_experiments():
    return [name for name in config["experiments"] if is_swept(name)]


#: the one experiment whose sweep chooses lambda for every swept experiment ("": each sweeps for itself)
SWEEP_EXPERIMENT = config["lambda_sweep"]["experiment"]


def sweeping_experiments():
    """The experiments whose sweep runs are trained."""
    if not swept_experiments():
        return []
    return [SWEEP_EXPERIMENT] if SWEEP_EXPERIMENT else swept_experiments()


def lambda_label(value):
    return f"{float(value):g}"


SWEEP_LAMBDAS = [lambda_label(value) for value in config["lambda_sweep"]["lambdas"]]


I3D_KEYS = ("i3d_weights", "i3d_input_size", "i3d_frame_step")


def experiment_values(name, lambda_alpha=None):
    """One experiment's options: the training block, overridden by the experiment, plus the trunk's keys. A
    swept experiment's final runs leave lambda_alpha out (the sweep table gives it); its sweep runs set it."""
    spec, training = config["experiments"][name], config["training"]
    values = without(training, "seeds")
    values.update({key: spec[key] for key in EXPERIMENT_OVERRIDABLE if key in spec})
    values.update(model=spec["model"], modality=spec["modality"])
    if lambda_alpha is not None:
        values["lambda_alpha"] = float(lambda_alpha)
    elif not is_swept(name):
        values["lambda_alpha"] = spec.get("lambda_alpha", 0.0)
    # Each model family gets only the weights it can load, so a change there reruns that family alone.
    if spec["model"].startswith("resnet18_"):
        values.update(resnet_weights=config["features"]["resnet_weights"], backbone_seed=config["features"]["backbone_seed"])
    if spec["model"] != "i3d":
        for key in I3D_KEYS:
            del values[key]
    return values


PREDICT_OPTIONS = checked_options("predict", PredictOptions, without(config["predict"], "experiment", "split"))

for _name in config["experiments"]:
    if not re.fullmatch(SAFE_NAME_PATTERN, _name):
        raise WorkflowError(f"config experiments: the name {_name!r} is not of the form {SAFE_NAME_PATTERN}")
    checked_options(f"experiments.{_name}", TrainOptions, experiment_values(_name))
    if is_swept(_name) and not experiment_values(_name)["val_fraction"] > 0:
        raise WorkflowError(
            f"config experiments.{_name}: lambda_alpha 'sweep' needs a validation split (training.val_fraction > 0)"
        )
for _name, _spec in config["experiments"].items():
    if _spec["modality"] != "coefficients" and _spec["modality"] not in config["shards"]["modalities"]:
        raise WorkflowError(
            f"config experiments.{_name}: modality {_spec['modality']!r} is not in shards.modalities "
            f"{config['shards']['modalities']}"
        )
if swept_experiments() and not SWEEP_LAMBDAS:
    raise WorkflowError("config lambda_sweep.lambdas: empty, but experiments use lambda_alpha 'sweep'")
if swept_experiments() and SWEEP_EXPERIMENT:
    if SWEEP_EXPERIMENT not in swept_experiments():
        raise WorkflowError(
            f"config lambda_sweep.experiment: {SWEEP_EXPERIMENT!r} is not one of the experiments with lambda_alpha "
            f"'sweep' {swept_experiments()} (empty: each of them sweeps for itself)"
        )
    _sweep_modality = config["experiments"][SWEEP_EXPERIMENT]["modality"]
    for _name in swept_experiments():
        if config["experiments"][_name]["modality"] != _sweep_modality:
            raise WorkflowError(
                f"config lambda_sweep.experiment: {SWEEP_EXPERIMENT!r} chooses lambda on {_sweep_modality}, but "
                f"experiments.{_name} with lambda_alpha 'sweep' trains on {config['experiments'][_name]['modality']}"
            )
if config["experiments"] and config["predict"]["experiment"] not in config["experiments"]:
    raise WorkflowError(
        f"config predict.experiment: {config['predict']['experiment']!r} is not one of the experiments "
        f"{sorted(config['experiments'])}"
    )


# ---------------------------------------------------------------------------------------------------------
# Each stage's options as the JSON string the rules pass with --options (and Snakemake records).
def synth_options():
    return options_json(without(config["synthetic"], "n_users", "corpus"))


def corpus_options():
    return options_json({**config["synthetic"]["corpus"], "seed": config["synthetic"]["seed"]})


def ingest_options():
    return options_json({"sync": config["dataset"]["sync"]})


def split_options():
    return options_json(config["split"])


def events_options():
    """The representation's own parameters only: changing `bins` never reruns periodic frames."""
    events = config["events"]
    keep = ("representation", "width", "height", "subwindows", "accumulation_us")
    keep += REPRESENTATIONS[events["representation"]].parameters
    return options_json({key: events[key] for key in keep})


def landmarks_options():
    return options_json(config["landmarks"])


def morphable_options():
    """The import options for released bases, the learning options otherwise (each is read only then)."""
    options = without(config["morphable"], *MORPHABLE_SOURCE_KEYS)
    released = {key for key in options if key.startswith("released_")}
    if config["morphable"]["source"] == "released":
        return options_json({key: options[key] for key in released})
    return options_json(without(options, *released))


def fitting_options():
    return options_json(config["fitting"])


def quality_options():
    return options_json(config["quality"])


def shards_options():
    return options_json(config["shards"])


def features_options():
    return options_json(without(config["features"], "enabled"))


def predict_options():
    return options_json(without(config["predict"], "experiment", "split"))


def experiment_options(wildcards):
    """A function of the wildcards only, so Snakemake records its value (functions of input are not)."""
    return options_json(experiment_values(experiment(wildcards)["name"]))


def sweep_run_options(wildcards):
    return options_json(experiment_values(experiment(wildcards)["name"], lambda_alpha=wildcards.lam))


def predicted_splits(wildcards):
    """Validation predictions too when the experiment carves a validation split."""
    return ["val", "test"] if experiment_values(experiment(wildcards)["name"])["val_fraction"] > 0 else ["test"]


def sweep_table_input(wildcards):
    return ["results/tables/table_lambda_sweep.csv"] if is_swept(wildcards.experiment) else []


def lambda_from_argument(wildcards, input):
    """Where a swept run takes its lambda: the sweep table's choice for its own model, or for the model of
    lambda_sweep.experiment when one experiment's sweep chooses for all (changing that reruns the sweep job,
    so the table, and the runs after it)."""
    if not input.sweep_table:
        return []
    shared = ["--lambda-alpha-model", config["experiments"][SWEEP_EXPERIMENT]["model"]] if SWEEP_EXPERIMENT else []
    return ["--lambda-alpha-from", input.sweep_table[0], *shared]


def sweep_runs():
    return expand(
        "results/sweep/{experiment}/lambda-{lam}/seed-{seed}/run.json",
        experiment=sweeping_experiments(),
        lam=SWEEP_LAMBDAS,
        seed=config["lambda_sweep"]["seeds"],
    )


# ---------------------------------------------------------------------------------------------------------
def dataset_root():
    """The folder holding {user}/AU_{n}/... recordings."""
    if is_synthetic():
        return SYNTHETIC_ROOT
    return config["dataset"]["root"]


@functools.cache
def _user_folders():
    """(safe, unsafe) user folder names of a folder dataset (scanned once per parse)."""
    names = list(config["dataset"]["users"]) or list_users(dataset_root())
    safe = [name for name in names if re.fullmatch(SAFE_NAME_PATTERN, name)]
    return safe, [name for name in names if name not in safe]


def users():
    """Users at parse time: from the config for generated data, from the dataset folders otherwise."""
    if is_synthetic():
        return [f"user{i:02d}" for i in range(config["synthetic"]["n_users"])]
    safe, unsafe = _user_folders()
    if not safe and not unsafe:
        raise WorkflowError(
            f"config dataset.root={dataset_root()!r}: no user folders with AU_* recordings there "
            "(set dataset.source: synthetic to run on the generated dataset)"
        )
    return safe


def unsafe_users():
    """User folders whose names could not safely reach a shell line or a path: rejected, by name."""
    return [] if is_synthetic() else _user_folders()[1]


def stage_code(*packages):
    """The fingerprint file of the code a stage runs: its packages and every facemorphic module they import,
    as syntax trees without docstrings (facemorphic.codedeps). It is a rule input, rewritten only when the
    fingerprint changes, so editing a stage's code reruns that stage and nothing else, while reformatting or
    documenting it reruns nothing; under results/, by a relative path, so moving the project reruns nothing."""
    path = Path(CODE_FINGERPRINTS) / f"{'+'.join(packages)}.sha256"
    fingerprint = code_fingerprint(SRC, packages) + "\n"
    try:
        current = path.read_text()
    except OSError:
        current = None
    if current != fingerprint:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, fingerprint)
    return [str(path)]


def user_recording_files(wildcards):
    """Everything the ingest of one user reads: its RAW files, RGB videos and JPEG folders. Unreadable and
    dangling entries are left out here (ingest records them as rejects), so they never stop the DAG."""
    if is_synthetic():
        return [f"{SYNTHETIC_ROOT}/{wildcards.user}", f"{SYNTHETIC_ROOT}/truth/{wildcards.user}.h5"]
    user_dir = Path(dataset_root()) / wildcards.user
    try:
        found = [p for p in user_dir.glob("AU_*/*") if p.name.startswith(("event_", "frames_")) or p.name == "sentences.txt"]
        found += list(user_dir.glob("sync.csv"))
    except OSError:
        return []
    return sorted(str(p) for p in found if os.path.exists(p))


def sync_csv_files():
    path = config["dataset"]["sync_csv"]
    return [path] if path else []


def landmark_truth_files(wildcards):
    """The synthetic truth file, when the truth backend reads it."""
    if config["landmarks"]["backend"] == "truth":
        return [f"{SYNTHETIC_ROOT}/truth/{wildcards.user}.h5"]
    return []


def landmarks_gpus():
    """gpu=1 for the landmark jobs when face_alignment runs on CUDA (dlib and truth use no GPU)."""
    landmarks = config["landmarks"]
    if landmarks["backend"] in ("dlib", "truth"):
        return 0
    if landmarks["device"].startswith("cuda"):
        return 1
    return int(landmarks["device"] == "auto" and shutil_which("nvidia-smi"))


def shutil_which(name):
    import shutil

    return shutil.which(name) is not None


def morphable_inputs(wildcards):
    """Scan corpus (generated or the user's), or released bases in the authors' .mat layout."""
    source = config["morphable"]
    if source["source"] == "released":
        return {key: source[key] for key in RELEASED_KEYS}
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
    """The morphable CLI's source options, from the inputs chosen above (a list: the rule quotes each item)."""
    keys = ("d3dfacs", "vocaset", "template", "embedding", *RELEASED_KEYS)
    return [item for key in keys if key in input.keys() for item in (f"--{key.replace('_', '-')}", input[key])]


def training_gpus():
    """The GPUs a training job asks for: training.devices when it is a number (DDP), else 1, and none when
    the job is told to run on the CPU (or, with accelerator auto, when the machine has no GPU)."""
    training = config["training"]
    if training["accelerator"] == "cpu" or (training["accelerator"] == "auto" and not shutil_which("nvidia-smi")):
        return 0
    devices = str(training["devices"])
    return int(devices) if devices.isdigit() else 1


def experiment(wildcards):
    try:
        return {"name": wildcards.experiment, **config["experiments"][wildcards.experiment]}
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


def features_dir_argument(wildcards, input):
    return ["--features-dir", str(Path(input.features[0]).parent)] if input.features else []


def report_figure_targets():
    """The report's own figures: what `all` builds so that `snakemake --report` finds them."""
    if not config["experiments"]:
        return expand("results/figures/sanity_{user}.png", user=users())
    return (
        ["results/figures/per_au_top1.png"]
        + expand("results/figures/training_curves_{experiment}.png", experiment=list(config["experiments"]))
        + expand("results/figures/sanity_{user}.png", user=users())
    )


def final_targets():
    """What `snakemake all` builds (without experiments, everything up to the shards)."""
    targets = ["results/manifest.csv", "results/quality.csv", "results/figures/au_components.png"]
    if swept_experiments():
        targets.append("results/tables/table_lambda_sweep.csv")
    targets += report_figure_targets()
    if config["experiments"]:
        return targets + expand("results/tables/{table}.csv", table=TABLES)
    return targets + ["results/shards/train/index.csv", "results/shards/test/index.csv"]

