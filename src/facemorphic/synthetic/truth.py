"""Reading the synthetic dataset's ground truth (``{root}/truth/{user}.h5``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import InputFileError

TRUTH_DATASETS = ("landmarks_rgb", "landmarks_event", "au_intensity", "head_pose", "rgb_times_s")


def read_truth(path: str | Path, recording_id: str) -> dict:
    """One recording's truth as a dict of arrays and attributes.

    Keys: ``landmarks_rgb`` [T, 68, 2], ``landmarks_event`` [T, 68, 2], ``au_intensity`` [T, 24],
    ``head_pose`` [T, 3], ``rgb_times_s`` [T], every attribute of the recording's group (``script``
    decoded from JSON), and ``identity`` [K_id] (the user's identity vector).
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "synthetic truth file not found")
    with h5py.File(path, "r") as h5:
        if recording_id not in h5:
            raise InputFileError(path, f"no truth for recording {recording_id!r} "
                                       f"({len(h5.keys()) - 1} recordings in the file)")
        group = h5[recording_id]
        out = {name: group[name][()] for name in TRUTH_DATASETS}
        for key, value in group.attrs.items():
            out[key] = value.decode() if isinstance(value, bytes) else value
        out["script"] = json.loads(out["script"]) if "script" in out else None
        out["identity"] = np.asarray(h5["identity"][()])
    return out


def list_recordings(path: str | Path) -> list[str]:
    """The recording ids in a truth file, sorted."""
    import h5py

    with h5py.File(path, "r") as h5:
        return sorted(k for k in h5.keys() if isinstance(h5[k], h5py.Group))
