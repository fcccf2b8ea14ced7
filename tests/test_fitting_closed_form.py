"""The batched closed-form fit (facemorphic.fitting) against a per-frame loop and synthetic truth."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import scipy.io

from facemorphic.cli import main
from facemorphic.fitting.closed_form import FitOptions, LandmarkBasis, fit_frames, fit_frames_reference
from facemorphic.fitting.recording import LandmarkFitter, landmark_subset
from facemorphic.morphable.model import load_model
from morphable_synth import APEX_RAMP, FACIAL_AUS, TRAIN_SUBJECTS, learned_setup, recording_landmarks

APEX = int(np.argmax(APEX_RAMP))


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    return learned_setup(tmp_path_factory.getbasetemp())


def _random_problem(seed, n_frames=40, n_lmk=66, k=32):
    rng = np.random.default_rng(seed)
    template = rng.normal(size=(n_lmk, 3)) * 50
    basis = rng.normal(size=(n_lmk, 3, k)) * 3
    weights = rng.uniform(0.2, 2.0, k)
    alpha = rng.normal(size=(n_frames, k)) * 0.5
    cams = rng.normal(size=(n_frames, 2, 3)) * 4
    shapes = template + np.einsum("lck,tk->tlc", basis, alpha)
    landmarks = np.einsum("trc,tlc->tlr", cams, shapes) + rng.normal(size=(n_frames, 1, 2)) * 100
    landmarks += rng.normal(size=landmarks.shape)  # detector noise
    return landmarks, template, basis, weights


@pytest.mark.parametrize("options", [
    FitOptions(lam=1.0, rounds=0),
    FitOptions(lam=1e-3, rounds=2, normalise_scale=True),
    FitOptions(lam=10.0, rounds=3, update="authors"),
    FitOptions(lam=0.5, rounds=1, normalise_scale=True, update="authors"),
])
def test_batched_fit_equals_per_frame_loop(options):
    landmarks, template, basis, weights = _random_problem(0)
    batched = fit_frames(landmarks, template, LandmarkBasis(basis, weights), options, chunk=16)
    loop = fit_frames_reference(landmarks, template, basis, weights, options)
    np.testing.assert_allclose(batched.alpha, loop.alpha, rtol=0, atol=1e-6)
    np.testing.assert_allclose(batched.camera, loop.camera, rtol=0, atol=1e-6)
    np.testing.assert_allclose(batched.residual, loop.residual, rtol=0, atol=1e-6)


def test_reference_matches_the_design_formula_for_one_frame():
    # rounds=0, authors' update: alpha = (Y'Y + diag(lambda/w))^-1 Y'X with Y, X written out literally
    landmarks, template, basis, weights = _random_problem(1, n_frames=1, n_lmk=20, k=5)
    lmk = landmarks[0]
    lc, mc = lmk - lmk.mean(0), template - template.mean(0)
    a_mat = lc.T @ np.linalg.pinv(mc.T)
    t = lmk.mean(0) - a_mat @ template.mean(0)
    x = (lmk - (template @ a_mat.T + t)).ravel()
    centred = basis - basis.mean(0)
    y = np.stack([(centred[:, :, k] @ a_mat.T).ravel() for k in range(5)], axis=1)
    expected = np.linalg.solve(y.T @ y + np.diag(2.0 / weights), y.T @ x)
    fit = fit_frames(landmarks, template, LandmarkBasis(basis, weights), FitOptions(2.0, 0, update="authors"))
    np.testing.assert_allclose(fit.alpha[0], expected, atol=1e-9)
    np.testing.assert_allclose(fit.camera[0, :, :3], _camera_of(lmk, template + basis @ fit.alpha[0]), atol=1e-9)


def _camera_of(lmk, shape):
    return (lmk - lmk.mean(0)).T @ np.linalg.pinv((shape - shape.mean(0)).T)


def test_noise_free_landmarks_reproduced_under_a_pixel(setup):
    truth, model = setup["truth"], setup["model"]
    fitter = LandmarkFitter(model)
    rng = np.random.default_rng(7)
    idx = landmark_subset()
    worst, worst_rms = 0.0, 0.0
    for subject in truth.subjects[TRAIN_SUBJECTS:]:
        for au in FACIAL_AUS[::3]:
            landmarks = recording_landmarks(truth, subject, (au,), rng.normal(scale=0.2, size=3))
            fit = fitter.fit(landmarks)
            # independent check: deform the dense model, take its landmarks, project with the camera
            for frame in range(len(landmarks)):
                dense = model.shape(fit.alpha_id, fit.alpha_au[frame])
                points = model.landmark_points(dense)[idx]
                projected = points @ fit.camera[frame, :, :3].T + fit.camera[frame, :, 3]
                error = np.linalg.norm(projected - landmarks[frame, idx], axis=1)
                np.testing.assert_allclose(np.sqrt(np.mean(error**2)), fit.residual_px[frame], rtol=1e-6)
                worst = max(worst, float(error.max()))
            worst_rms = max(worst_rms, float(fit.residual_px.max()))
    assert worst_rms < 0.5 and worst < 1.0  # pixels, on a face about 200 px wide (lambda = 1 biases a little)


def test_apex_coefficients_separate_the_facial_aus_on_held_out_subjects(setup):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    truth, model = setup["truth"], setup["model"]
    fitter = LandmarkFitter(model)
    rng = np.random.default_rng(11)
    features, labels, held_out = [], [], []
    for subject in truth.subjects:
        for au in FACIAL_AUS:
            landmarks = recording_landmarks(truth, subject, (au,), rng.normal(scale=0.2, size=3))
            features.append(fitter.fit(landmarks).alpha_au[APEX])
            labels.append(au)
            held_out.append(subject not in truth.subjects[:TRAIN_SUBJECTS])
    features, labels, held_out = np.array(features), np.array(labels), np.array(held_out)
    classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    classifier.fit(features[~held_out], labels[~held_out])
    accuracy = classifier.score(features[held_out], labels[held_out])
    assert accuracy >= 0.6  # chance is 1/18


def test_invalid_frames_are_nan_and_identity_uses_first_valid(setup):
    truth, model = setup["truth"], setup["model"]
    landmarks = recording_landmarks(truth, "S08", (12,), (0.1, 0.0, 0.0))
    valid = np.array([False, True, True, True, True])
    landmarks[2, 30] = np.nan
    landmarks[4] = 100.0  # a placeholder: every landmark on one point
    fit = LandmarkFitter(model).fit(landmarks, valid)
    assert fit.identity_frame == 1
    np.testing.assert_array_equal(fit.valid, [False, True, False, True, False])
    assert np.isnan(fit.alpha_au[[0, 2, 4]]).all() and np.isnan(fit.camera[[0, 2, 4]]).all()
    assert np.isfinite(fit.alpha_au[[1, 3]]).all()
    empty = LandmarkFitter(model).fit(landmarks, np.zeros(5, bool))
    assert np.isnan(empty.alpha_id).all() and empty.identity_frame == -1


def _write_landmarks(path, recordings):
    with h5py.File(path, "w") as f:
        for name, (landmarks, valid) in recordings.items():
            group = f.create_group(name)
            xyz = np.concatenate([landmarks, np.zeros(landmarks.shape[:2] + (1,))], axis=2)
            group.create_dataset("landmarks", data=xyz.astype(np.float32))
            group.create_dataset("valid", data=valid)
            group.create_dataset("bbox", data=np.zeros((len(valid), 4), np.float32))
            group.create_dataset("score", data=np.ones(len(valid), np.float32))
            group.attrs["backend"] = "synthetic"


def test_fit_cli_writes_the_coefficients_contract(setup, tmp_path):
    truth, model = setup["truth"], setup["model"]
    a = recording_landmarks(truth, "S07", (6,), (0.2, -0.1, 0.05))
    b = recording_landmarks(truth, "S09", (25,), (-0.1, 0.1, 0.0))
    _write_landmarks(tmp_path / "u.h5", {"u_AU_6_0": (a, np.ones(5, bool)),
                                         "u_AU_25_1": (b, np.array([True, True, False, True, True]))})
    rc = main(["fit", "--landmarks", str(tmp_path / "u.h5"), "--model", str(setup["model_path"]),
               "--out", str(tmp_path / "coef.h5"), "--lambda-au", "0.5", "--rounds", "2"])
    assert rc == 0
    with h5py.File(tmp_path / "coef.h5", "r") as f:
        assert sorted(f) == ["u_AU_25_1", "u_AU_6_0"]
        g = f["u_AU_25_1"]
        assert g["alpha_au"].dtype == np.float32 and g["alpha_au"].shape == (5, 32)
        assert g["alpha_id"].shape == (model.id_basis.shape[1],)
        assert g["camera"].shape == (5, 2, 4) and g["residual_px"].shape == (5,)
        np.testing.assert_array_equal(g["valid"][()], [True, True, False, True, True])
        assert np.isnan(g["alpha_au"][2]).all()
        direct = LandmarkFitter(model, id_options=FitOptions(1.0, 2), au_options=FitOptions(0.5, 2)).fit(
            b.astype(np.float32), g["valid"][()])
        np.testing.assert_allclose(g["alpha_au"][()], direct.alpha_au, rtol=1e-5, atol=1e-7)
        assert float(np.nanmax(g["residual_px"][()])) < 0.5
        assert f.attrs["lambda_au"] == 0.5 and list(f.attrs["landmarks_used"]) == list(landmark_subset())


def test_cli_errors_are_one_line_and_name_the_problem(setup, tmp_path, capsys):
    rc = main(["fit", "--landmarks", str(tmp_path / "missing.h5"), "--model", str(setup["model_path"]),
               "--out", str(tmp_path / "c.h5")])
    err = capsys.readouterr().err
    assert rc == 2 and "missing.h5: landmarks file not found" in err and "Traceback" not in err
    rc = main(["fit", "--landmarks", str(tmp_path / "missing.h5"), "--model", str(setup["model_path"]),
               "--out", str(tmp_path / "c.h5"), "--drop-landmarks", "60,99"])
    assert rc == 2 and "[99]" in capsys.readouterr().err
    rc = main(["morphable", "--out", str(tmp_path / "m.h5")])
    assert rc == 2 and "--d3dfacs" in capsys.readouterr().err
    assert not (tmp_path / "c.h5").exists() and not (tmp_path / "m.h5").exists()


def test_released_mat_bases_load_and_fit(setup, tmp_path):
    truth = setup["truth"]
    id_basis = truth.id_fields.reshape(len(truth.id_fields), -1).T
    au_basis = np.stack([truth.au_fields[a].reshape(-1) for a in FACIAL_AUS], axis=1)
    # the authors' layout gives landmarks as vertices: use the vertex nearest each true landmark
    lmk_vertices = np.array([np.argmin(np.linalg.norm(truth.template - p, axis=1))
                             for p in truth.landmarks3d(truth.template)])
    scipy.io.savemat(tmp_path / "bases.mat", {
        "avgModel": truth.template.T, "Components": id_basis, "Weights": np.ones((id_basis.shape[1], 1)),
        "Components_e": au_basis, "Weights_e": np.ones((au_basis.shape[1], 1)),
        "landmarks_idx": (lmk_vertices + 1)[None].astype(float), "faces": truth.faces + 1,
    })
    rc = main(["morphable", "--released-mat", str(tmp_path / "bases.mat"), "--out", str(tmp_path / "model.h5"),
               "--figure", str(tmp_path / "fig.png")])
    assert rc == 0
    model = load_model(tmp_path / "model.h5")
    # landmarks exactly on those vertices: the released model then fits its own landmarks exactly
    frames = np.stack([truth.neutral("S08") + r * truth.au_fields[17] for r in APEX_RAMP])
    from morphable_synth import project

    landmarks = project(frames[:, lmk_vertices], 0.15, -0.1, 0.02)
    fit = LandmarkFitter(model, id_options=FitOptions(1e-6, 2), au_options=FitOptions(1e-6, 2)).fit(landmarks)
    assert float(fit.residual_px.max()) < 1e-3
    np.testing.assert_allclose(fit.alpha_id, truth.id_coeffs["S08"], atol=1e-3)
    expected = np.zeros(len(FACIAL_AUS))
    expected[FACIAL_AUS.index(17)] = APEX_RAMP[APEX]
    np.testing.assert_allclose(fit.alpha_au[APEX], expected, atol=1e-3)
