"""The report's figures and `snakemake --report`: the figures draw the values of the files they read, the
sanity panel's mesh sits where the fit put it, and the report holds every table and figure with a caption.

References: hand-written metrics.csv files and meshes of known geometry, the tiny pipeline's own tables and
fits (the fit's residual recomputed from the projected mesh), and an RGB frame decoded directly with PyAV.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import yaml
from matplotlib.container import BarContainer

from facemorphic import ACTION_UNITS
from facemorphic.errors import InputFileError
from facemorphic.report.figures import (
    RunCurves,
    kept_epoch,
    load_sanity_frame,
    per_au_figure,
    read_epoch_metrics,
    read_per_au_table,
    read_run_curves,
    training_curves_figure,
    visible_faces_far_to_near,
)

METRICS_HEADER = ("epoch,step,train_alpha_sq,train_ce,train_loss,train_nonfinite,train_top1,train_top3,train_top5,"
                  "val_alpha_sq,val_ce,val_loss,val_nonfinite,val_top1,val_top3,val_top5")


def write_run(folder: Path, seed: int, epochs: list[tuple[float, float, float | None, float | None]],
              backbone_weights: str = "random-init:seed=0") -> Path:
    """A run folder with a Lightning-layout metrics.csv: per epoch a val row (when given) then a train row."""
    folder.mkdir(parents=True)
    lines = [METRICS_HEADER]
    for epoch, (train_loss, train_top1, val_loss, val_top1) in enumerate(epochs):
        if val_loss is not None:
            lines.append(f"{epoch},{epoch * 3},,,,,,,,0.5,{val_loss},{val_loss},0.0,{val_top1},1.0,1.0")
        lines.append(f"{epoch},{epoch * 3 + 2},0.4,{train_loss},{train_loss},0.0,{train_top1},1.0,1.0,,,,,,,")
    (folder / "metrics.csv").write_text("\n".join(lines) + "\n")
    info = {"experiment": "exp", "model": "resnet18_lstm", "modality": "events", "lambda_alpha": 0.5, "seed": seed,
            "backbone_weights": backbone_weights}
    (folder / "run.json").write_text(json.dumps(info))
    return folder


def test_epoch_metrics_join_the_train_and_val_rows_of_each_epoch(tmp_path):
    run = write_run(tmp_path / "seed-0", 0, [(3.0, 0.1, 3.2, 0.25), (2.5, 0.3, 3.0, 0.5), (2.0, 0.6, 3.1, 0.5)])
    epochs = read_epoch_metrics(run / "metrics.csv")
    assert list(epochs.index) == [0, 1, 2]
    np.testing.assert_allclose(epochs["train_loss"], [3.0, 2.5, 2.0])
    np.testing.assert_allclose(epochs["val_top1"], [0.25, 0.5, 0.5])
    assert kept_epoch(epochs) == 1  # the first epoch of the best validation top-1, as best.ckpt keeps it
    no_val = read_epoch_metrics(write_run(tmp_path / "seed-1", 1, [(3.0, 0.1, None, None), (2.0, 0.2, None, None)])
                                / "metrics.csv")
    assert no_val["val_loss"].isna().all() and kept_epoch(no_val) == 1  # last epoch without validation


def test_metrics_without_an_epoch_column_name_the_file(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text("step,loss\n0,1.0\n")
    with pytest.raises(InputFileError, match="metrics.csv.*no epoch"):
        read_epoch_metrics(path)


def test_training_curves_draw_each_seeds_logged_values_with_the_caveats(tmp_path):
    seed0 = [(3.0, 0.1, 3.2, 0.25), (2.5, 0.3, 3.0, 0.5)]
    seed1 = [(2.9, 0.2, 3.3, 0.0), (2.4, 0.4, 2.8, 0.75)]
    runs = [read_run_curves(write_run(tmp_path / f"seed-{seed}", seed, epochs))
            for seed, epochs in ((1, seed1), (0, seed0))]
    figure = training_curves_figure(runs, "exp", "synthetic")
    loss_axes, top1_axes = figure.axes
    lines = {line.get_label(): line for line in top1_axes.get_lines() if not line.get_label().startswith("_")}
    np.testing.assert_allclose(lines["seed 0 val"].get_ydata(), [25.0, 50.0])
    np.testing.assert_allclose(lines["seed 1 train"].get_ydata(), [20.0, 40.0])
    losses = {line.get_label(): line.get_ydata() for line in loss_axes.get_lines()}
    np.testing.assert_allclose(losses["seed 1 val"], [3.3, 2.8])
    stars = [line for line in top1_axes.get_lines() if line.get_marker() == "*"]
    assert sorted((float(s.get_xdata()[0]), float(s.get_ydata()[0])) for s in stars) == [(1.0, 50.0), (1.0, 75.0)]
    title = figure._suptitle.get_text()
    assert "SYNTHETIC" in title and "random trunk weights" in title and "2 seed(s)" in title
    pretrained = [RunCurves(0, runs[0].epochs, {**runs[0].info, "backbone_weights": "imagenet:resnet18.pth"})]
    assert "random trunk" not in training_curves_figure(pretrained, "exp", "folder")._suptitle.get_text()


def test_painter_order_culls_back_faces_and_draws_far_before_near():
    # Two squares facing the camera (image y down, so counter-clockwise on screen is clockwise here), the
    # second farther away, and one triangle wound the other way (a back face).
    pixels = np.array([[0, 0], [10, 0], [10, 10], [0, 10], [2, 2], [8, 2], [8, 8], [2, 8], [0, 0], [5, 0], [0, 5]],
                      float)
    depth = np.array([1, 1, 1, 1, 9, 9, 9, 9, 0, 0, 0], float)
    faces = np.array([[0, 1, 2], [0, 2, 3], [4, 5, 6], [4, 6, 7], [8, 10, 9]])
    order = visible_faces_far_to_near(pixels, depth, faces)
    assert sorted(order[:2]) == [2, 3] and sorted(order[2:]) == [0, 1]
    assert 4 not in order


@pytest.fixture(scope="module")
def report_project(tiny_pipeline, tmp_path_factory) -> Path:
    """A copy of the tiny pipeline's project (the fixture's folder must not change) with the report's
    figures built and `snakemake --report report.zip` written."""
    project = tmp_path_factory.mktemp("report") / "project"
    shutil.copytree(tiny_pipeline, project, symlinks=True)
    config = yaml.safe_load((project / "config.yaml").read_text())
    users = sorted(path.stem for path in (project / "results" / "landmarks").glob("*.h5"))
    targets = (["results/figures/per_au_top1.png"]
               + [f"results/figures/training_curves_{name}.png" for name in config["experiments"]]
               + [f"results/figures/sanity_{user}.png" for user in users])
    for command in (["-c2", *targets], ["--report", "report.zip"]):
        proc = subprocess.run([sys.executable, "-m", "snakemake", *command], capture_output=True, text=True,
                              timeout=900, cwd=project, check=False)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return project


def test_per_au_bars_are_the_tables_values_at_their_aus(report_project):
    table = pd.read_csv(report_project / "results" / "tables" / "table4_per_au.csv", dtype={"au": str})
    per_au = table[table["au"] != "all"]
    figure = per_au_figure(read_per_au_table(report_project / "results" / "tables" / "table4_per_au.csv"))
    assert len(figure.axes) == per_au["experiment"].nunique() >= 1
    for axes, (experiment, rows) in zip(figure.axes, per_au.groupby("experiment", sort=True)):
        assert experiment in axes.get_title()
        ours = next(c for c in axes.containers if isinstance(c, BarContainer))  # ours: the first bar group
        centres = [patch.get_x() + patch.get_width() / 2 + 0.2 for patch in ours.patches]
        heights = [patch.get_height() for patch in ours.patches]
        expected = rows.assign(i=[ACTION_UNITS.index(int(au)) for au in rows["au"]]).sort_values("i")
        np.testing.assert_allclose(centres, expected["i"], atol=1e-9)
        np.testing.assert_allclose(heights, expected["top1_pct_mean"], atol=1e-9)
        assert "SYNTHETIC" in axes.get_title()


def test_sanity_frame_is_the_middle_of_the_first_au_recording_and_its_mesh_reproduces_the_fit(report_project,
                                                                                              monkeypatch):
    import av

    monkeypatch.chdir(report_project)  # the manifest's paths are relative to the project folder
    results = report_project / "results"
    sample = load_sanity_frame(results / "manifest" / "user00.csv", results / "landmarks" / "user00.h5",
                               results / "events" / "user00.h5", results / "coefficients" / "user00.h5",
                               results / "morphable" / "model.h5")
    manifest = pd.read_csv(results / "manifest" / "user00.csv")
    first = manifest[manifest["task"] == "au"].sort_values(["au", "repetition"]).iloc[0]
    assert sample.recording_id == first["recording_id"]
    assert sample.frame == sample.n_frames // 2 and sample.n_frames == first["rgb_frames"]
    # the RGB frame is the stream's frame k, decoded here without the project's reader
    with av.open(str(report_project / first["rgb_path"])) as container:
        decoded = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    np.testing.assert_array_equal(sample.rgb, decoded[sample.frame])
    with h5py.File(results / "events" / "user00.h5", "r") as handle:
        stored = handle[sample.recording_id]["frames"][sample.frame]  # periodic frames: S=1, C=3
    np.testing.assert_array_equal(sample.event_image, stored.transpose(1, 2, 0))
    # the projected model landmarks leave the fit's own RMS residual on the landmarks it used
    dropped = yaml.safe_load((report_project / "config.yaml").read_text())["fitting"]["drop_landmarks"]
    used = [i for i in range(68) if i not in dropped]
    gap = sample.model_landmarks[used] - sample.landmarks[used]
    rms = float(np.sqrt(np.mean(np.sum(gap ** 2, axis=1))))
    assert rms == pytest.approx(sample.residual_px, rel=1e-3)
    assert sample.residual_px < 10.0  # a fit on the face, not beside it


def report_entries(report_zip: Path) -> tuple[dict[str, str], str]:
    """``{file name: caption html}`` of every result in a Snakemake report zip, and the report's page."""
    with zipfile.ZipFile(report_zip) as archive:
        page_name = next(name for name in archive.namelist() if name.endswith("report.html"))
        page = archive.read(page_name).decode()
    results = json.loads(re.search(r"var results = (\{.*?\});\n", page).group(1))
    return {Path(path).name: entry["caption"] for path, entry in results.items()}, page


def test_report_holds_every_table_and_figure_with_a_caption(report_project):
    captions, page = report_entries(report_project / "report.zip")
    results = report_project / "results"
    expected = ([path.name for path in (results / "tables").glob("*.csv")] + ["quality.csv"]
                + [path.name for path in (results / "figures").glob("*.png")])
    assert len(expected) >= 14
    missing = sorted(set(expected) - set(captions))
    assert not missing, f"not in the report: {missing}"
    empty = sorted(name for name, caption in captions.items() if not re.sub(r"<[^>]+>|\s", "", caption))
    assert not empty, f"empty captions: {empty}"
    assert "lstm_events" in captions["training_curves_lstm_events.png"]  # templated from the wildcards
    assert "user01" in captions["sanity_user01.png"]
    assert "Data: SYNTHETIC" in page and "How to read the tables" in page  # the workflow description
