"""The morphable stage on the corpus of ``facemorphic synth-corpus`` (the pipeline's own synthetic data).

Two D3DFACS subjects are moved out of the corpus before learning; the learned bases must reconstruct
their true apex offsets and neutral shapes (from ``truth.h5``) with R^2 >= 0.9.
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from facemorphic.cli import main
from facemorphic.morphable.model import load_model
from facemorphic.morphable.procrustes import rigid_align

synthetic_corpus = pytest.importorskip("facemorphic.synthetic.corpus", reason="facemorphic.synthetic not available")


def r_squared(truth: np.ndarray, basis: np.ndarray) -> float:
    coef = np.linalg.lstsq(basis, truth.T, rcond=None)[0]
    residual = truth.T - basis @ coef
    return 1.0 - float((residual**2).sum() / ((truth - truth.mean(axis=0)) ** 2).sum())


@pytest.fixture(scope="module")
def learned(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth_corpus")
    options = synthetic_corpus.CorpusOptions(d3dfacs_subjects=8, sequences_per_subject=10, vocaset_subjects=6,
                                             vocaset_sentences=1, vocaset_frames=4)
    synthetic_corpus.generate_corpus(out, seed=0, options=options)
    subjects = sorted(p.name for p in (out / "d3dfacs").iterdir())
    held_out = subjects[-2:]
    (out / "held_out").mkdir()
    for name in held_out:
        (out / "d3dfacs" / name).rename(out / "held_out" / name)
    rc = main(["morphable", "--d3dfacs", str(out / "d3dfacs"), "--vocaset", str(out / "vocaset"),
               "--template", str(out / "template.ply"), "--embedding", str(out / "landmark_embedding.pkl"),
               "--out", str(out / "model.h5"), "--seed", "0"])
    assert rc == 0
    return out, held_out, load_model(out / "model.h5")


def test_au_basis_reconstructs_held_out_apex_offsets(learned):
    out, held_out, model = learned
    offsets = []
    with h5py.File(out / "truth.h5", "r") as truth:
        for name in held_out:
            for code, seq in truth[f"d3dfacs/{name}"].items():
                sequence_offsets = seq["offsets"][()]
                apex = int(np.argmax(np.linalg.norm(sequence_offsets, axis=(1, 2))))
                offsets.append(sequence_offsets[apex].reshape(-1))
    assert len(offsets) >= 10
    assert r_squared(np.array(offsets, dtype=np.float64), model.au_basis) >= 0.9


def test_identity_basis_reconstructs_held_out_neutrals(learned):
    out, held_out, model = learned
    with h5py.File(out / "truth.h5", "r") as truth:
        template, id_basis = truth["model/template"][()], truth["model/id_basis"][()]
        neutrals = np.stack([template + (id_basis @ truth[f"subjects/{name}/identity"][()]).reshape(-1, 3)
                             for name in held_out])
    deviations = (rigid_align(neutrals, model.template) - model.template).reshape(len(neutrals), -1)
    assert r_squared(deviations, model.id_basis) >= 0.9
