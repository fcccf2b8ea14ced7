"""Corpus loading and model learning on a generated corpus with known truth (facemorphic.morphable)."""

from __future__ import annotations

import numpy as np
import pytest

from facemorphic.morphable.corpus import load_d3dfacs, load_vocaset, natural_frames, parse_au_code, select_apex
from facemorphic.morphable.learning import WEIGHT_FLOOR, learn_au_dictionary, learn_identity
from facemorphic.morphable.procrustes import rigid_align
from morphable_synth import (
    APEX_RAMP, FACIAL_AUS, FRAME_NUMBERS, TRAIN_SUBJECTS, grid_face, learned_setup, rotation,
)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    return learned_setup(tmp_path_factory.getbasetemp())


def r_squared(truth: np.ndarray, basis: np.ndarray) -> float:
    """R^2 of the least-squares reconstruction of the rows of ``truth`` in the span of ``basis``."""
    coef = np.linalg.lstsq(basis, truth.T, rcond=None)[0]
    residual = truth.T - basis @ coef
    return 1.0 - float((residual**2).sum() / ((truth - truth.mean(axis=0)) ** 2).sum())


def test_au_codes_parse_with_side_and_intensity_letters():
    assert parse_au_code("1+2+L12C+26") == (1, 2, 12, 26)
    assert parse_au_code("R4") == (4,)
    with pytest.raises(ValueError, match="Neutral"):
        parse_au_code("Neutral")


def test_d3dfacs_frames_sorted_naturally_and_apex_found(setup):
    seq_dir = setup["root"] / "d3dfacs" / "S00" / "L12"
    assert [int(p.stem.split("_")[1]) for p in natural_frames(seq_dir)] == list(FRAME_NUMBERS)
    corpus = load_d3dfacs(setup["root"] / "d3dfacs")
    assert corpus.neutral_subjects == setup["truth"].subjects[:TRAIN_SUBJECTS]
    assert len(corpus.expression_codes) == TRAIN_SUBJECTS * (len(FACIAL_AUS) + 2)
    apex_frame = FRAME_NUMBERS[int(np.argmax(APEX_RAMP))]
    assert set(corpus.expression_apex_frame) == {apex_frame}
    i = corpus.expression_codes.index("1+2")
    assert corpus.expression_aus[i] == (1, 2)
    # the offset of S00's AU12 sequence has the true field's size (the subject's pose rotates it)
    truth = setup["truth"]
    j = corpus.expression_codes.index("L12")
    offset = corpus.expression_apex[j] - corpus.expression_neutral[j]
    expected_norm = np.linalg.norm(truth.au_fields[12] * truth.intensity[("S00", 12)])
    assert abs(np.linalg.norm(offset) - expected_norm) / expected_norm < 0.02


def test_apex_selection_ignores_rigid_motion():
    vertices, _ = grid_face(10, 10)
    bump = np.zeros_like(vertices)
    bump[:10, 2] = 0.01
    frames = np.stack([vertices + 0.3 * bump, (vertices + 0.2 * bump) @ rotation(0.3, 0, 0).T + 0.05,
                       vertices + bump, (vertices + 0.5 * bump) @ rotation(0, 0.2, 0.1).T])
    index, aligned = select_apex(vertices, frames)
    assert index == 2
    np.testing.assert_allclose(aligned - vertices, bump, atol=1e-4)


def test_vocaset_loader_memory_maps_and_indexes(setup):
    corpus, sequences = load_vocaset(setup["root"] / "vocaset")
    assert corpus.neutral_subjects == setup["written"]["vocaset_subjects"]
    assert isinstance(sequences.data_verts, np.memmap)
    subject, sentence = sequences.sequences()[1]
    np.testing.assert_allclose(sequences.vertices(subject, sentence)[2], corpus.neutral_vertices[1], atol=1e-6)


def test_identity_model_clamps_components_and_floors_weights():
    rng = np.random.default_rng(0)
    vertices, _ = grid_face(6, 6)
    neutrals = vertices + rng.normal(scale=1e-3, size=(4,) + vertices.shape)
    model = learn_identity(neutrals, n_components=10)
    assert model.basis.shape == (vertices.size, 3)  # 4 scans -> at most 3 components
    np.testing.assert_allclose(model.basis.T @ model.basis, np.eye(3), atol=1e-10)
    assert np.all(model.weights >= WEIGHT_FLOOR * model.weights.max())
    # two identical scans: one zero-variance component, floored rather than zero
    same = learn_identity(np.stack([vertices, vertices, vertices + 1e-3]), n_components=2)
    assert same.weights[1] > 0


def test_au_dictionary_atoms_unit_norm_and_weights_from_codes():
    rng = np.random.default_rng(1)
    atoms = rng.normal(size=(5, 300))
    atoms /= np.linalg.norm(atoms, axis=1, keepdims=True)
    codes = rng.uniform(0.5, 2, size=(60, 5)) * (rng.random((60, 5)) < 0.3)
    model = learn_au_dictionary(codes @ atoms * 0.01, n_atoms=8, sparsity=0.01, seed=0)
    norms = np.linalg.norm(model.basis, axis=0)
    np.testing.assert_allclose(norms[norms > 0], 1.0, atol=1e-9)
    mean_abs = np.abs(model.codes).mean(axis=0)
    np.testing.assert_allclose(model.weights, np.maximum(mean_abs, WEIGHT_FLOOR * mean_abs.max()))
    variance = learn_au_dictionary(codes @ atoms * 0.01, n_atoms=8, sparsity=0.01, seed=0, weight_mode="variance")
    code_var = variance.codes.var(axis=0)
    np.testing.assert_allclose(variance.weights, np.maximum(code_var, WEIGHT_FLOOR * code_var.max()))


def test_learned_au_basis_reconstructs_held_out_offsets(setup):
    truth, model = setup["truth"], setup["model"]
    held_out = truth.subjects[TRAIN_SUBJECTS:]
    offsets = np.stack([truth.au_fields[a] * truth.intensity[(s, a)] for s in held_out for a in FACIAL_AUS])
    assert model.au_basis.shape[1] == 32
    assert r_squared(offsets.reshape(len(offsets), -1), model.au_basis) >= 0.9


def test_learned_identity_basis_reconstructs_held_out_neutrals(setup):
    truth, model = setup["truth"], setup["model"]
    neutrals = np.stack([truth.neutral(s) for s in truth.subjects[TRAIN_SUBJECTS:]])
    deviations = (rigid_align(neutrals, model.template) - model.template).reshape(len(neutrals), -1)
    assert r_squared(deviations, model.id_basis) >= 0.9
    n_neutrals = TRAIN_SUBJECTS + len(setup["written"]["vocaset_subjects"])
    assert model.id_basis.shape[1] == n_neutrals - 1


def test_figure_is_written(setup):
    from PIL import Image

    image = np.asarray(Image.open(setup["figure_path"]).convert("RGB"))
    assert image.shape[0] > 200 and image.shape[1] > 300
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 50  # coloured meshes, not a blank canvas
