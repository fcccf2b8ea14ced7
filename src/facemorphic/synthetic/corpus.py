"""The synthetic scan corpus for the 3DMM stage, in the layouts of the real (licence-gated) releases.

Under ``out``:

* ``d3dfacs/<Subject>/<AUcode>/<AUcode>_<frame>.ply`` - D3DFACS in FLAME topology: each sequence starts
  neutral, rises to an apex and releases (``frames_per_sequence`` frames, frame numbers not starting
  at 0, AU codes joined with '+', e.g. ``6+12``); every frame carries a small rigid jitter and
  scanner noise, like registered scans.
* ``vocaset/data_verts.npy`` float32 [F_total, N, 3], ``templates.pkl`` (subject -> neutral [N, 3]) and
  ``subj_seq_to_idx.pkl`` (subject -> sentence -> {frame: row}) - VOCASET's training-data layout, with
  speech-like mouth motion at 60 fps; plain dicts and numpy arrays only.
* ``template.ply`` - the generator's template mesh; ``landmark_embedding.pkl`` - FLAME static-embedding
  form: ``{'lmk_face_idx': (68,) uint32, 'lmk_b_coords': (68, 3) float64}``.
* ``truth.h5`` - what a learned model should recover:
  ``model/`` template [N, 3], faces [F, 3], landmark_faces [68], landmark_bary [68, 3], id_basis [3N, K_id]
  and au_basis [3N, 18] (interleaved xyz rows, per unit coefficient; attrs ``au_order``,
  ``identity_modes``); ``subjects/<name>`` identity [K_id] (attr ``source``);
  ``d3dfacs/<Subject>/<AUcode>`` and ``vocaset/<subject>/<sentence>``: ``au_intensity`` [F, 24]
  (ACTION_UNITS order), ``offsets`` float32 [F, N, 3] (true expression displacement in the subject's
  own frame, before jitter and noise), ``rotation`` [F, 3, 3], ``translation`` [F, 3] (the rigid jitter:
  scan = (neutral + offsets) @ rotation.T + translation + noise), ``frame_numbers`` [F].
"""

from __future__ import annotations

import logging
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import FACIAL_ACTION_UNITS, au_class_index
from ..fileio import atomic_path
from ..morphable.meshio import write_ply
from ..options import defaults
from .face import FACIAL_CLASS_INDEX, IDENTITY_MODE_NAMES, N_IDENTITY, face_model, head_rotation
from .motion import N_CLASSES, Talk
from .options import CorpusOptions as CorpusSettings

log = logging.getLogger(__name__)

D3DFACS_NAMES = ("Adele", "Bruno", "Carla", "Dario", "Elena", "Fabio", "Greta", "Hugo", "Irene", "Jonas",
                 "Katia", "Lorenzo", "Marta", "Nils", "Olga", "Pietro")
#: AU combinations seen in D3DFACS-like sessions (besides single AUs).
COMBINATIONS = ("1+2", "4+7", "6+12", "9+10", "12+25", "25+26", "17+24", "1+4", "6+12+25", "23+24",
                "10+25", "15+17", "4+7+9", "1+2+26", "12+26")
_COMPRESSION = dict(compression="gzip", compression_opts=4, track_times=False)
_CORPUS = defaults(CorpusSettings)


@dataclass(frozen=True)
class CorpusOptions:
    """What the corpus holds; defaults from :class:`~.options.CorpusOptions`, their one source."""

    d3dfacs_subjects: int = _CORPUS["d3dfacs_subjects"]
    sequences_per_subject: int = _CORPUS["sequences_per_subject"]
    frames_per_sequence: int = _CORPUS["frames_per_sequence"]
    vocaset_subjects: int = _CORPUS["vocaset_subjects"]
    vocaset_sentences: int = _CORPUS["vocaset_sentences"]
    vocaset_frames: int = _CORPUS["vocaset_frames"]
    noise_mm: float = _CORPUS["noise_mm"]
    jitter_deg: float = 0.5
    jitter_mm: float = 1.0


