"""The frozen-backbone feature cache: each frame's ResNet-18 feature, computed once per modality.

In the paper's setting the ResNet-18 trunk is frozen, so a frame's 512-d feature never changes during
training; computing it once for every frame of every recording and training the sequence heads on the
stored features gives the same predictions as running the trunk on every step (the tests check it), at a
small fraction of the cost, which is what makes the grid of experiments x seeds affordable.

Output ``{out_dir}/{split}.h5``: one group per recording with ``features`` float32 ``[T, 512]``; file attrs
``backbone`` (the trunk's description: ImageNet file or random-init seed), ``modality``, ``split``. Training
refuses a cache whose ``backbone`` differs from its model's.
"""

from __future__ import annotations

import logging
from pathlib import Path

import h5py
import hdf5plugin  # noqa: F401
import torch
from tqdm import tqdm

from ..errors import InputFileError
from ..fileio import atomic_path
from ..models.backbones import FrozenFrameEncoder
from ..shards.io import list_samples
from ..shards.options import MODALITIES as FRAME_MODALITIES

log = logging.getLogger(__name__)

FEATURES_FORMAT = "facemorphic-features-1"


def compute_split_features(split_dir: str | Path, modality: str, out_path: str | Path, encoder: FrozenFrameEncoder,
                           device: str = "cpu", batch_frames: int = 256) -> int:
    """Write the features of every sample of one split folder; returns the number of frames encoded."""
    if modality not in FRAME_MODALITIES:
        raise ValueError(f"features are computed for frame modalities {FRAME_MODALITIES}, not {modality!r}")
    split_dir, out_path = Path(split_dir), Path(out_path)
    samples = list_samples(split_dir) if split_dir.is_dir() else []
    encoder = encoder.to(device).eval()
    total = 0
    with atomic_path(out_path) as tmp, h5py.File(tmp, "w") as out:
        out.attrs.update(format=FEATURES_FORMAT, backbone=encoder.description, modality=modality,
                         split=split_dir.name)
        for sample in tqdm(samples, desc=f"features {split_dir.name}", unit="rec", disable=None):
            with h5py.File(sample.path, "r") as shard:
                group = shard[sample.recording_id]
                if modality not in group:
                    raise InputFileError(sample.path, f"{sample.recording_id} has no {modality} frames")
                frames = group[modality][()]
            chunks = []
            for start in range(0, len(frames), batch_frames):
                block = torch.from_numpy(frames[start:start + batch_frames]).to(device)
                chunks.append(encoder(block[None])[0].cpu())
            features = torch.cat(chunks).numpy() if chunks else torch.zeros(0, encoder.feature_dim).numpy()
            chunk_shape = (min(16, len(features)), features.shape[1]) if len(features) else None
            out.create_group(sample.recording_id).create_dataset("features", data=features, chunks=chunk_shape)
            total += len(frames)
    return total


def check_features(path: str | Path, backbone: str, modality: str) -> None:
    """Raise when a cache was made by another backbone or for another modality."""
    with h5py.File(path, "r") as file:
        if file.attrs.get("format") != FEATURES_FORMAT:
            raise InputFileError(path, "not a facemorphic feature cache")
        if file.attrs["backbone"] != backbone:
            raise InputFileError(path, f"made with backbone {file.attrs['backbone']!r}, the model has {backbone!r}")
        if file.attrs["modality"] != modality:
            raise InputFileError(path, f"holds {file.attrs['modality']!r} features, not {modality!r}")
