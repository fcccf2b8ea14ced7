"""Learning the identity model (PCA) and the AU model (DL-3DMM dictionary) from a :class:`ScanCorpus`.

Identity: the neutral meshes are aligned rigidly (generalised Procrustes, no scale) and optionally moved
into the frame of a reference mesh (the FLAME template), then PCA: ``template`` is their mean, the basis
is the orthonormal principal directions and the weights the variance of each component (the PCA
eigenvalues, the prior the fit divides lambda by). n scans span at most n-1 directions, so the component
count is clamped to n-1 and the weights are floored at a small fraction of the largest, so that
``lambda / w`` stays finite.

AU model (DL-3DMM, Ferrari et al. TMM'17): each sequence's apex-minus-neutral offset (apex rigidly aligned
to its neutral, then rotated into the model's frame with the neutral's rigid alignment) is one signal
``x_i`` of length 3N, without mean subtraction (zero means neutral). A dictionary ``D`` of K unit-norm atoms
and sparse codes ``a_i`` minimise ``sum_i 1/2 ||x_i - D a_i||^2 + lambda1 ||a_i||_1``, solved with
scikit-learn's :class:`~sklearn.decomposition.DictionaryLearning` (coordinate descent, deterministic for a
seed). The atoms are the AU basis; each atom's weight is the mean absolute code over the training
offsets (default) or the code variance.

Sparsity parameter. scikit-learn's batch objective is ``1/2 ||X - A D||_F^2 + alpha ||A||_1`` summed over
samples; SPAMS ``trainDL`` (mode=2, the solver of the Florence code) minimises the mean over samples of
``1/2 ||x - D a||^2 + lambda1 ||a||_1 + lambda2/2 ||a||^2``. Dividing the first by n shows
``alpha == lambda1`` with ``lambda2 = 0``; scikit-learn's lasso coders divide alpha by the signal length
internally and so solve the same per-signal problem. Because lambda1 carries the units of the offsets
(FLAME is in metres, the Florence models in mm), it is set here relative to the data:
``lambda1 = dl_alpha * rms_i ||x_i||``, and the absolute value is stored in the model file
(``au_lambda1``). The papers do not report their lambda1; SLC's SPAMS call uses lambda1 = 1 on mm data.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np

from .corpus import ScanCorpus
from .procrustes import generalised_procrustes, rigid_transform

log = logging.getLogger(__name__)

#: weights below this fraction of the largest weight are raised to it (keeps lambda / w finite)
WEIGHT_FLOOR = 1e-6


@dataclass
class IdentityModel:
    template: np.ndarray  # [N, 3]
    basis: np.ndarray  # [3N, K_id], orthonormal columns
    weights: np.ndarray  # [K_id], variance per component
    aligned_neutrals: np.ndarray  # [S, N, 3] in the template's frame


@dataclass
class AUModel:
    basis: np.ndarray  # [3N, K], unit-norm columns
    weights: np.ndarray  # [K]
    codes: np.ndarray  # [E, K], sparse codes of the training offsets
    lambda1: float  # absolute sparsity weight (SPAMS lambda1 equivalent)


def floor_weights(weights: np.ndarray) -> np.ndarray:
    weights = np.asarray(weights, dtype=np.float64)
    top = float(weights.max()) if weights.size and weights.max() > 0 else 1.0
    return np.maximum(weights, WEIGHT_FLOOR * top)


def learn_identity(neutrals: np.ndarray, n_components: int | None = None,
                   reference: np.ndarray | None = None) -> IdentityModel:
    """PCA identity model of neutral meshes ``[S, N, 3]`` (see the module docstring).

    ``reference`` (``[N, 3]``, e.g. the FLAME template) fixes the coordinate frame of the mean; without it
    the first mesh does. ``n_components`` defaults to S-1 and is clamped to it.
    """
    neutrals = np.asarray(neutrals, dtype=np.float64)
    n_scans = len(neutrals)
    if n_scans < 2:
        raise ValueError(f"an identity model needs at least 2 neutral meshes, got {n_scans}")
    aligned = generalised_procrustes(neutrals)
    if reference is not None:
        rotation, translation = rigid_transform(aligned.mean(axis=0), reference)
        aligned = aligned @ rotation.T + translation
    mean = aligned.mean(axis=0)
    centred = (aligned - mean).reshape(n_scans, -1)
    max_components = n_scans - 1
    if n_components is None:
        n_components = max_components
    elif n_components > max_components:
        log.warning("identity model: %d components requested, %d scans give at most %d; clamping",
                    n_components, n_scans, max_components)
        n_components = max_components
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    variance = singular[:n_components] ** 2 / max(n_scans - 1, 1)
    return IdentityModel(template=mean, basis=vt[:n_components].T.copy(),
                         weights=floor_weights(variance), aligned_neutrals=aligned)


def apex_offsets_in_frame(corpus: ScanCorpus, template: np.ndarray) -> np.ndarray:
    """Apex-minus-neutral offsets ``[E, 3N]``, each rotated into ``template``'s frame.

    The neutral of each sequence is aligned rigidly onto ``template``; its rotation is applied to the
    offset (which is already free of the sequence's own rigid jitter, see ``select_apex``).
    """
    rotation, _ = rigid_transform(corpus.expression_neutral, template)
    offsets = corpus.expression_apex - corpus.expression_neutral
    return (offsets @ np.swapaxes(rotation, -1, -2)).reshape(len(offsets), -1)


def learn_au_dictionary(offsets: np.ndarray, n_atoms: int = 32, dl_alpha: float = 0.05,
                        weight_mode: str = "mean_abs", positive_codes: bool = False,
                        max_iter: int = 200, seed: int = 0) -> AUModel:
    """DL-3DMM AU dictionary of offsets ``[E, 3N]`` (see the module docstring for the objective)."""
    from sklearn.decomposition import DictionaryLearning, sparse_encode

    offsets = np.asarray(offsets, dtype=np.float64)
    if weight_mode not in ("mean_abs", "variance"):
        raise ValueError(f"weight_mode must be 'mean_abs' or 'variance', not {weight_mode!r}")
    if len(offsets) < n_atoms:
        log.warning("AU dictionary: %d atoms from only %d offsets (overcomplete)", n_atoms, len(offsets))
    scale = float(np.sqrt(np.mean(np.sum(offsets**2, axis=1))))
    lambda1 = dl_alpha * scale
    started = time.perf_counter()
    learner = DictionaryLearning(
        n_components=n_atoms, alpha=lambda1, max_iter=max_iter, tol=1e-8, fit_algorithm="cd",
        transform_algorithm="lasso_cd", transform_alpha=lambda1, positive_code=positive_codes,
        random_state=seed,
    )
    learner.fit(offsets)
    atoms = learner.components_.copy()  # [K, 3N], norms <= 1
    norms = np.linalg.norm(atoms, axis=1)
    used = norms > 1e-12
    atoms[used] /= norms[used, None]
    codes = sparse_encode(offsets, atoms, algorithm="lasso_cd", alpha=lambda1, positive=positive_codes, max_iter=2000)
    weights = np.abs(codes).mean(axis=0) if weight_mode == "mean_abs" else codes.var(axis=0)
    log.info("AU dictionary: %d atoms from %d offsets in %.1f s, lambda1=%.3g, mean nonzeros per code %.1f",
             n_atoms, len(offsets), time.perf_counter() - started, lambda1, float((codes != 0).sum(axis=1).mean()))
    return AUModel(basis=atoms.T.copy(), weights=floor_weights(weights), codes=codes, lambda1=lambda1)

