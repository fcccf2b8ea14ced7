"""One default per value: each stage's options class, the config schema and config.yaml agree, key by key.

The table :data:`BLOCKS` says which options class reads which config block. A schema key that is in no
class and not listed as workflow-level fails the test, and so does a class field that the schema lacks, or
any default that differs between the class, the schema and config.yaml.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from facemorphic.dataset.options import IngestOptions, SplitOptions
from facemorphic.errors import FacemorphicError
from facemorphic.events.options import EventsOptions
from facemorphic.fitting.options import FittingOptions
from facemorphic.landmarks.options import LandmarksOptions
from facemorphic.morphable.options import MorphableOptions
from facemorphic.options import add_options, build_options, defaults, options_from_args
from facemorphic.predict.options import PredictOptions
from facemorphic.quality.options import QualityOptions
from facemorphic.shards.options import ShardsOptions
from facemorphic.synthetic.options import CorpusOptions, SynthOptions
from facemorphic.training.options import FeaturesOptions, TrainOptions

REPO = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
CONFIG = yaml.safe_load((REPO / "config.yaml").read_text())

#: options class -> (config block path, keys of the block the workflow reads itself, fields from elsewhere
#: as {field: schema path}).
BLOCKS = {
    SynthOptions: ("synthetic", {"n_users", "corpus"}, {}),
    CorpusOptions: ("synthetic.corpus", set(), {"seed": "synthetic.seed"}),
    IngestOptions: ("dataset", {"source", "root", "users", "sync_csv"}, {}),
    SplitOptions: ("split", set(), {}),
    EventsOptions: ("events", set(), {}),
    LandmarksOptions: ("landmarks", set(), {}),
    MorphableOptions: ("morphable", {"source", "d3dfacs", "vocaset", "template", "embedding", "released_identity",
                                   "released_au", "released_landmarks", "released_template"}, {}),
    FittingOptions: ("fitting", set(), {}),
    QualityOptions: ("quality", set(), {}),
    PredictOptions: ("predict", {"experiment", "split"}, {}),
    ShardsOptions: ("shards", set(), {}),
    FeaturesOptions: ("features", {"enabled"}, {}),
    TrainOptions: ("training", {"seeds"}, {
        "model": "experiments.*.model", "modality": "experiments.*.modality",
        "lambda_alpha": "experiments.*.lambda_alpha",
        "resnet_weights": "features.resnet_weights", "backbone_seed": "features.backbone_seed",
    }),
}
#: Blocks the workflow alone reads (they choose the dataset and the jobs).
WORKFLOW_BLOCKS = {"experiments", "lambda_sweep", "representations"}


def schema_node(path: str) -> dict:
    node = SCHEMA
    for part in path.split("."):
        node = node["additionalProperties"] if part == "*" else node["properties"][part]
    return node


def config_value(path: str):
    node = CONFIG
    for part in path.split("."):
        node = node[part]
    return node


@pytest.mark.parametrize("cls", list(BLOCKS), ids=lambda cls: cls.__name__)
def test_options_class_schema_and_config_agree(cls):
    block, workflow_keys, elsewhere = BLOCKS[cls]
    fields = {f.name: f for f in dataclasses.fields(cls)}
    schema_keys = set(schema_node(block)["properties"]) - workflow_keys
    assert set(fields) - set(elsewhere) == schema_keys, f"{cls.__name__} fields vs schema keys of {block}"
    declared = defaults(cls)
    for key in fields:
        path = elsewhere.get(key, f"{block}.{key}")
        node = schema_node(path)
        if "*" not in path:
            assert node["default"] == declared[key], f"{path}: schema default vs {cls.__name__}.{key}"
            assert config_value(path) == declared[key], f"{path}: config.yaml vs {cls.__name__}.{key}"
        elif "default" in node:
            assert node["default"] == declared[key], f"{path}: schema default vs {cls.__name__}.{key}"
        if "enum" in node:
            assert tuple(node["enum"]) == fields[key].metadata["choices"], f"{path}: enum vs choices"
        assert fields[key].metadata["help"], f"{cls.__name__}.{key} has no help"


def test_every_schema_block_is_read_by_a_stage_or_the_workflow():
    covered = {path.split(".")[0] for path, _, _ in BLOCKS.values()} | WORKFLOW_BLOCKS
    assert set(SCHEMA["properties"]) == covered
    for node in SCHEMA["properties"].values():
        assert node.get("description")
        for key, child in node.get("properties", {}).items():
            assert child.get("description") and "default" in child, key


def test_generated_flags_carry_every_option_and_override_the_json():
    parser = argparse.ArgumentParser()
    add_options(parser, FittingOptions)
    help_text = parser.format_help()
    for field in dataclasses.fields(FittingOptions):
        assert f"--{field.name.replace('_', '-')}" in help_text
    assert "(default: [60, 64])" in help_text.replace("\n", " ").replace("  ", " ")
    args = parser.parse_args(["--options", json.dumps({"lambda_au": 3.0, "rounds": 2}), "--rounds", "4",
                              "--drop-jaw"])
    options = options_from_args(FittingOptions, args)
    assert (options.lambda_au, options.rounds, options.drop_jaw, options.lambda_id) == (3.0, 4, True, 1.0)


@pytest.mark.parametrize("values, key", [
    ({"rounds": -1}, "rounds"),
    ({"update": "newton"}, "update"),
    ({"lambda_au": "big"}, "lambda_au"),
    ({"rounnds": 1}, "rounnds"),
    ({"drop_landmarks": [70]}, "drop_landmarks"),
])
def test_bad_values_name_the_key(values, key):
    with pytest.raises(FacemorphicError, match=key):
        build_options(FittingOptions, values)


@pytest.mark.parametrize("values, key", [
    ({"model": "coeff_lstm", "modality": "events"}, "modality"),
    ({"model": "i3d", "modality": "coefficients"}, "modality"),
    ({"devices": "abc"}, "devices"),
])
def test_training_combinations_are_refused(values, key):
    with pytest.raises(FacemorphicError, match=key):
        build_options(TrainOptions, values)
    assert build_options(TrainOptions, {"devices": 2}).devices == "2"


def test_cli_help_shows_defaults_and_stays_light():
    """`facemorphic train --help` lists each option with its default, without importing torch."""
    code = ("import sys; from facemorphic.cli import main\n"
            "try:\n    main(['train', '--help'])\nexcept SystemExit:\n    pass\n"
            "print('TORCH' if 'torch' in sys.modules else 'NO_TORCH')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "--clip-length" in proc.stdout and "(default: 30)" in proc.stdout
    assert proc.stdout.strip().endswith("NO_TORCH")


def test_stage_code_is_what_the_stage_imports():
    """The rules' code inputs (facemorphic.codedeps): a stage's own files and the modules it imports."""
    from facemorphic.codedeps import source_closure

    src = REPO / "src"
    synthetic = {str(p.relative_to(src)) for p in source_closure(src, ("synthetic",))}
    assert "facemorphic/events/evt3_writer.py" in synthetic  # the synthetic stage writes RAW files with it
    assert "facemorphic/events/stage.py" not in synthetic and "facemorphic/cli.py" not in synthetic
    training = {str(p.relative_to(src)) for p in source_closure(src, ("training",))}
    assert {"facemorphic/models/i3d.py", "facemorphic/shards/io.py", "facemorphic/metrics.py"} <= training
    assert "facemorphic/evaluation/tables.py" not in training


def test_code_fingerprint_ignores_documentation_and_layout_but_not_code(tmp_path):
    from facemorphic.codedeps import code_fingerprint

    package = tmp_path / "facemorphic" / "stage"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "run.py").write_text('"""Doc."""\n\n\ndef f(x):\n    """Doc."""\n    return x + 1\n')
    before = code_fingerprint(tmp_path, ("stage",))
    (package / "run.py").write_text('"""Other words,\nover two lines."""\n# a comment\n\ndef f( x ):\n'
                                    '    return x + 1  # why\n')
    assert code_fingerprint(tmp_path, ("stage",)) == before
    (package / "run.py").write_text('"""Doc."""\n\n\ndef f(x):\n    """Doc."""\n    return x + 2\n')
    assert code_fingerprint(tmp_path, ("stage",)) != before
    (package / "run.py").write_text('"""Doc."""\n\n\ndef f(x):\n    """Doc."""\n    return x + 1\n')
    assert code_fingerprint(tmp_path, ("stage",)) == before
    (package / "extra.py").write_text("VALUE = 1\n")  # a new file of the stage is new code
    assert code_fingerprint(tmp_path, ("stage",)) != before