def _subject_codes(rng: np.random.Generator, index: int, count: int) -> list[str]:
    """Sequences of one subject: single AUs rotating through all 18 across subjects, then combinations."""
    n_single = (count + 1) // 2
    singles = [str(FACIAL_ACTION_UNITS[(index * n_single + j) % len(FACIAL_ACTION_UNITS)]) for j in range(n_single)]
    combos = list(rng.choice(COMBINATIONS, size=min(count - n_single, len(COMBINATIONS)), replace=False))
    return singles + [str(c) for c in combos]


def _rigid_jitter(rng: np.random.Generator, n: int, options: CorpusOptions):
    angles = rng.normal(0.0, options.jitter_deg, size=(n, 3))
    rot = head_rotation(angles[:, 0], angles[:, 1], angles[:, 2])
    trans = rng.normal(0.0, options.jitter_mm * 1e-3, size=(n, 3))
    return rot, trans


def _write_sequence_truth(group, au: np.ndarray, offsets: np.ndarray, rot, trans, frames) -> None:
    group.create_dataset("au_intensity", data=au.astype(np.float32), **_COMPRESSION)
    group.create_dataset("offsets", data=offsets.astype(np.float32), **_COMPRESSION)
    group.create_dataset("rotation", data=rot.astype(np.float32), track_times=False)
    group.create_dataset("translation", data=trans.astype(np.float32), track_times=False)
    group.create_dataset("frame_numbers", data=np.asarray(frames, dtype=np.int64), track_times=False)


