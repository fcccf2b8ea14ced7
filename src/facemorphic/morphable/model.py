"""The morphable model: template mesh, 68-landmark embedding, identity and AU bases with weights.

A shape is ``S = template + reshape(basis @ alpha, (N, 3))``; bases are ``[3N, K]`` with xyz interleaved
per vertex (rows ``3i..3i+2`` are vertex ``i``), the layout of the authors' released ``.mat`` files.
Landmarks are barycentric points on triangles (``landmark_faces`` ``[68]``, ``landmark_bary`` ``[68, 3]``);
a plain vertex index is the case ``(1, 0, 0)`` on a triangle whose first corner is that vertex.

This module also reads the model's sources that are not scan corpora: a FLAME template mesh, the FLAME
static / DECA 68-landmark embeddings, and the released bases in the authors' ``.mat`` layout.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from ..errors import InputFileError
from ..fileio import atomic_path
from .safe_pickle import load_npy_object, load_pickle

log = logging.getLogger(__name__)

N_LANDMARKS = 68


@dataclass
class MorphableModel:
    template: np.ndarray  # [N, 3]
    faces: np.ndarray  # [F, 3]
    landmark_faces: np.ndarray  # [68]
    landmark_bary: np.ndarray  # [68, 3]
    id_basis: np.ndarray  # [3N, K_id]
    id_weights: np.ndarray  # [K_id]
    au_basis: np.ndarray  # [3N, K]
    au_weights: np.ndarray  # [K]
    attrs: dict = field(default_factory=dict)

    @property
    def n_vertices(self) -> int:
        return len(self.template)

    def landmark_points(self, vertices: np.ndarray) -> np.ndarray:
        """The 68 landmarks ``[..., 68, 3]`` of a mesh ``[..., N, 3]`` (barycentric interpolation)."""
        corners = vertices[..., self.faces[self.landmark_faces], :]  # [..., 68, 3 corners, 3]
        return np.einsum("...lcx,lc->...lx", corners, self.landmark_bary)

    def landmark_basis(self, basis: np.ndarray) -> np.ndarray:
        """A basis ``[3N, K]`` taken at the landmarks: ``[68, 3, K]`` (same interpolation per column)."""
        per_vertex = basis.reshape(self.n_vertices, 3, -1)
        corners = per_vertex[self.faces[self.landmark_faces]]  # [68, 3 corners, 3, K]
        return np.einsum("lcxk,lc->lxk", corners, self.landmark_bary)

    def shape(self, alpha_id: np.ndarray | None = None, alpha_au: np.ndarray | None = None) -> np.ndarray:
        """Dense shape ``[N, 3]``: template plus identity and AU deformations."""
        flat = self.template.reshape(-1).copy()
        if alpha_id is not None:
            flat += self.id_basis @ alpha_id
        if alpha_au is not None:
            flat += self.au_basis @ alpha_au
        return flat.reshape(-1, 3)

    def validate(self, source: str | os.PathLike = "model") -> None:
        n3 = 3 * self.n_vertices
        checks = [
            (self.template.ndim == 2 and self.template.shape[1] == 3, f"template shape {self.template.shape}"),
            (self.id_basis.shape[0] == n3, f"id_basis has {self.id_basis.shape[0]} rows, expected 3N={n3}"),
            (self.au_basis.shape[0] == n3, f"au_basis has {self.au_basis.shape[0]} rows, expected 3N={n3}"),
            (self.id_weights.shape == (self.id_basis.shape[1],), "id_weights length differs from id_basis columns"),
            (self.au_weights.shape == (self.au_basis.shape[1],), "au_weights length differs from au_basis columns"),
            (self.landmark_faces.shape == (N_LANDMARKS,), f"landmark_faces shape {self.landmark_faces.shape}"),
            (self.landmark_bary.shape == (N_LANDMARKS, 3), f"landmark_bary shape {self.landmark_bary.shape}"),
            (len(self.faces) == 0 or int(self.faces.max()) < self.n_vertices, "faces refer to missing vertices"),
            (int(self.landmark_faces.max()) < len(self.faces), "landmark_faces refer to missing faces"),
            (np.all(self.id_weights > 0) and np.all(self.au_weights > 0), "component weights must be positive"),
        ]
        for ok, what in checks:
            if not ok:
                raise InputFileError(source, f"inconsistent morphable model: {what}")


def save_model(model: MorphableModel, path: str | os.PathLike) -> None:
    """Write ``model.h5`` in the DESIGN.md contract (float32 arrays, gzip level 4, atomically)."""
    model.validate(path)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        for name in ("template", "id_basis", "id_weights", "au_basis", "au_weights", "landmark_bary"):
            f.create_dataset(name, data=np.asarray(getattr(model, name), dtype=np.float32),
                             compression="gzip", compression_opts=4)
        f.create_dataset("faces", data=np.asarray(model.faces, dtype=np.int32), compression="gzip", compression_opts=4)
        f.create_dataset("landmark_faces", data=np.asarray(model.landmark_faces, dtype=np.int32))
        f.attrs["basis_layout"] = "interleaved xyz per vertex: rows 3i..3i+2 are vertex i"
        for key, value in model.attrs.items():
            f.attrs[key] = value


def load_model(path: str | os.PathLike) -> MorphableModel:
    """Read a ``model.h5`` written by :func:`save_model` (arrays as float64 for the fitting)."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "morphable model file not found")
    needed = ("template", "faces", "landmark_faces", "landmark_bary", "id_basis", "id_weights", "au_basis",
              "au_weights")
    with h5py.File(path, "r") as f:
        missing = [k for k in needed if k not in f]
        if missing:
            raise InputFileError(path, f"not a morphable model: missing datasets {missing}")
        arrays = {k: f[k][()] for k in needed}
        attrs = {k: v for k, v in f.attrs.items() if k != "basis_layout"}
    model = MorphableModel(
        template=arrays["template"].astype(np.float64),
        faces=arrays["faces"].astype(np.int64),
        landmark_faces=arrays["landmark_faces"].astype(np.int64),
        landmark_bary=arrays["landmark_bary"].astype(np.float64),
        id_basis=arrays["id_basis"].astype(np.float64),
        id_weights=arrays["id_weights"].astype(np.float64),
        au_basis=arrays["au_basis"].astype(np.float64),
        au_weights=arrays["au_weights"].astype(np.float64),
        attrs=attrs,
    )
    model.validate(path)
    return model


