"""Small scan corpora with known truth for the morphable/fitting tests, written in the real layouts.

A smooth face-like grid mesh (metres, +y up, +z out of the face), a low-rank identity model of smooth
random fields, and one localised displacement field per facial AU (a Gaussian bump around one landmark,
so every AU moves some landmarks, as real AUs do). Each subject has a random head pose; each D3DFACS-style
sequence ramps one AU (a few combine two) from a neutral first frame to an apex, with rigid jitter on
every frame. The files: ``d3dfacs/<Subject>/<AUcode>/<AUcode>_<frame>.ply`` (frame numbers that sort
wrongly as strings, codes with side/intensity letters), ``vocaset/{templates,subj_seq_to_idx}.pkl`` +
``data_verts.npy``, ``template.ply`` and ``landmark_embedding.pkl`` (FLAME static form).
"""

from __future__ import annotations

import functools
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facemorphic.morphable.meshio import write_ply

FACIAL_AUS = (1, 2, 4, 6, 7, 9, 10, 12, 14, 15, 17, 23, 24, 25, 26, 27, 43, 45)
#: folder-name spelling per AU (side / intensity letters as D3DFACS writes them)
CODE_SPELLING = {12: "L12", 14: "14C", 26: "26B"}
APEX_RAMP = (0.0, 0.25, 0.6, 1.0, 0.7)
FRAME_NUMBERS = (8, 9, 10, 11, 12)  # "10" < "8" as strings: natural sort is needed


@dataclass
class SynthTruth:
    template: np.ndarray  # [N, 3]
    faces: np.ndarray
    landmark_faces: np.ndarray
    landmark_bary: np.ndarray
    id_fields: np.ndarray  # [K_id, N, 3]
    au_fields: dict  # AU -> [N, 3]
    subjects: list = field(default_factory=list)
    id_coeffs: dict = field(default_factory=dict)  # subject -> [K_id]
    intensity: dict = field(default_factory=dict)  # (subject, AU) -> apex intensity

    def neutral(self, subject: str) -> np.ndarray:
        return self.template + np.einsum("k,knx->nx", self.id_coeffs[subject], self.id_fields)

    def landmarks3d(self, vertices: np.ndarray) -> np.ndarray:
        corners = vertices[..., self.faces[self.landmark_faces], :]
        return np.einsum("...lcx,lc->...lx", corners, self.landmark_bary)


def rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    cy, sy, cp, sp, cr, sr = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch), np.cos(roll), np.sin(roll)
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return rz @ rx @ ry


def grid_face(nu: int = 30, nv: int = 36) -> tuple[np.ndarray, np.ndarray]:
    u, v = np.meshgrid(np.linspace(-1, 1, nu), np.linspace(-1.2, 1.2, nv))
    bulge = np.clip(1 - 0.8 * u**2 - 0.5 * (v / 1.2) ** 2, 0, None)
    z = 0.06 * np.sqrt(bulge) + 0.02 * np.exp(-(u**2 + (v + 0.1) ** 2) / 0.05)  # a nose
    vertices = np.stack([0.07 * u, 0.09 * v, z], axis=-1).reshape(-1, 3)
    idx = np.arange(nu * nv).reshape(nv, nu)
    a, b, c, d = idx[:-1, :-1], idx[:-1, 1:], idx[1:, :-1], idx[1:, 1:]
    faces = np.concatenate([np.stack([a, b, d], -1).reshape(-1, 3), np.stack([a, d, c], -1).reshape(-1, 3)])
    return vertices, faces


def smooth_field(rng, vertices, n_bumps=3, amplitude=0.004, sigma=0.03) -> np.ndarray:
    field_ = np.zeros_like(vertices)
    for _ in range(n_bumps):
        centre = vertices[rng.integers(len(vertices))]
        weight = np.exp(-np.sum((vertices - centre) ** 2, axis=1) / (2 * sigma**2))
        field_ += weight[:, None] * rng.normal(size=3) * amplitude
    return field_


def make_truth(seed: int = 0, n_subjects: int = 8, k_id: int = 5) -> SynthTruth:
    rng = np.random.default_rng(seed)
    template, faces = grid_face()
    xy = template[:, :2]
    inner = np.nonzero((np.abs(xy[faces].mean(1)[:, 0]) < 0.05) & (np.abs(xy[faces].mean(1)[:, 1]) < 0.065))[0]
    landmark_faces = rng.choice(inner, 68, replace=False)
    landmark_bary = rng.dirichlet(np.ones(3), size=68)
    id_fields = np.stack([smooth_field(rng, template, 4, 0.005, 0.04) for _ in range(k_id)])
    truth = SynthTruth(template, faces, landmark_faces, landmark_bary, id_fields, {})
    lmk = truth.landmarks3d(template)
    centres = rng.choice(68, len(FACIAL_AUS), replace=False)
    for au, c in zip(FACIAL_AUS, centres):
        weight = np.exp(-np.sum((template - lmk[c]) ** 2, axis=1) / (2 * 0.012**2))
        direction = rng.normal(size=3)
        truth.au_fields[au] = weight[:, None] * direction / np.linalg.norm(direction) * 0.008
    for s in range(n_subjects):
        name = f"S{s:02d}"
        truth.subjects.append(name)
        truth.id_coeffs[name] = rng.normal(size=k_id)
        for au in FACIAL_AUS:
            truth.intensity[(name, au)] = rng.uniform(0.7, 1.3)
    return truth


