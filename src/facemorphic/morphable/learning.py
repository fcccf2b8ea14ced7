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
``lambda1 = sparsity * rms_i ||x_i||``, and the absolute value is stored in the model file
(``au_lambda1``). The papers do not report their lambda1; SLC's SPAMS call uses lambda1 = 1 on mm data.
"""

from __future__ import annotations

import logging
import time
import warnings
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


def _span_coordinates(signals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates ``[E, r]`` of the rows of ``signals`` ``[E, D]`` in an orthonormal basis ``[r, D]`` of
    their span.

    Computed from the E x E Gram matrix (E << D): one matrix product and a small eigendecomposition, much
    cheaper than a thin SVD of the wide matrix; directions whose singular value is below 1e-6 of the largest
    (which the Gram matrix cannot resolve) carry no energy worth learning and are dropped.
    """
    eigval, eigvec = np.linalg.eigh(signals @ signals.T)
    order = np.argsort(eigval)[::-1]
    eigval, eigvec = eigval[order], eigvec[:, order]
    keep = eigval > 1e-12 * eigval[0]
    singular = np.sqrt(eigval[keep])
    row_space = (signals.T @ eigvec[:, keep] / singular).T
    return eigvec[:, keep] * singular, row_space


def learn_au_dictionary(offsets: np.ndarray, n_atoms: int = 32, sparsity: float = 0.05,
                        weight_mode: str = "mean_abs", positive_codes: bool = False,
                        max_iter: int = 200, seed: int = 0) -> AUModel:
    """DL-3DMM AU dictionary of offsets ``[E, 3N]`` (see the module docstring for the objective)."""
    from sklearn.decomposition import DictionaryLearning, sparse_encode
    from sklearn.exceptions import ConvergenceWarning

    offsets = np.asarray(offsets, dtype=np.float64)
    if weight_mode not in ("mean_abs", "variance"):
        raise ValueError(f"weight_mode must be 'mean_abs' or 'variance', not {weight_mode!r}")
    if len(offsets) < n_atoms:
        log.warning("AU dictionary: %d atoms from only %d offsets (overcomplete)", n_atoms, len(offsets))
    # Learn on offsets scaled to unit RMS norm: the solver tolerances are then meaningful whatever the
    # units (metres give tolerances near 1e-12); codes are scaled back, atoms are unit-norm either way.
    # And learn in the offsets' own span: with X = U S V^T (rank r <= E << 3N), the optimal atoms lie in
    # the row space of X, and V is an isometry, so learning on the r coordinates U S and mapping the atoms
    # back with V^T solves the same problem exactly, r instead of 3N features per signal.
    scale = float(np.sqrt(np.mean(np.sum(offsets**2, axis=1))))
    lambda1 = sparsity * scale
    coords, row_space = _span_coordinates(offsets / scale)
    started = time.perf_counter()
    learner = DictionaryLearning(
        n_components=n_atoms, alpha=sparsity, max_iter=max_iter, tol=1e-6, fit_algorithm="cd",
        positive_code=positive_codes, random_state=seed,
    )
    with warnings.catch_warnings(record=True) as caught:
        # the inner lasso solves of each iteration may stop at their own iteration cap; the dictionary's
        # convergence (n_iter_ < max_iter) is what matters and is logged below
        warnings.simplefilter("always", ConvergenceWarning)
        learner.fit(coords)
    inner_warnings = sum(issubclass(w.category, ConvergenceWarning) for w in caught)
    if learner.n_iter_ >= max_iter:
        log.warning("AU dictionary did not converge in %d iterations (raise --dl-max-iter)", max_iter)
    reduced = learner.components_.copy()  # [K, r], norms <= 1
    norms = np.linalg.norm(reduced, axis=1)
    used = norms > 1e-12
    reduced[used] /= norms[used, None]
    codes = scale * sparse_encode(coords, reduced, algorithm="lasso_lars", alpha=sparsity, positive=positive_codes)
    atoms = reduced @ row_space  # [K, 3N], unit norm (orthonormal rows)
    weights = np.abs(codes).mean(axis=0) if weight_mode == "mean_abs" else codes.var(axis=0)
    log.info("AU dictionary: %d atoms from %d offsets in %.1f s (%d iterations, %d inner lasso caps), "
             "lambda1=%.3g, mean nonzeros per code %.1f", n_atoms, len(offsets), time.perf_counter() - started,
             learner.n_iter_, inner_warnings, lambda1, float((codes != 0).sum(axis=1).mean()))
    return AUModel(basis=atoms.T.copy(), weights=floor_weights(weights), codes=codes, lambda1=lambda1)

