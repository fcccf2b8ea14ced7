"""The authors' released 3DMM, read as shipped: four files, their variable names, their landmark fix-ups.

The release (github lcultrera/Facemorphic_PI, ``3D_data/``) is three MATLAB files, and their scripts
(``deform_3dmm_videos.py``, ``debug_3dmm.py``) read a fourth that is not published:

- ``PCA_D3DFACS_ID_22.mat``: ``Components`` (15069 x 22, identity PCA) and ``Weights`` (22 x 1);
- ``DL_D3DFACS_expr_0.05_32.mat``: ``Components_e`` (15069 x 32, AU dictionary) and ``Weights_e`` (32 x 1);
- ``coma_landmarks.mat``: ``landmarks_idx`` (68 x 1, uint16, 1-based vertex numbers of FLAME's mesh);
- ``template_D3DFACS.mat`` (not published): ``template_n`` (N x 3, the mean face; their fit indexes its
  rows by vertex) and ``f`` (3 x F, 1-based triangles).

Layout, checked in their code and on the data. Rows are xyz interleaved per vertex (rows ``3i..3i+2``
are vertex ``i``): their ``deform_3D_shape_fast`` reshapes ``C alpha`` to ``(3, N)`` in Fortran order and
their ``Matrix_op.reshape`` builds the ``N x 3 x K`` array the same way; on the released AU atoms the
displacements of consecutive vertices correlate (median 0.81) under that reading and not under the
stacked one (-0.03). 15069 = 3 x 5023, FLAME's vertex count, and ``coma_landmarks`` are FLAME (CoMA)
vertices: on FLAME's template they give a symmetric 68-point layout with the outer eye corners 91 mm apart.

Units. The columns are unit vectors (the PCA columns orthonormal, the DL atoms of norm 1), so the
coefficients carry the scale, in the template's unit: the template must be in metres like FLAME and
D3DFACS-in-FLAME. With ``Weights`` as coefficient variances the identity components move vertices by at
most 4-9 mm at one standard deviation and the AU atoms by 0.5-1.6 mm, plausible in metres only (in mm the
whole identity space would span microns). A template whose bounding box is not head-sized in metres is
therefore refused unless ``template_scale`` converts it (0.001 for mm). The 22nd identity component is
numerically zero (norm 5e-7) with weight 3.7e-19: it is kept, since ``lambda / w`` pins its coefficient
to zero exactly as in their fit.

Landmark fix-ups. Their scripts replace two entries of ``landmarks_idx`` before use: the 0-based
positions 17 and 26 (iBUG outer brow ends) get the 1-based vertex numbers 3709 and 695 (then the whole
array is made 0-based); in ``landmarks_idx`` those two points lie on the temples, 2 cm below the
brow ends.
``override_landmarks`` (on by default) applies the same replacement.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from ..errors import InputFileError
from .meshio import read_mesh
from .model import N_LANDMARKS, MorphableModel, read_mat_variables, vertex_landmark_embedding
from .safe_pickle import load_pickle

log = logging.getLogger(__name__)

#: 0-based landmark position -> 1-based vertex number, as their scripts set before using landmarks_idx
AUTHORS_LANDMARK_OVERRIDES = {17: 3709, 26: 695}
#: bounding-box diagonal (model units after ``template_scale``) accepted as a head in metres
HEAD_DIAGONAL_RANGE_M = (0.05, 2.0)


def _mat_variables(path: Path, what: str) -> dict:
    if not path.is_file():
        raise InputFileError(path, f"{what} file not found")
    return read_mat_variables(path)


def _variable(mat: dict, path: Path, name: str) -> np.ndarray:
    if name not in mat:
        raise InputFileError(path, f"missing variable {name!r} (has {sorted(mat)})")
    return np.asarray(mat[name])


def read_basis(path: str | os.PathLike, components_name: str, weights_name: str) -> tuple[np.ndarray, np.ndarray]:
    """``(components [3N, K], weights [K])`` from a released basis file (their variable names).

    Components must be a finite 2-D float array with a multiple of 3 rows; weights ``K x 1`` (or ``1 x K``),
    finite and positive (the fit divides lambda by them).
    """
    path = Path(path)
    mat = _mat_variables(path, "basis .mat")
    components = _variable(mat, path, components_name)
    weights = _variable(mat, path, weights_name)
    if components.ndim != 2 or components.shape[0] % 3 or not np.issubdtype(components.dtype, np.number):
        raise InputFileError(path, f"variable {components_name!r} has shape {components.shape} "
                                   f"{components.dtype}, expected a (3N, K) numeric matrix")
    components = components.astype(np.float64)
    k = components.shape[1]
    if weights.size != k or (weights.ndim == 2 and 1 not in weights.shape) or weights.ndim > 2:
        raise InputFileError(path, f"variable {weights_name!r} has shape {weights.shape}, expected ({k}, 1) "
                                   f"like {components_name!r}'s {k} columns")
    weights = weights.astype(np.float64).reshape(-1)
    if not np.isfinite(components).all():
        raise InputFileError(path, f"variable {components_name!r} has non-finite entries")
    if not (np.isfinite(weights).all() and (weights > 0).all()):
        bad = np.flatnonzero(~(np.isfinite(weights) & (weights > 0)))
        raise InputFileError(path, f"variable {weights_name!r} must be finite and positive (the fit divides "
                                   f"lambda by it); entries {bad.tolist()} are not")
    return components, weights


def read_landmark_indices(path: str | os.PathLike, override: bool = True) -> np.ndarray:
    """The 68 landmark vertices, 0-based, from ``landmarks_idx`` (68 x 1, 1-based), with their fix-ups.

    ``override``: replace positions 17 and 26 as their scripts do (:data:`AUTHORS_LANDMARK_OVERRIDES`).
    """
    path = Path(path)
    mat = _mat_variables(path, "landmark-index .mat")
    raw = _variable(mat, path, "landmarks_idx")
    if raw.size != N_LANDMARKS or (raw.ndim == 2 and 1 not in raw.shape) or raw.ndim > 2:
        raise InputFileError(path, f"variable 'landmarks_idx' has shape {raw.shape}, expected ({N_LANDMARKS}, 1)")
    values = raw.astype(np.float64).reshape(-1)  # uint16 in the release: widen before any arithmetic
    if not (np.isfinite(values).all() and np.all(values == np.round(values)) and values.min() >= 1):
        raise InputFileError(path, "variable 'landmarks_idx' must hold 1-based vertex numbers (integers >= 1)")
    one_based = values.astype(np.int64)
    if override:
        for position, vertex in AUTHORS_LANDMARK_OVERRIDES.items():
            one_based[position] = vertex
    return one_based - 1


def _oriented(array: np.ndarray, path: Path, name: str) -> np.ndarray:
    """An ``(n, 3)`` array from ``(n, 3)`` or MATLAB's ``(3, n)``."""
    if array.ndim != 2 or 3 not in array.shape:
        raise InputFileError(path, f"variable {name!r} has shape {array.shape}, expected (n, 3) or (3, n)")
    return array if array.shape[1] == 3 else array.T