def au_code(aus: tuple[int, ...]) -> str:
    return "+".join(CODE_SPELLING.get(a, str(a)) for a in aus)


def write_corpus(root: Path, truth: SynthTruth, subjects: list[str], n_vocaset: int = 4, seed: int = 1) -> dict:
    """Write the corpus of ``subjects`` under ``root``; returns what was written (paths, sequences)."""
    rng = np.random.default_rng(seed)
    sequences = [(a,) for a in FACIAL_AUS] + [(1, 2), (6, 12)]
    written = {"sequences": []}
    for subject in subjects:
        pose = rotation(*rng.normal(scale=0.15, size=3))
        offset = rng.normal(scale=0.01, size=3)
        neutral = truth.neutral(subject)
        for aus in sequences:
            field_ = sum(truth.au_fields[a] * truth.intensity[(subject, a)] for a in aus)
            code = au_code(aus)
            folder = root / "d3dfacs" / subject / code
            folder.mkdir(parents=True, exist_ok=True)
            for number, ramp in zip(FRAME_NUMBERS, APEX_RAMP):
                jitter = rotation(*rng.normal(scale=0.01, size=3))
                shape = (neutral + ramp * field_) @ (jitter @ pose).T + offset + rng.normal(scale=0.001, size=3)
                write_ply(folder / f"{code}_{number}.ply", shape, truth.faces)
            written["sequences"].append((subject, code, aus))
    voca_root = root / "vocaset"
    voca_root.mkdir(parents=True, exist_ok=True)
    templates, index, frames = {}, {}, []
    for j in range(n_vocaset):
        name = f"FaceTalk_{j:06d}_TA"
        coeffs = rng.normal(size=len(truth.id_fields))
        truth.id_coeffs[name] = coeffs
        templates[name] = (truth.neutral(name) @ rotation(*rng.normal(scale=0.1, size=3)).T).astype(np.float32)
        index[name] = {"sentence01": {k: len(frames) + k for k in range(3)}}
        frames.extend([templates[name]] * 3)
    with open(voca_root / "templates.pkl", "wb") as f:
        pickle.dump(templates, f, protocol=2)
    with open(voca_root / "subj_seq_to_idx.pkl", "wb") as f:
        pickle.dump(index, f, protocol=2)
    np.save(voca_root / "data_verts.npy", np.stack(frames).astype(np.float32))
    written["vocaset_subjects"] = sorted(templates)
    write_ply(root / "template.ply", truth.template, truth.faces)
    with open(root / "landmark_embedding.pkl", "wb") as f:
        pickle.dump({"lmk_face_idx": truth.landmark_faces.astype(np.uint32),
                     "lmk_b_coords": truth.landmark_bary}, f, protocol=2)
    return written


def project(points3d: np.ndarray, yaw: float, pitch: float, roll: float, scale: float = 1500.0,
            centre=(320.0, 240.0)) -> np.ndarray:
    """Scaled orthographic projection to pixels (y down), as a camera sees a face."""
    rotated = points3d @ rotation(yaw, pitch, roll).T
    return np.stack([centre[0] + scale * rotated[..., 0], centre[1] - scale * rotated[..., 1]], axis=-1)


N_SUBJECTS = 10
TRAIN_SUBJECTS = 7  # S00..S06 are in the corpus; S07..S09 are held out


@functools.lru_cache(maxsize=None)
def learned_setup(basetemp: Path) -> dict:
    """Write the corpus once per test session and learn a model from it through the CLI.

    Cached on the session's base temp folder, so the morphable and fitting tests share one learning run.
    """
    from facemorphic.cli import main
    from facemorphic.morphable.model import load_model

    root = Path(basetemp) / "morphable_corpus"
    truth = make_truth(0, n_subjects=N_SUBJECTS)
    written = write_corpus(root, truth, truth.subjects[:TRAIN_SUBJECTS])
    model_path, figure_path = root / "out" / "model.h5", root / "out" / "fig2.png"
    rc = main(["morphable", "--d3dfacs", str(root / "d3dfacs"), "--vocaset", str(root / "vocaset"),
               "--template", str(root / "template.ply"), "--embedding", str(root / "landmark_embedding.pkl"),
               "--out", str(model_path), "--figure", str(figure_path), "--seed", "0"])
    assert rc == 0
    return {"root": root, "truth": truth, "written": written, "model_path": model_path,
            "figure_path": figure_path, "model": load_model(model_path)}


def recording_landmarks(truth: SynthTruth, subject: str, aus: tuple[int, ...], pose) -> np.ndarray:
    """Pixel landmarks ``[5, 68, 2]`` of a recording: neutral first frame, AU ramp to the apex (frame 3)."""
    neutral = truth.neutral(subject)
    field_ = sum(truth.au_fields[a] * truth.intensity[(subject, a)] for a in aus)
    frames = np.stack([neutral + ramp * field_ for ramp in APEX_RAMP])
    return project(truth.landmarks3d(frames), *pose)
