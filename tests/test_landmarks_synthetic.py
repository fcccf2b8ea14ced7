"""Acceptance on the synthetic dataset: dlib finds the face in >= 95% of frames within 0.10 NME of the truth.

Uses the project's synthetic generator (``facemorphic.synthetic``) when it is importable; the comparison
runs end to end through ``facemorphic landmarks`` twice, once with dlib and once with the truth backend.
"""

from __future__ import annotations

import h5py
import numpy as np
import pandas as pd
import pytest

from facemorphic.cli import main
from facemorphic.landmarks.metrics import normalised_mean_error
from facemorphic.video import probe_rgb

synthetic = pytest.importorskip("facemorphic.synthetic.dataset",
                                reason="synthetic generator (facemorphic.synthetic) not available yet")

AUS = (12, 51)  # an expression and a head turn


@pytest.fixture(scope="module")
def synthetic_user(tmp_path_factory):
    if not hasattr(synthetic, "generate_user") or not hasattr(synthetic, "UserOptions"):
        pytest.skip("facemorphic.synthetic.dataset has no generate_user/UserOptions")
    root = tmp_path_factory.mktemp("synthetic")
    options = synthetic.UserOptions(repetitions=1, free=0, reading=0, aus=AUS, au_duration_s=1.5)
    synthetic.generate_user(root, "u00", 0, 7, options, progress=False)
    rows = []
    for au in AUS:
        rgb = root / "u00" / f"AU_{au}" / "frames_1.mp4"
        rows.append({"recording_id": f"u00_AU_{au}_1", "user": "u00", "rgb_path": str(rgb),
                     "rgb_frames": probe_rgb(rgb).n_frames})
    manifest = root / "u00.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    return root, manifest


def test_dlib_against_synthetic_truth(synthetic_user, tmp_path):
    root, manifest = synthetic_user
    detected, truth = tmp_path / "dlib.h5", tmp_path / "truth.h5"
    assert main(["landmarks", "--manifest", str(manifest), "--out", str(detected), "--backend", "dlib",
                 "--max-gap", "0", "--no-progress"]) == 0
    assert main(["landmarks", "--manifest", str(manifest), "--out", str(truth), "--backend", "truth",
                 "--truth-root", str(root / "truth"), "--no-progress"]) == 0
    with h5py.File(detected, "r") as found, h5py.File(truth, "r") as true:
        for au in AUS:
            rid = f"u00_AU_{au}_1"
            valid = found[rid]["valid"][()]
            true_valid = true[rid]["valid"][()]
            assert valid.mean() >= 0.95
            both = valid & true_valid
            errors = normalised_mean_error(found[rid]["landmarks"][both], true[rid]["landmarks"][both])
            assert np.mean(errors) <= 0.10
