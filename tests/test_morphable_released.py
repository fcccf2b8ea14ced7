"""The released-bases loader (facemorphic.morphable.released) on files shaped exactly like the release.

The files are written here with scipy.io.savemat under the release's variable names, shapes, dtypes and
1-based indices (``Components`` 15069 x 22, ``Weights`` 22 x 1, ``Components_e`` 15069 x 32, ``Weights_e``
32 x 1, ``landmarks_idx`` 68 x 1 uint16, ``template_n`` 5023 x 3, ``f`` 3 x F), filled with random values,
so every loaded value can be checked against what was written.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import scipy.io

from facemorphic.errors import InputFileError
from facemorphic.morphable.meshio import write_ply
from facemorphic.morphable.model import load_model, save_model
from facemorphic.morphable.released import load_released_bases

N_VERTICES = 5023


def write_release(folder, seed=0):
    """Write the four release files into ``folder``; return their paths and the arrays written."""
    rng = np.random.default_rng(seed)
    template = rng.uniform(-0.1, 0.1, size=(N_VERTICES, 3)) * [1.0, 1.5, 1.0]  # metres, head-sized
    # triangles covering every vertex, so each landmark vertex is the corner of some triangle
    order = np.concatenate([rng.permutation(N_VERTICES) for _ in range(6)])
    faces = order[: 3 * (len(order) // 3)].reshape(-1, 3)
    faces = faces[(faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])]
    identity, _ = np.linalg.qr(rng.normal(size=(3 * N_VERTICES, 22)))
    identity[:, -1] *= 5e-7  # the release's 22nd component is numerically zero, with weight 3.7e-19
    id_weights = np.sort(rng.uniform(2e-4, 4.5e-2, 22))[::-1]
    id_weights[-1] = 3.66e-19
    au = rng.normal(size=(3 * N_VERTICES, 32)) * (rng.random((3 * N_VERTICES, 1)) < 0.3)
    au /= np.linalg.norm(au, axis=0)
    au_weights = rng.uniform(2e-5, 4.8e-4, 32)
    landmarks_1based = rng.choice(np.arange(1, N_VERTICES + 1), 68, replace=False).astype(np.uint16)
    paths = {name: folder / f"{name}.mat" for name in ("identity", "au", "landmarks", "template")}
    scipy.io.savemat(paths["identity"], {"Components": identity, "Weights": id_weights[:, None]})
    scipy.io.savemat(paths["au"], {"Components_e": au, "Weights_e": au_weights[:, None]})
    scipy.io.savemat(paths["landmarks"], {"landmarks_idx": landmarks_1based[:, None]})
    scipy.io.savemat(paths["template"], {"template_n": template, "f": (faces + 1).T.astype(np.float64)})
    arrays = {"template": template, "faces": faces, "identity": identity, "id_weights": id_weights, "au": au,
              "au_weights": au_weights, "landmarks_1based": landmarks_1based}
    return paths, arrays


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return write_release(tmp_path_factory.mktemp("release"))


def _load(paths, **kwargs):
    return load_released_bases(paths["identity"], paths["au"], paths["landmarks"], paths["template"], **kwargs)


def test_loaded_model_holds_the_written_values_with_their_landmark_overrides(release, tmp_path):
    paths, arrays = release
    model = _load(paths)
    np.testing.assert_array_equal(model.template, arrays["template"])
    np.testing.assert_array_equal(model.faces, arrays["faces"])
    np.testing.assert_array_equal(model.id_basis, arrays["identity"])
    np.testing.assert_array_equal(model.id_weights, arrays["id_weights"])  # 3.66e-19 kept, not floored
    np.testing.assert_array_equal(model.au_basis, arrays["au"])
    np.testing.assert_array_equal(model.au_weights, arrays["au_weights"])
    # their scripts: positions 17 and 26 (0-based) become the 1-based vertices 3709 and 695, then -1
    expected = arrays["landmarks_1based"].astype(np.int64) - 1
    expected[17], expected[26] = 3708, 694
    np.testing.assert_array_equal(model.landmark_points(model.template), arrays["template"][expected])
    # rows 3i..3i+2 are vertex i (their deform_3D_shape_fast reshapes C alpha to (3, N) in Fortran order)
    coefficients = np.random.default_rng(1).normal(size=32)
    their_offsets = np.reshape(arrays["au"] @ coefficients, (3, N_VERTICES), order="F").T
    np.testing.assert_allclose(model.shape(alpha_au=coefficients), arrays["template"] + their_offsets, atol=1e-12)
    np.testing.assert_array_equal(model.landmark_basis(model.au_basis)[40, 2], arrays["au"][3 * expected[40] + 2])
    save_model(model, tmp_path / "model.h5")
    reloaded = load_model(tmp_path / "model.h5")
    np.testing.assert_allclose(reloaded.id_weights, arrays["id_weights"], rtol=1e-7)
    np.testing.assert_allclose(reloaded.landmark_points(reloaded.template), arrays["template"][expected], atol=1e-7)


def test_landmark_overrides_can_be_switched_off(release):
    paths, arrays = release
    model = _load(paths, override_landmarks=False)
    expected = arrays["landmarks_1based"].astype(np.int64) - 1
    np.testing.assert_array_equal(model.landmark_points(model.template), arrays["template"][expected])
    assert model.attrs["landmarks_overridden"] is False


def test_template_from_a_mesh_file_or_flame_pickle_gives_the_same_model(release, tmp_path):
    paths, arrays = release
    write_ply(tmp_path / "template.ply", arrays["template"], arrays["faces"])
    with open(tmp_path / "template.obj", "w") as f:
        f.writelines(f"v {x!r} {y!r} {z!r}\n" for x, y, z in arrays["template"].tolist())
        f.writelines(f"f {a + 1} {b + 1} {c + 1}\n" for a, b, c in arrays["faces"])
    with open(tmp_path / "generic_model.pkl", "wb") as f:
        pickle.dump({"v_template": arrays["template"], "f": arrays["faces"].astype(np.uint32)}, f, protocol=2)
    reference = _load(paths)
    for name, atol in (("template.ply", 1e-7), ("template.obj", 0.0), ("generic_model.pkl", 0.0)):
        model = _load({**paths, "template": tmp_path / name})
        np.testing.assert_allclose(model.template, arrays["template"], rtol=0, atol=atol)  # ply is float32
        np.testing.assert_array_equal(model.faces, reference.faces)
        np.testing.assert_array_equal(model.landmark_faces, reference.landmark_faces)


def test_template_in_millimetres_is_refused_unless_scaled(release, tmp_path):
    paths, arrays = release
    scipy.io.savemat(tmp_path / "mm.mat", {"template_n": arrays["template"] * 1000.0, "f": (arrays["faces"] + 1).T})
    with pytest.raises(InputFileError, match=r"mm\.mat: .*metres.*0\.001"):
        _load({**paths, "template": tmp_path / "mm.mat"})
    model = _load({**paths, "template": tmp_path / "mm.mat"}, template_scale=0.001)
    np.testing.assert_allclose(model.template, arrays["template"], rtol=1e-12)


@pytest.mark.parametrize("key, variables, message", [
    ("au", {"Components": np.zeros((15069, 32)), "Weights_e": np.ones((32, 1))},
     r"au\.mat: missing variable 'Components_e'"),
    ("identity", {"Components": np.zeros((15066, 22)), "Weights": np.ones((22, 1))},
     r"identity\.mat: variable 'Components' has 15066 rows, expected 3 x 5023 = 15069"),
    ("identity", {"Components": np.zeros((15069, 22)), "Weights": np.ones((21, 1))},
     r"identity\.mat: variable 'Weights' has shape \(21, 1\), expected \(22, 1\)"),
    ("au", {"Components_e": np.zeros((15069, 32)), "Weights_e": np.r_[np.ones(31), 0.0][:, None]},
     r"au\.mat: variable 'Weights_e' must be finite and positive.*\[31\]"),
    ("landmarks", {"landmarks_idx": np.arange(1, 67, dtype=np.uint16)[:, None]},
     r"landmarks\.mat: variable 'landmarks_idx' has shape \(66, 1\), expected \(68, 1\)"),
    ("landmarks", {"landmarks_idx": np.arange(0, 68, dtype=np.uint16)[:, None]}, r"landmarks\.mat: .*1-based"),
    ("landmarks", {"landmarks_idx": np.full((68, 1), 5024, dtype=np.uint16)},
     r"landmarks\.mat: variable 'landmarks_idx' names vertex 5024 \(1-based\), the template has 5023"),
    ("template", {"f": np.ones((3, 10))}, r"template\.mat: missing variable 'template_n'"),
])
def test_bad_files_name_the_file_and_the_variable(release, tmp_path, key, variables, message):
    paths, _ = release
    bad = tmp_path / f"{key}.mat"
    scipy.io.savemat(bad, variables)
    with pytest.raises(InputFileError, match=message):
        _load({**paths, key: bad})


def test_missing_file_is_named(release, tmp_path):
    paths, _ = release
    with pytest.raises(InputFileError, match=r"nothere\.mat: basis \.mat file not found"):
        _load({**paths, "au": tmp_path / "nothere.mat"})
