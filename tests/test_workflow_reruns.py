"""Reruns: after a complete run of the tiny config, changing one config value plans exactly the jobs that
read it and their dependants, and nothing else; changing nothing plans nothing.

The expected dependants are in one table, :data:`READERS` (config key -> the rules that read it directly,
or the train jobs of some experiments). The downstream closure comes from :data:`PIPELINE`, the stage
graph written out here by hand. Every leaf key of the schema must be in :data:`READERS` or in
:data:`NOT_CHANGED_HERE` with the reason, so a new config key without an entry fails the test.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
TINY = yaml.safe_load((REPO / "tests" / "config.tiny.yaml").read_text())
TINY_EXPERIMENTS = set(TINY["experiments"])
RESNET_EXPERIMENTS = {"lstm_events", "lstm_rgb", "lstm_rgb_face", "lstm_events_alpha"}

#: rule -> the rules that consume its outputs.
PIPELINE = {
    "synth_user": {"ingest_user"},
    "synth_corpus": {"morphable"},
    "ingest_user": {"split", "events", "landmarks", "sanity_panel"},
    "split": {"shards", "quality"},
    "events": {"shards", "quality", "sanity_panel"},
    "landmarks": {"fit", "sanity_panel", "shards"},  # shards: for the rgb_face modality of the tiny config
    "morphable": {"fit", "sanity_panel"},
    "fit": {"shards", "quality", "sanity_panel"},
    "quality": {"shards"},
    "shards": {"features", "train", "train_sweep"},
    "features": {"train", "train_sweep"},
    "train": {"evaluate", "training_curves"},
    "train_sweep": {"lambda_sweep"},
    "lambda_sweep": {"train"},
    "evaluate": {"per_au_figure"},
    "per_au_figure": set(),
    "training_curves": set(),
    "sanity_panel": set(),
}

#: config key -> (new value, rules reading it directly, experiments whose train jobs rerun or None for all
#: reached through the closure). Values are chosen so the tiny config stays valid.
READERS: dict[str, tuple[object, set[str], set[str] | None]] = {
    "dataset.sync": ("triggers", {"ingest_user"}, None),
    "split.protocol": ("subject", {"split"}, None),
    "split.test_fraction": (0.4, {"split"}, None),
    "split.seed": (1, {"split"}, None),
    "synthetic.n_users": (3, {"synth_user"}, None),
    "synthetic.seed": (1, {"synth_user", "synth_corpus"}, None),
    **{f"synthetic.{key}": (value, {"synth_user"}, None) for key, value in {
        "repetitions": 1, "free": 1, "reading": 2, "aus": [1, 12], "au_duration_s": 1.2,
        "free_duration_s": 2.0, "reading_duration_s": 1.5, "fps": 25, "rgb_format": "jpeg",
        "min_substeps": 8, "max_substeps": 20, "max_motion_px": 0.4, "contrast": 0.25,
        "contrast_sigma": 0.02, "refractory_us": 400, "noise_rate_hz": 0.02}.items()},
    **{f"synthetic.corpus.{key}": (value, {"synth_corpus"}, None) for key, value in {
        "d3dfacs_subjects": 5, "sequences_per_subject": 3, "frames_per_sequence": 4, "vocaset_subjects": 3,
        "vocaset_sentences": 1, "vocaset_frames": 8, "noise_mm": 0.1}.items()},
    "events.representation": ("histogram", {"events"}, None),
    "events.palette": ("light", {"events"}, None),
    # the tiny config draws periodic frames: the other representations' parameters are not read
    "events.bins": (3, set(), None),
    "events.tau_us": (5000, set(), None),
    "events.width": (160, {"events"}, None),
    "events.height": (90, {"events"}, None),
    "events.subwindows": (2, {"events"}, None),
    "events.accumulation_us": (10000, {"events"}, None),
    **{f"landmarks.{key}": (value, {"landmarks"}, None) for key, value in {
        "backend": "truth", "landmarks_type": "3D", "device": "cpu", "batch_size": 2, "lane_frames": 16,
        "max_gap": 3, "smooth": 5, "min_score": 0.1, "flip": False, "compile": True}.items()},
    **{f"morphable.{key}": (value, {"morphable"}, None) for key, value in {
        "n_id": 3, "n_au": 6, "sparsity": 0.1, "au_weights": "variance", "positive_codes": True,
        "dl_max_iter": 50, "seed": 1}.items()},
    # the tiny config learns its bases: the import options of released ones are not read
    "morphable.released_landmark_overrides": (False, set(), None),
    "morphable.released_template_scale": (0.001, set(), None),
    **{f"fitting.{key}": (value, {"fit"}, None) for key, value in {
        "lambda_id": 2.0, "lambda_au": 0.5, "rounds": 2, "update": "authors", "drop_landmarks": [60],
        "drop_jaw": True, "normalise_scale": True}.items()},
    **{f"quality.{key}": (value, {"quality"}, None) for key, value in {
        "max_empty_event_fraction": 0.4, "min_valid_landmark_fraction": 0.1, "max_rgb_decode_errors": 2}.items()},
    # predict jobs are not part of `all`
    **{f"predict.{key}": (value, set(), None) for key, value in {
        "experiment": "lstm_rgb", "split": "train", "fps": 25.0, "stride": 4, "batch_windows": 4,
        "sync": "triggers", "video_height": 120}.items()},
    # the representation study's jobs (`snakemake representations`) are not part of `all`
    **{f"representations.{key}": (value, set(), None) for key, value in {
        "experiment": "lstm_events_alpha", "seeds": [0, 1],
        "variants": {"histogram_160": {"representation": "histogram", "width": 160}}}.items()},
    **{f"shards.{key}": (value, {"shards"}, None) for key, value in {
        "size": 24, "crop": "full", "num_shards": 2, "modalities": ["rgb", "events", "rgb_face"], "face_margin": 1.5,
        "face_smoothing_frames": 3}.items()},
    # the feature cache is an input of the ResNet-18 runs only; disabling it changes their inputs
    "features.enabled": (False, {"train", "train_sweep"}, RESNET_EXPERIMENTS),
    "features.resnet_weights": ("/nonexistent/resnet18-f37072fd.pth", {"features", "train", "train_sweep"},
                                RESNET_EXPERIMENTS),
    "features.backbone_seed": (1, {"features", "train", "train_sweep"}, RESNET_EXPERIMENTS),
    "features.device": ("cpu", {"features"}, RESNET_EXPERIMENTS),
    "features.batch_frames": (64, {"features"}, RESNET_EXPERIMENTS),
    "training.seeds": ([0, 1, 2], {"train"}, TINY_EXPERIMENTS),
    "training.val_fraction": (0.3, {"train", "train_sweep"}, TINY_EXPERIMENTS),
    "training.val_seed": (1, {"train", "train_sweep"}, TINY_EXPERIMENTS),
    "training.patience": (2, {"train", "train_sweep"}, TINY_EXPERIMENTS),
    "training.threads": (2, {"train", "train_sweep"}, TINY_EXPERIMENTS),
    "features.threads": (2, {"features"}, RESNET_EXPERIMENTS),
    "lambda_sweep.lambdas": ([0.1, 0.5], {"train_sweep"}, {"lstm_events_alpha"}),
    "lambda_sweep.seeds": ([0, 1], {"train_sweep"}, {"lstm_events_alpha"}),
    # one swept experiment in the tiny config: its own sweep chooses either way
    "lambda_sweep.experiment": ("", set(), None),
    "training.i3d_weights": ("/nonexistent/rgb_imagenet.pt", {"train"}, {"i3d_events"}),
    "training.i3d_input_size": (16, {"train"}, {"i3d_events"}),
    "training.i3d_frame_step": (1, {"train"}, {"i3d_events"}),
    # the sweep runs read the training block too
    **{f"training.{key}": (value, {"train", "train_sweep"}, TINY_EXPERIMENTS) for key, value in {
        "epochs": 2, "batch_size": 4, "lr": 0.01, "clip_length": 12, "eval_windows": "sliding", "eval_stride": 4,
        "num_workers": 1, "accelerator": "cpu", "devices": 1, "precision": "bf16-mixed",
        "strategy": "ddp"}.items()},
    **{f"experiments.lstm_events.{key}": (value, {"train"}, {"lstm_events"}) for key, value in {
        "epochs": 3, "batch_size": 4, "lr": 0.01, "clip_length": 12, "lambda_alpha": 0.5,
        "model": "resnet18_transformer"}.items()},
    "experiments.coeff_lstm.model": ("coeff_transformer", {"train"}, {"coeff_lstm"}),
    "experiments.lstm_rgb.modality": ("events", {"train"}, {"lstm_rgb"}),
}

NOT_CHANGED_HERE = {
    "dataset.source": "selects another dataset (tests/test_workflow.py runs a folder dataset)",
    "dataset.root": "selects another dataset",
    "dataset.users": "selects users of a folder dataset",
    "dataset.sync_csv": "a file of a folder dataset (tests/test_workflow.py)",
    "morphable.source": "selects the scan or release inputs (tests/test_workflow.py)",
    "morphable.d3dfacs": "an input path, used with morphable.source scans",
    "morphable.vocaset": "an input path, used with morphable.source scans",
    "morphable.template": "an input path, used with morphable.source scans",
    "morphable.embedding": "an input path, used with morphable.source scans",
    **{f"morphable.released_{key}": "an input path, used with morphable.source released"
       for key in ("identity", "au", "landmarks", "template")},
}


#: The keys dry-run by default: every block, every stage, every experiment field, and each kind of reader
#: (a plain param, a filtered one, a changed input set, a changed job set). Every key of :data:`READERS`
#: reaches its jobs the same way as the covering key of its block; set FACEMORPHIC_ALL_RERUNS=1 to dry-run
#: them all (about 85 dry runs).
COVERING = [
    "dataset.sync", "split.seed", "synthetic.n_users", "synthetic.seed", "synthetic.contrast", "synthetic.corpus.noise_mm",
    "events.palette", "events.bins", "events.width", "landmarks.max_gap", "morphable.n_au",
    "morphable.released_template_scale", "fitting.lambda_au", "quality.max_rgb_decode_errors", "predict.fps", "shards.size", "features.enabled",
    "features.backbone_seed", "features.batch_frames", "training.seeds", "training.lr", "training.i3d_weights",
    "lambda_sweep.lambdas", "representations.variants",
    *[key for key in READERS if key.startswith("experiments.")],
]
DRY_RUN_KEYS = list(READERS) if os.environ.get("FACEMORPHIC_ALL_RERUNS") else COVERING


def schema_leaf_keys(node=SCHEMA, prefix="") -> list[str]:
    keys = []
    for name, child in node.get("properties", {}).items():
        if child.get("type") == "object" and "properties" in child:
            keys += schema_leaf_keys(child, f"{prefix}{name}.")
        elif name != "experiments":
            keys.append(prefix + name)
    return keys


def closure(rules: set[str]) -> set[str]:
    planned, todo = set(), list(rules)
    while todo:
        rule = todo.pop()
        if rule not in planned:
            planned.add(rule)
            todo += PIPELINE[rule]
    return planned


def planned_jobs(output: str) -> dict[str, set[str]]:
    """rule -> experiments of its planned jobs ('' for rules without that wildcard), from `snakemake -n`."""
    jobs: dict[str, set[str]] = {}
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", output):
        match = re.match(r"(?:local)?rule (\w+):", block.strip())
        if not match or match.group(1) == "all":
            continue
        experiment = re.search(r"wildcards:.*?experiment=([^,\s]+)", block)
        jobs.setdefault(match.group(1), set()).add(experiment.group(1) if experiment else "")
    return jobs


def dry_run(workdir: Path, change: dict | None, tmp_path: Path) -> dict[str, set[str]]:
    # --nolock: dry runs read the metadata only, and two of them run at once in the same folder
    args = [sys.executable, "-m", "snakemake", "-n", "--nolock", "-c2", "all"]
    if change is not None:
        tmp_path.mkdir(parents=True, exist_ok=True)
        override = tmp_path / "change.yaml"
        override.write_text(yaml.safe_dump(change))
        args += ["--configfile", str(workdir / "config.yaml"), str(override)]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=workdir)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return planned_jobs(proc.stdout + proc.stderr)


def nested(key: str, value) -> dict:
    change: dict = value
    for part in reversed(key.split(".")):
        change = {part: change}
    return change


def test_every_schema_key_has_an_expected_rerun_entry():
    keys = set(schema_leaf_keys())
    assert keys == {k for k in READERS if not k.startswith("experiments.")} | set(NOT_CHANGED_HERE)
    assert set(COVERING) <= set(READERS)
    fields = set(SCHEMA["properties"]["experiments"]["additionalProperties"]["properties"])
    assert fields == {k.rsplit(".", 1)[1] for k in READERS if k.startswith("experiments.")}


def test_no_change_plans_nothing(tiny_pipeline, tmp_path):
    assert dry_run(tiny_pipeline, None, tmp_path) == {}


def test_a_moved_project_plans_nothing(tiny_pipeline, tmp_path):
    """The whole project folder (workflow, sources, results, .snakemake) moved elsewhere: nothing reruns."""
    moved = tmp_path / "elsewhere" / "project moved"
    shutil.copytree(tiny_pipeline, moved, symlinks=True)  # copy2 keeps the modification times, as mv does
    assert dry_run(moved, None, tmp_path) == {}
    # Documenting or reformatting code reruns nothing: the rules read a fingerprint of the syntax trees.
    stage = moved / "src" / "facemorphic" / "events" / "stage.py"
    text = stage.read_text()
    docstring_end = text.index('"""', 3) + 3
    stage.write_text(text[:docstring_end].replace('"""', '"""\n   Reworded.\n', 1) + "\n\n# a comment\n"
                     + text[docstring_end:].replace("\n\n\n", "\n\n\n\n"))
    assert dry_run(moved, None, tmp_path) == {}
    # Editing one stage's code reruns that stage and its dependants only: the event-frame code is not the
    # EVT 3.0 writer the synthetic stage uses, so the synthetic dataset stays.
    with open(stage, "a") as source:
        source.write("EDITED = True\n")
    assert set(dry_run(moved, None, tmp_path)) == closure({"events"})


@pytest.fixture(scope="module")
def plans(tiny_pipeline, tmp_path_factory) -> dict[str, dict[str, set[str]]]:
    """The plan for each changed key, two dry runs at a time (one per core)."""
    base = tmp_path_factory.mktemp("changes")

    def plan(key):
        value = READERS[key][0]
        return dry_run(tiny_pipeline, nested(key, value), base / key.replace(".", "_"))

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(DRY_RUN_KEYS, pool.map(plan, DRY_RUN_KEYS)))


@pytest.mark.parametrize("key", DRY_RUN_KEYS)
def test_one_changed_value_reruns_exactly_its_readers(plans, key):
    value, readers, experiments = READERS[key]
    planned = plans[key]
    expected = closure(readers)
    assert set(planned) == expected, f"{key}: planned {sorted(planned)}, expected {sorted(expected)}"
    if "train" in expected:
        trained = planned["train"]
        if key == "synthetic.n_users" or experiments is None:
            experiments = TINY_EXPERIMENTS
        assert trained == experiments, f"{key}: trained {sorted(trained)}, expected {sorted(experiments)}"