def read_template(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """``(vertices [N, 3], faces [F, 3] 0-based)`` of the mean face, by suffix.

    ``.mat``: the authors' ``template_D3DFACS.mat`` (``template_n`` N x 3 and ``f`` 3 x F, 1-based; either
    orientation; ``avgModel`` is accepted for ``template_n``, ``f`` may be absent). ``.ply``/``.obj``: any
    mesh, e.g. FLAME's ``head_template.obj`` or TF_FLAME's ``template.ply``. ``.pkl``: FLAME's model pickle
    (``v_template``, ``f``), read with the restricted unpickler, which refuses the releases that pickle
    chumpy objects (convert those to .obj/.ply first).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".mat":
        mat = _mat_variables(path, "template .mat")
        name = "template_n" if "template_n" in mat or "avgModel" not in mat else "avgModel"
        vertices = _oriented(_variable(mat, path, name).astype(np.float64), path, name)
        if "f" in mat:
            faces = _oriented(np.asarray(mat["f"]), path, "f").astype(np.int64) - 1
        else:
            faces = np.zeros((0, 3), dtype=np.int64)
    elif suffix == ".pkl":
        if not path.is_file():
            raise InputFileError(path, "FLAME model pickle not found")
        data = load_pickle(path)
        if not isinstance(data, dict) or "v_template" not in data or "f" not in data:
            raise InputFileError(path, "not a FLAME model pickle: needs keys 'v_template' and 'f'")
        vertices = np.asarray(data["v_template"], dtype=np.float64)
        faces = np.asarray(data["f"], dtype=np.int64)
        if vertices.ndim != 2 or vertices.shape[1] != 3 or faces.ndim != 2 or faces.shape[1] != 3:
            raise InputFileError(path, f"v_template {vertices.shape} / f {faces.shape}, expected (N, 3) / (F, 3)")
    else:
        if not path.is_file():
            raise InputFileError(path, "template mesh not found")
        vertices, faces = read_mesh(path)
    if not np.isfinite(vertices).all():
        raise InputFileError(path, "template has non-finite vertex coordinates")
    if faces.size and (faces.min() < 0 or faces.max() >= len(vertices)):
        raise InputFileError(path, f"template faces refer to vertices outside 0..{len(vertices) - 1}")
    return vertices, faces


def load_released_bases(identity_path: str | os.PathLike, au_path: str | os.PathLike,
                        landmarks_path: str | os.PathLike, template_path: str | os.PathLike,
                        override_landmarks: bool = True, template_scale: float = 1.0) -> MorphableModel:
    """A :class:`MorphableModel` from the release's four files (see the module docstring).

    ``template_scale`` multiplies the template's coordinates (0.001 for a template in mm): the bases are in
    metres, and a template that is not head-sized in metres after scaling is refused.
    """
    identity_path, au_path = Path(identity_path), Path(au_path)
    id_basis, id_weights = read_basis(identity_path, "Components", "Weights")
    au_basis, au_weights = read_basis(au_path, "Components_e", "Weights_e")
    landmarks = read_landmark_indices(landmarks_path, override_landmarks)
    vertices, faces = read_template(template_path)
    vertices = vertices * float(template_scale)
    n = len(vertices)
    diagonal = float(np.linalg.norm(vertices.max(axis=0) - vertices.min(axis=0)))
    low, high = HEAD_DIAGONAL_RANGE_M
    if not low <= diagonal <= high:
        raise InputFileError(template_path, f"template bounding box diagonal {diagonal:.4g} after scale "
                                            f"{template_scale:g}: the released bases are in metres (a head is "
                                            f"{low}-{high}); set the template scale (0.001 for mm)")
    for path, name, basis in ((identity_path, "Components", id_basis), (au_path, "Components_e", au_basis)):
        if basis.shape[0] != 3 * n:
            raise InputFileError(path, f"variable {name!r} has {basis.shape[0]} rows, expected 3 x {n} = {3 * n} "
                                       f"for the template's {n} vertices ({template_path})")
    if landmarks.max() >= n:
        raise InputFileError(landmarks_path, f"variable 'landmarks_idx' names vertex {int(landmarks.max()) + 1} "
                                             f"(1-based), the template has {n}")
    faces, landmark_faces, bary = vertex_landmark_embedding(landmarks, faces, n)
    model = MorphableModel(
        template=vertices, faces=faces, landmark_faces=landmark_faces, landmark_bary=bary,
        id_basis=id_basis, id_weights=id_weights, au_basis=au_basis, au_weights=au_weights,
        attrs={"source": f"released bases {identity_path.name}, {au_path.name}, {Path(landmarks_path).name}, "
                         f"{Path(template_path).name}",
               "landmarks_overridden": bool(override_landmarks), "template_scale": float(template_scale)},
    )
    model.validate(template_path)
    log.info("released bases: %d vertices, %d identity components, %d AU atoms", n, id_basis.shape[1],
             au_basis.shape[1])
    return model