def generate_corpus(out: str | Path, seed: int, options: CorpusOptions = CorpusOptions()) -> None:
    """Write the scan corpus (see the module docstring) under ``out``."""
    import h5py

    out = Path(out)
    model = face_model()
    n = model.n_vertices
    rng = np.random.default_rng(np.random.SeedSequence([seed, 1_000_003]))
    if options.frames_per_sequence < 3:
        raise ValueError("frames_per_sequence must be at least 3 (neutral, apex, release)")

    write_ply(out / "template.ply", model.template, model.faces)
    with atomic_path(out / "landmark_embedding.pkl") as tmp, open(tmp, "wb") as fh:
        pickle.dump({"lmk_face_idx": np.asarray(model.lmk_face_idx, dtype=np.uint32),
                     "lmk_b_coords": np.asarray(model.lmk_b_coords, dtype=np.float64)}, fh, protocol=4)

    with atomic_path(out / "truth.h5") as tmp_truth, h5py.File(tmp_truth, "w") as h5:
        g = h5.create_group("model")
        g.create_dataset("template", data=model.template, track_times=False)
        g.create_dataset("faces", data=model.faces, track_times=False)
        g.create_dataset("landmark_faces", data=model.lmk_face_idx, track_times=False)
        g.create_dataset("landmark_bary", data=model.lmk_b_coords, track_times=False)
        g.create_dataset("id_basis", data=model.id_basis.reshape(3 * n, N_IDENTITY), **_COMPRESSION)
        g.create_dataset("au_basis", data=model.au_basis.reshape(3 * n, -1), **_COMPRESSION)
        g.attrs["au_order"] = np.asarray(FACIAL_ACTION_UNITS)
        g.attrs["identity_modes"] = ",".join(IDENTITY_MODE_NAMES)
        subjects = h5.create_group("subjects")

        # D3DFACS-style sequences
        n_frames = options.frames_per_sequence
        profile = np.sin(np.pi * np.arange(n_frames) / (n_frames - 1))
        profile[-1] = 0.15  # the release frame: almost back to neutral
        for s in range(options.d3dfacs_subjects):
            name = D3DFACS_NAMES[s] if s < len(D3DFACS_NAMES) else f"Subject{s:02d}"
            identity = np.clip(rng.standard_normal(N_IDENTITY), -2.5, 2.5)
            neutral = model.template + model.id_basis @ identity
            sg = subjects.create_group(name)
            sg.create_dataset("identity", data=identity.astype(np.float32), track_times=False)
            sg.attrs["source"] = "d3dfacs"
            for code in _subject_codes(rng, s, options.sequences_per_subject):
                aus = [int(a) for a in code.split("+")]
                au = np.zeros((n_frames, N_CLASSES))
                for a in aus:
                    au[:, au_class_index(a)] = rng.uniform(0.7, 1.0) * profile
                offsets = np.einsum("ncf,tf->tnc", model.au_basis, au[:, FACIAL_CLASS_INDEX])
                rot, trans = _rigid_jitter(rng, n_frames, options)
                first = int(rng.integers(40, 200))
                frames = first + np.cumsum(np.r_[0, rng.integers(3, 9, size=n_frames - 1)])
                for k in range(n_frames):
                    scan = (neutral + offsets[k]) @ rot[k].T + trans[k]
                    scan = scan + rng.normal(0.0, options.noise_mm * 1e-3, size=scan.shape)
                    write_ply(out / "d3dfacs" / name / code / f"{code}_{frames[k]}.ply", scan, model.faces)
                _write_sequence_truth(h5.require_group(f"d3dfacs/{name}").create_group(code), au, offsets,
                                      rot, trans, frames)

        # VOCASET-style speech sequences at 60 fps
        verts, templates, index = [], {}, {}
        for s in range(options.vocaset_subjects):
            name = f"FaceTalk_17{(s * 37) % 100:02d}{(s * 53) % 28 + 1:02d}_{(s * 7919) % 100000:05d}_TA"
            identity = np.clip(rng.standard_normal(N_IDENTITY), -2.5, 2.5)
            neutral = model.template + model.id_basis @ identity
            templates[name] = neutral.astype(np.float64)
            sg = subjects.create_group(name)
            sg.create_dataset("identity", data=identity.astype(np.float32), track_times=False)
            sg.attrs["source"] = "vocaset"
            index[name] = {}
            for q in range(options.vocaset_sentences):
                sentence = f"sentence{q + 1:02d}"
                t = np.arange(options.vocaset_frames) / 60.0
                talk = Talk(0.0, t[-1] + 1.0, rng.uniform(3.0, 5.0), rng.uniform(0, 2 * np.pi),
                            rng.uniform(0.5, 0.9), rng.uniform(0.25, 0.55), rng.uniform(0.4, 1.0),
                            rng.uniform(0, 2 * np.pi))
                lips, jaw = talk.values(t + 0.3)
                au = np.zeros((len(t), N_CLASSES))
                au[:, au_class_index(25)] = lips
                au[:, au_class_index(26)] = jaw
                offsets = np.einsum("ncf,tf->tnc", model.au_basis, au[:, FACIAL_CLASS_INDEX])
                rot, trans = _rigid_jitter(rng, len(t), options)
                rows = {}
                for k in range(len(t)):
                    rows[k] = len(verts)
                    verts.append(((neutral + offsets[k]) @ rot[k].T + trans[k]).astype(np.float32))
                index[name][sentence] = rows
                _write_sequence_truth(h5.require_group(f"vocaset/{name}").create_group(sentence), au, offsets,
                                      rot, trans, np.arange(len(t)))
        voca = out / "vocaset"
        with atomic_path(voca / "data_verts.npy") as tmp, open(tmp, "wb") as fh:
            np.save(fh, np.stack(verts) if verts else np.zeros((0, n, 3), np.float32))
        for fname, obj in (("templates.pkl", templates), ("subj_seq_to_idx.pkl", index)):
            with atomic_path(voca / fname) as tmp, open(tmp, "wb") as fh:
                pickle.dump(obj, fh, protocol=4)
    log.info("scan corpus written to %s", out)
