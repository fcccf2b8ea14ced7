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
from facemorphic.errors import FacemorphicError
from facemorphic.morphable.released import load_released_bases
from morphable_synth import APEX_RAMP, FACIAL_AUS, TRAIN_SUBJECTS, learned_setup, recording_landmarks
from test_morphable_released import write_release

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
    # rounds=0, authors' update: alpha = (Y'Y + diag(lambda/w))^-1 Y'X with Y, X written out literally;
    # their Y: each component uncentred, projected with the translation
    landmarks, template, basis, weights = _random_problem(1, n_frames=1, n_lmk=20, k=5)
    lmk = landmarks[0]
    lc, mc = lmk - lmk.mean(0), template - template.mean(0)
    a_mat = lc.T @ np.linalg.pinv(mc.T)
    t = lmk.mean(0) - a_mat @ template.mean(0)
    x = (lmk - (template @ a_mat.T + t)).ravel()
    y = np.stack([(basis[:, :, k] @ a_mat.T + t).ravel() for k in range(5)], axis=1)
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
            group.create_dataset("interpolated", data=np.zeros(len(valid), bool))
            group.create_dataset("detected", data=np.ones(len(valid), bool))
            group.create_dataset("decoded", data=np.ones(len(valid), bool))
            group.create_dataset("time_s", data=np.arange(len(valid)) / 30.0)
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
               "--out", str(tmp_path / "c.h5"), "--drop-landmarks", "60", "99"])
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


class TheirFit:
    """The authors' ``_3DMM.py`` fit (``opt_3DMM_fast``), re-derived from their equations, one frame at a time.

    Written independently of closed_form.py, in their operations: landmarks as (L, 3) rows of the dense
    mean face, the camera by pseudo-inverse split by QR into ``S R = A``, every component projected with
    the translation (``S R C_k^T + t``), vectors in Fortran order, the normal matrix inverted with ``inv``,
    increments deforming the dense shape, the returned ``alpha`` the last increment.
    """

    @staticmethod
    def pose(model_points, image_points):
        p_model = (model_points - model_points.mean(axis=0)).T
        p_image = (image_points - image_points.mean(axis=0)).T
        a_mat = p_image @ np.linalg.pinv(p_model)
        q, r = np.linalg.qr(a_mat.T, mode="complete")
        return r.T, q.T, image_points.mean(axis=0) - a_mat @ model_points.mean(axis=0)

    @staticmethod
    def project(points, s, r, t):
        return (s @ (r @ points.T) + t.reshape(2, 1)).T

    def alpha(self, image_points, projected, components_res, idx, s, r, t, weights, lam):
        x = (image_points - projected).flatten(order="F")
        y = np.zeros((len(x), components_res.shape[2]))
        for c in range(components_res.shape[2]):
            y[:, c] = self.project(components_res[idx, :, c], s, r, t).flatten(order="F")
        return np.linalg.inv(y.T @ y + np.diag(lam / weights.ravel())) @ y.T @ x

    def fit(self, weights, components, idx, image_points, mean_face, lam, rounds):
        n = len(mean_face)
        components_res = np.stack([components[:, c].reshape(3, n, order="F").T
                                   for c in range(components.shape[1])], axis=2)
        s, r, t = self.pose(mean_face[idx], image_points)
        alpha = self.alpha(image_points, self.project(mean_face[idx], s, r, t), components_res, idx, s, r, t,
                           weights, lam)
        shape = mean_face + (components @ alpha).reshape(3, n, order="F").T
        for _ in range(rounds):
            s, r, t = self.pose(shape[idx], image_points)
            alpha = self.alpha(image_points, self.project(shape[idx], s, r, t), components_res, idx, s, r, t,
                               weights, lam)
            shape = shape + (components @ alpha).reshape(3, n, order="F").T
        return alpha, shape


def _release_landmarks(arrays, idx, n_frames, noise_px, seed):
    """Landmarks of the fake release's faces (random identity and AU coefficients) under affine cameras."""
    rng = np.random.default_rng(seed)
    identity = arrays["identity"] @ (rng.normal(size=22) * np.sqrt(arrays["id_weights"]))
    face = arrays["template"] + identity.reshape(-1, 3)
    truth = rng.normal(size=(n_frames, 32)) * np.sqrt(arrays["au_weights"]) * 3
    frames = face + np.einsum("vk,tk->tv", arrays["au"], truth).reshape(n_frames, -1, 3)
    camera = 2000.0 * np.array([[np.cos(0.3), 0.0, np.sin(0.3)], [0.0, -1.0, 0.0]])
    points = frames[:, idx] @ camera.T + np.array([640.0, 360.0])
    return points + rng.normal(scale=noise_px, size=points.shape), truth, face


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    paths, arrays = write_release(tmp_path_factory.mktemp("release"), seed=4)
    model = load_released_bases(paths["identity"], paths["au"], paths["landmarks"], paths["template"])
    idx = arrays["landmarks_1based"].astype(np.int64)
    idx[17], idx[26] = 3709, 695  # their scripts' fix-ups, then 0-based
    return model, arrays, idx - 1


@pytest.mark.parametrize("lam, rounds", [(100.0, 0), (5.0, 0), (0.5, 2)])
def test_authors_rule_reproduces_their_two_step_fit(release, lam, rounds):
    model, arrays, idx = release
    landmarks, _, _ = _release_landmarks(arrays, idx, n_frames=4, noise_px=0.5, seed=1)
    options = FitOptions(lam, rounds, update="authors")
    ours = LandmarkFitter(model, np.arange(68), id_options=options, au_options=options).fit(landmarks)
    theirs = TheirFit()
    id_alpha, identity_shape = theirs.fit(arrays["id_weights"], arrays["identity"], idx, landmarks[0],
                                          arrays["template"], lam, rounds)
    for frame in range(len(landmarks)):
        au_alpha, shape = theirs.fit(arrays["au_weights"], arrays["au"], idx, landmarks[frame], identity_shape,
                                     lam, rounds)
        # their defShape is our template + C alpha: alpha is the sum of their increments
        np.testing.assert_allclose(model.shape(ours.alpha_id, ours.alpha_au[frame]), shape, rtol=0, atol=1e-12)
        if rounds == 0:  # then their alpha is the single increment
            np.testing.assert_allclose(ours.alpha_au[frame], au_alpha, rtol=0, atol=1e-9)
    np.testing.assert_allclose(model.shape(ours.alpha_id), identity_shape, rtol=0, atol=1e-12)
    if rounds == 0:
        np.testing.assert_allclose(ours.alpha_id, id_alpha, rtol=0, atol=1e-9)


def test_projected_rule_recovers_noise_free_coefficients_the_authors_rule_does_not(release):
    model, arrays, idx = release
    # the AU fit alone, on the true identity face: noise-free, nearly unregularised, 2 rounds
    landmarks, truth, face = _release_landmarks(arrays, idx, n_frames=20, noise_px=0.0, seed=2)
    au_basis = LandmarkBasis(model.landmark_basis(model.au_basis), model.au_weights)
    errors = {}
    for update in ("authors", "projected"):
        alpha = fit_frames(landmarks, face[idx], au_basis, FitOptions(1e-6, 2, update=update)).alpha
        errors[update] = np.linalg.norm(alpha - truth) / np.linalg.norm(truth)
    assert errors["projected"] < 1e-3 < 0.1 < errors["authors"]


def test_unknown_update_rule_is_refused_with_the_config_key():
    with pytest.raises(FacemorphicError, match="fitting.update: unknown update rule 'florence'"):
        FitOptions(update="florence")
