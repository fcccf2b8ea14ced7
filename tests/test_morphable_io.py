"""Mesh, pickle, embedding, model-file and released-.mat readers of facemorphic.morphable."""

from __future__ import annotations

import os
import pickle

import h5py
import numpy as np
import pytest
import scipy.io

from facemorphic.errors import InputFileError
from facemorphic.morphable.meshio import read_mesh, read_ply, write_ply
from facemorphic.morphable.model import (
    MorphableModel, load_landmark_embedding, load_model, load_released_mat, save_model, vertex_landmark_embedding,
)
from facemorphic.morphable.safe_pickle import RefusedPickleError, load_npy_object, load_pickle
from morphable_synth import grid_face


def test_ply_binary_roundtrip_and_ascii_and_obj_agree(tmp_path):
    vertices, faces = grid_face(5, 4)
    write_ply(tmp_path / "m.ply", vertices, faces)
    v_bin, f_bin = read_ply(tmp_path / "m.ply")
    np.testing.assert_allclose(v_bin, vertices.astype(np.float32), rtol=0, atol=0)
    np.testing.assert_array_equal(f_bin, faces)
    # an ASCII PLY with an extra vertex property and one quad (fanned into two triangles)
    lines = ["ply", "format ascii 1.0", "comment made by hand", f"element vertex {len(vertices)}",
             "property double x", "property double y", "property double z", "property uchar red",
             "element face 2", "property list uchar int vertex_indices", "end_header"]
    lines += [f"{float(x)!r} {float(y)!r} {float(z)!r} 7" for x, y, z in vertices]
    lines += ["3 0 1 5", "4 1 2 7 6"]
    (tmp_path / "a.ply").write_text("\n".join(lines) + "\n")
    v_asc, f_asc = read_mesh(tmp_path / "a.ply")
    np.testing.assert_array_equal(v_asc, vertices)
    np.testing.assert_array_equal(f_asc, [[0, 1, 5], [1, 2, 7], [1, 7, 6]])
    obj_lines = [f"v {float(x)!r} {float(y)!r} {float(z)!r}" for x, y, z in vertices]
    obj = "\n".join(obj_lines + ["f 1/1/1 2/2/2 6/6/6", "f -1 -2 -3"])
    (tmp_path / "m.obj").write_text(obj + "\n")
    v_obj, f_obj = read_mesh(tmp_path / "m.obj")
    np.testing.assert_array_equal(v_obj, vertices)
    n = len(vertices)
    np.testing.assert_array_equal(f_obj, [[0, 1, 5], [n - 1, n - 2, n - 3]])


def test_ply_errors_name_the_file(tmp_path):
    (tmp_path / "bad.ply").write_bytes(b"not a ply\n")
    with pytest.raises(InputFileError, match="bad.ply"):
        read_ply(tmp_path / "bad.ply")


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_restricted_unpickler_accepts_arrays_and_refuses_code(tmp_path):
    data = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": [1, (2, 3)], "s": "x", "c": {4}}
    for protocol in (2, pickle.HIGHEST_PROTOCOL):
        with open(tmp_path / f"ok{protocol}.pkl", "wb") as f:
            pickle.dump(data, f, protocol=protocol)
        loaded = load_pickle(tmp_path / f"ok{protocol}.pkl")
        np.testing.assert_array_equal(loaded["a"], data["a"])
        assert loaded["b"] == [1, (2, 3)] and loaded["c"] == {4}
    with open(tmp_path / "evil.pkl", "wb") as f:
        pickle.dump({"x": _RunsCode()}, f)
    with pytest.raises(RefusedPickleError, match=r"evil\.pkl.*(posix|os|nt)\.system"):
        load_pickle(tmp_path / "evil.pkl")


def test_landmark_embeddings_flame_pickle_and_deca_npy(tmp_path):
    rng = np.random.default_rng(0)
    faces = rng.integers(0, 100, 68).astype(np.uint32)
    bary = rng.dirichlet(np.ones(3), 68)
    with open(tmp_path / "flame.pkl", "wb") as f:
        pickle.dump({"lmk_face_idx": faces, "lmk_b_coords": bary}, f, protocol=2)
    f_idx, b = load_landmark_embedding(tmp_path / "flame.pkl")
    np.testing.assert_array_equal(f_idx, faces)
    np.testing.assert_allclose(b, bary)
    deca = {"full_lmk_faces_idx": faces[None].astype(np.int64), "full_lmk_bary_coords": bary[None],
            "static_lmk_faces_idx": faces[17:]}
    torch = pytest.importorskip("torch")
    deca["dynamic_lmk_faces_idx"] = torch.zeros((79, 17), dtype=torch.int64)  # DECA stores these as tensors
    np.save(tmp_path / "landmark_embedding.npy", deca, allow_pickle=True)
    f_idx, b = load_landmark_embedding(tmp_path / "landmark_embedding.npy")
    np.testing.assert_array_equal(f_idx, faces)
    np.testing.assert_allclose(b, bary)
    whole = load_npy_object(tmp_path / "landmark_embedding.npy")
    assert isinstance(whole["dynamic_lmk_faces_idx"], np.ndarray) and whole["dynamic_lmk_faces_idx"].shape == (79, 17)
    with open(tmp_path / "short.pkl", "wb") as f:
        pickle.dump({"lmk_face_idx": faces[:51], "lmk_b_coords": bary[:51]}, f)
    with pytest.raises(InputFileError, match="68"):
        load_landmark_embedding(tmp_path / "short.pkl")


