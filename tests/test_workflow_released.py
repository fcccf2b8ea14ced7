"""The authors' released 3DMM, as shipped, through Snakemake: a config naming their four files (test copies
with the release's variable names, shapes and 1-based indices) runs the morphable and fit stages, and only
those, on a completed tiny run."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import h5py
import numpy as np
import yaml

from facemorphic.morphable.model import load_model
from test_morphable_released import write_release


def test_released_bases_run_morphable_and_fit_through_snakemake(tiny_pipeline, tmp_path):
    project = tmp_path / "project"
    shutil.copytree(tiny_pipeline, project, symlinks=True)
    paths, arrays = write_release(tmp_path)
    config = yaml.safe_load((project / "config.yaml").read_text())
    config["morphable"].update(source="released", released_identity=str(paths["identity"]),
                               released_au=str(paths["au"]), released_landmarks=str(paths["landmarks"]),
                               released_template=str(paths["template"]))
    config["fitting"].update(update="authors", rounds=0, drop_landmarks=[])
    (project / "config.yaml").write_text(yaml.safe_dump(config))
    target = ["results/coefficients/user00.h5"]
    plan = subprocess.run([sys.executable, "-m", "snakemake", "-n", "-c2", *target], cwd=project,
                          capture_output=True, text=True, timeout=300)
    assert plan.returncode == 0, plan.stdout[-2000:] + plan.stderr[-2000:]
    planned = set(re.findall(r"^(?:local)?rule (\w+):", plan.stdout, flags=re.MULTILINE))
    assert planned == {"morphable", "fit"}
    run = subprocess.run([sys.executable, "-m", "snakemake", "-c2", *target], cwd=project,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    model = load_model(project / "results" / "morphable" / "model.h5")
    # the model file stores float32
    np.testing.assert_allclose(model.template, arrays["template"], rtol=0, atol=1e-7)
    np.testing.assert_allclose(model.au_weights, arrays["au_weights"], rtol=1e-6)
    expected_landmarks = arrays["landmarks_1based"].astype(int) - 1
    expected_landmarks[17], expected_landmarks[26] = 3709 - 1, 695 - 1  # the authors' fix-up, on by default
    with h5py.File(project / "results" / "coefficients" / "user00.h5") as file:
        assert file.attrs["update"] == "authors" and int(file.attrs["n_components_au"]) == 32
        groups = [file[name] for name in file]
        assert groups and all(group["alpha_au"].shape[1] == 32 for group in groups)
        assert any(np.isfinite(group["alpha_au"][()]).all(axis=1).any() for group in groups)
    np.testing.assert_allclose(model.landmark_points(model.template), arrays["template"][expected_landmarks],
                               atol=1e-7)