def load_landmark_embedding(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """``(faces [68], bary [68, 3])`` from FLAME's static embedding pickle or DECA's ``.npy`` dict.

    FLAME (``flame_static_embedding_68.pkl``): keys ``lmk_face_idx`` / ``lmk_b_coords``. DECA/EMOCA
    (``landmark_embedding.npy``): keys ``full_lmk_faces_idx`` ``(1, 68)`` / ``full_lmk_bary_coords``
    ``(1, 68, 3)``. The 51-point static embeddings (no jaw) are refused: the contract needs all 68.
    """
    path = Path(path)
    data = load_npy_object(path) if path.suffix == ".npy" else load_pickle(path)
    if not isinstance(data, dict):
        raise InputFileError(path, "landmark embedding must be a dict")
    for face_key, bary_key in (("lmk_face_idx", "lmk_b_coords"), ("full_lmk_faces_idx", "full_lmk_bary_coords")):
        if face_key in data and bary_key in data:
            faces = np.asarray(data[face_key]).reshape(-1).astype(np.int64)
            bary = np.asarray(data[bary_key], dtype=np.float64).reshape(-1, 3)
            break
    else:
        raise InputFileError(path, "no landmark embedding keys (lmk_face_idx/lmk_b_coords or full_lmk_*); "
                                   f"has {sorted(data)}")
    if faces.shape != (N_LANDMARKS,) or bary.shape != (N_LANDMARKS, 3):
        raise InputFileError(path, f"embedding has {len(faces)} landmarks, the 68-point one is needed")
    if not np.allclose(bary.sum(axis=1), 1.0, atol=1e-3):
        raise InputFileError(path, "barycentric coordinates do not sum to 1")
    return faces, bary


def vertex_landmark_embedding(vertex_idx: np.ndarray, faces: np.ndarray,
                              n_vertices: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Express landmarks given as vertex indices in the barycentric contract.

    Each landmark gets a triangle that contains its vertex and the one-hot barycentric coordinates of that
    corner (``(1, 0, 0)`` when the vertex is the triangle's first corner). Vertices on no triangle (or a mesh
    without faces) get a degenerate triangle ``(v, v, v)`` appended. Returns
    ``(faces, landmark_faces, landmark_bary)``.
    """
    faces = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    extra = []
    landmark_faces = np.empty(len(vertex_idx), dtype=np.int64)
    bary = np.zeros((len(vertex_idx), 3))
    for i, v in enumerate(np.asarray(vertex_idx, dtype=np.int64)):
        if not 0 <= v < n_vertices:
            raise ValueError(f"landmark vertex {v} outside the mesh's {n_vertices} vertices")
        rows, cols = np.nonzero(faces == v)
        if len(rows):
            first = np.argmin(cols)  # prefer a triangle where v is the first corner
            landmark_faces[i], bary[i, cols[first]] = rows[first], 1.0
        else:
            landmark_faces[i], bary[i, 0] = len(faces) + len(extra), 1.0
            extra.append((v, v, v))
    if extra:
        faces = np.concatenate([faces, np.asarray(extra, dtype=np.int64)])
    return faces, landmark_faces, bary


def read_mat_variables(path: Path) -> dict:
    """Variables of a MATLAB file, v5 (scipy.io) or v7.3 (HDF5, transposed back to MATLAB's order)."""
    import scipy.io

    try:
        return {k: v for k, v in scipy.io.loadmat(path).items() if not k.startswith("__")}
    except NotImplementedError:  # v7.3 is HDF5
        pass
    except (ValueError, OSError) as exc:
        if not h5py.is_hdf5(path):
            raise InputFileError(path, f"not a readable .mat file: {exc}") from exc
    out = {}
    with h5py.File(path, "r") as f:
        for key, item in f.items():
            if isinstance(item, h5py.Dataset):
                out[key] = np.asarray(item[()]).T
    return out


def load_released_mat(path: str | os.PathLike,
                      template_mesh: tuple[np.ndarray, np.ndarray] | None = None) -> MorphableModel:
    """A :class:`MorphableModel` from bases in the authors' ``.mat`` layout.

    Variables: ``Components`` (3N x K_id) / ``Weights`` (identity), ``Components_e`` (3N x K) /
    ``Weights_e`` (AUs), xyz interleaved per vertex; ``landmarks_idx``: 68 vertex indices, 1-based (66 are
    accepted too: the Florence set without the inner mouth corners 60 and 64, which then reuse the outer
    corners 48 and 54 and are marked in the ``landmarks_substituted`` attribute; the fit drops 60/64 by
    default anyway). The mean shape is ``avgModel`` (3 x N or N x 3) when present, else the mesh given
    as ``template_mesh``; triangles come from ``faces``/``tri`` (1-based) or the template mesh.
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "released-basis .mat file not found")
    mat = read_mat_variables(path)
    for key in ("Components", "Weights", "Components_e", "Weights_e", "landmarks_idx"):
        if key not in mat:
            raise InputFileError(path, f"missing variable {key!r} (authors' layout: Components/Weights, "
                                       "Components_e/Weights_e, landmarks_idx)")
    id_basis = np.asarray(mat["Components"], dtype=np.float64)
    au_basis = np.asarray(mat["Components_e"], dtype=np.float64)
    if "avgModel" in mat:
        template = np.asarray(mat["avgModel"], dtype=np.float64)
        template = template.T if template.shape[0] == 3 and template.shape[1] != 3 else template
    elif template_mesh is not None:
        template = np.asarray(template_mesh[0], dtype=np.float64)
    else:
        raise InputFileError(path, "no 'avgModel' variable: pass the template mesh (--template) as well")
    n = len(template)
    for name, basis in (("Components", id_basis), ("Components_e", au_basis)):
        if basis.ndim != 2 or basis.shape[0] != 3 * n:
            raise InputFileError(path, f"{name} has shape {basis.shape}, expected (3N, K) with N={n}")
    face_key = next((k for k in ("faces", "tri", "triangles") if k in mat), None)
    if face_key is not None:
        faces = np.asarray(mat[face_key], dtype=np.int64)
        faces = (faces.T if faces.shape[0] == 3 and faces.shape[1] != 3 else faces) - 1
    elif template_mesh is not None and len(template_mesh[1]):
        faces = np.asarray(template_mesh[1], dtype=np.int64)
    else:
        faces = np.zeros((0, 3), dtype=np.int64)
    lmk = np.asarray(mat["landmarks_idx"], dtype=np.int64).reshape(-1) - 1
    attrs = {"source": f"released .mat {path.name}"}
    if len(lmk) == 66:
        lmk = np.insert(lmk, [60, 63], [lmk[48], lmk[54]])
        attrs["landmarks_substituted"] = np.array([60, 64])
        log.warning("%s: 66 landmarks; inner mouth corners 60/64 reuse the outer corners 48/54", path)
    if len(lmk) != N_LANDMARKS:
        raise InputFileError(path, f"landmarks_idx has {len(lmk)} entries, expected 68 (or 66)")
    try:
        faces, landmark_faces, bary = vertex_landmark_embedding(lmk, faces, n)
    except ValueError as exc:
        raise InputFileError(path, f"landmarks_idx: {exc}") from exc
    floor = 1e-12
    model = MorphableModel(
        template=template, faces=faces, landmark_faces=landmark_faces, landmark_bary=bary,
        id_basis=id_basis, id_weights=np.maximum(np.asarray(mat["Weights"], dtype=np.float64).reshape(-1), floor),
        au_basis=au_basis, au_weights=np.maximum(np.asarray(mat["Weights_e"], dtype=np.float64).reshape(-1), floor),
        attrs=attrs,
    )
    model.validate(path)
    return model