def _random_model(rng, n_id=4, n_au=6) -> MorphableModel:
    vertices, faces = grid_face(8, 9)
    n = len(vertices)
    return MorphableModel(
        template=vertices, faces=faces, landmark_faces=rng.integers(0, len(faces), 68),
        landmark_bary=rng.dirichlet(np.ones(3), 68), id_basis=rng.normal(size=(3 * n, n_id)),
        id_weights=rng.uniform(0.5, 1, n_id), au_basis=rng.normal(size=(3 * n, n_au)),
        au_weights=rng.uniform(0.5, 1, n_au), attrs={"seed": 3},
    )


def test_model_file_roundtrip_follows_contract(tmp_path):
    model = _random_model(np.random.default_rng(1))
    save_model(model, tmp_path / "model.h5")
    with h5py.File(tmp_path / "model.h5", "r") as f:
        n = len(model.template)
        assert f["template"].shape == (n, 3) and f["faces"].shape == model.faces.shape
        assert f["landmark_faces"].shape == (68,) and f["landmark_bary"].shape == (68, 3)
        assert f["id_basis"].shape == (3 * n, 4) and f["au_basis"].shape == (3 * n, 6)
        assert f["id_weights"].shape == (4,) and f["au_weights"].shape == (6,)
    loaded = load_model(tmp_path / "model.h5")
    np.testing.assert_allclose(loaded.au_basis, model.au_basis, rtol=1e-6)
    np.testing.assert_array_equal(loaded.landmark_faces, model.landmark_faces)
    # landmark interpolation of the basis equals interpolating the deformed mesh
    alpha = np.random.default_rng(2).normal(size=6)
    direct = loaded.landmark_points(loaded.shape(alpha_au=alpha)) - loaded.landmark_points(loaded.template)
    np.testing.assert_allclose(loaded.landmark_basis(loaded.au_basis) @ alpha, direct, atol=1e-9)


def test_vertex_landmarks_become_barycentric_corners():
    vertices, faces = grid_face(6, 6)
    idx = np.array([0, 7, 35] * 22 + [14, 20])
    new_faces, lmk_faces, bary = vertex_landmark_embedding(idx, faces, len(vertices))
    model_points = np.einsum("lcx,lc->lx", vertices[new_faces[lmk_faces]], bary)
    np.testing.assert_array_equal(model_points, vertices[idx])
    np.testing.assert_array_equal(new_faces, faces)  # the mesh itself is unchanged
    _, lmk_faces, bary = vertex_landmark_embedding(np.array([5]), np.zeros((0, 3)), 10)
    assert bary.tolist() == [[1.0, 0.0, 0.0]]


def _write_authors_mat(path, model: MorphableModel, lmk_vertices: np.ndarray, v73: bool):
    variables = {"Components": model.id_basis, "Weights": model.id_weights[:, None],
                 "Components_e": model.au_basis, "Weights_e": model.au_weights[:, None],
                 "avgModel": model.template.T, "landmarks_idx": (lmk_vertices + 1)[None].astype(np.float64)}
    if not v73:
        scipy.io.savemat(path, variables)
        return
    # MATLAB v7.3 is HDF5 with a 512-byte user block and column-major (transposed) datasets
    with h5py.File(path, "w", userblock_size=512) as f:
        for key, value in variables.items():
            f.create_dataset(key, data=np.asarray(value).T)
    with open(path, "r+b") as f:
        text = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Tue Nov 24 2026 HDF5 schema 1.00 ."
        f.write(text.ljust(116, b" ") + b"\0" * 8 + b"\x00\x02" + b"IM")


@pytest.mark.parametrize("v73", [False, True])
def test_released_mat_layout_loads(tmp_path, v73):
    rng = np.random.default_rng(3)
    model = _random_model(rng)
    lmk_vertices = rng.choice(len(model.template), 68, replace=False)
    _write_authors_mat(tmp_path / "bases.mat", model, lmk_vertices, v73)
    loaded = load_released_mat(tmp_path / "bases.mat", (model.template, model.faces))
    np.testing.assert_allclose(loaded.template, model.template)
    np.testing.assert_allclose(loaded.id_basis, model.id_basis)
    np.testing.assert_allclose(loaded.au_weights, model.au_weights)
    np.testing.assert_allclose(loaded.landmark_points(loaded.template), model.template[lmk_vertices])
    # interleaved xyz: basis row 3i + c moves vertex i along axis c
    lmk_basis = loaded.landmark_basis(loaded.au_basis)
    np.testing.assert_allclose(lmk_basis[5, 1], model.au_basis[3 * lmk_vertices[5] + 1])


def test_released_mat_missing_variable_is_named(tmp_path):
    scipy.io.savemat(tmp_path / "x.mat", {"Components": np.zeros((6, 1))})
    with pytest.raises(InputFileError, match="Weights"):
        load_released_mat(tmp_path / "x.mat")
