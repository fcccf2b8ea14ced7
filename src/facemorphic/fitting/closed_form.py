"""Closed-form landmark fitting of a linear shape model, batched over frames.

Per frame (DESIGN.md, "The 3DMM, in brief"): the model's landmarks ``M`` (L x 3) and the detected 2D
landmarks ``l`` (L x 2) give the affine camera from centred points, ``A = l~^T M~ (M~^T M~)^-1`` (2 x 3,
the least-squares ``l~^T pinv(M~^T)``) and ``t = mean(l) - A mean(M)``; with ``Y`` the basis at the
landmarks projected by ``A`` (column k = ``vec(C~_k A^T)``) and the residual ``X = vec(l - (M A^T + t))``,
the coefficients are the ridge solution ``alpha = (Y^T Y + diag(lambda / w))^-1 Y^T X``.
Rounds re-estimate the camera on the deformed landmarks ``M + C alpha`` and add a further increment to
``alpha``; the returned coefficients are the **sum** of the increments (the Florence code returned only
the last increment while deforming the shape with the sum). After the last round the camera is estimated
once more on the final shape, and that camera and the residual it leaves (RMS over the landmarks used, in
pixels) are reported, so camera, shape and residual are consistent.

Update rule of the rounds (``FitOptions.update``):

- ``"authors"``: the fit of the authors' ``_3DMM.py`` (``opt_3DMM_fast`` / ``alphaEstimation``, used by
  their ``deform_3dmm_videos.py``), reproduced exactly. Every round solves ``(Y^T Y + R) d = Y^T X`` on the
  current residual, with two differences from the equations above, both in ``Y``: (1) each projected
  component includes the translation, column k is ``vec(C_k A^T + t)`` (their ``getProjectedVertex``
  applied to a component), and (2) ``C_k`` is the basis at the landmarks as it is, not centred over them.
  ``X`` is centred per image axis (``t`` is the least-squares translation), so ``Y^T X`` is the same
  with or without them; the normal matrix is not: with ``u_k = A mean(C_k) + t`` (2-vector, pixels),
  ``Y^T Y = Y~^T Y~ + L U^T U``. Because ``t`` is about where the face is in the image (hundreds of
  pixels) and nearly the same for every ``k``, this rank-2 term is a strong extra penalty on (roughly)
  the sum of the coefficients, whose size depends on the face's position in the frame, not on the face.
  Their rounds (their scripts run 0) add each increment to the shape and return the last increment
  only; here the coefficients are the sum of the increments, so ``template + C alpha`` is their
  ``defShape``, and with ``rounds=0`` ``alpha`` is their ``alpha``.
- ``"projected"`` (default), the corrected rule: ``Y`` without the translation and with the basis
  centred over the landmarks (``Y~``: an uncentred ``Y`` puts a penalty on deformations that move the
  landmarks' centroid, which the translation absorbs anyway), and each round is a Gauss-Newton step of the
  problem with the camera eliminated (variable projection, Kaufman's approximation): ``Y~`` is replaced by
  ``(I - P) Y~`` where ``P`` projects each image axis onto the span of ``M~`` (what a camera re-fit can
  absorb), and the prior is kept on the total, ``(Y~^T (I - P) Y~ + R) d = Y~^T X - R alpha``
  (``P X = 0`` already, the residual of a least-squares camera). It converges in one or two rounds to
  the regularised optimum. With ``rounds=0`` and without the two differences above, the authors' rule
  and this one differ only by the ``- Y~^T P Y~`` term.

Effect, measured on synthetic landmarks: the released AU dictionary (32 atoms) on FLAME's template, all
68 landmarks, 400 frames with sparse random coefficients (30% active, standard deviation ``sqrt(w)``),
affine cameras of 1500-3000 px/m with yaw/pitch up to about 0.3 rad and the face about (640, 360) px.
Coefficient error ``mean ||alpha - truth|| / mean ||truth||`` (authors | without ``t`` | without ``t``
and centred | projected):

- no noise, lambda 0.01, 1 round: 1.84 | 1.92 | 1.60 | 0.09 (0.001 at lambda 1e-4);
- no noise, lambda 1, 1 round: 0.87 | 0.84 | 0.76 | 0.67;
- 1 px noise, lambda 1, 1 round: 1.37 | 1.36 | 1.32 | 0.97 (1 px leaves little of 32 coefficients
  from 68 points with either rule);
- lambda 100 (their video script's setting): 0.93-0.96 for all four, the prior shrinks everything.

So the translation and the missing centring change the coefficients (at lambda >= 1 the authors' rule
differs from the projected one by 50-130% of the coefficients' mean size), but most of the authors' error
comes from the alternation itself: their camera re-fit absorbs part of every step, which the projected
rule removes.

With ``normalise_scale`` the residual and ``Y`` are divided by the camera scale ``s = ||A||_F / sqrt(2)``
(pixels per model unit), which makes lambda independent of the image resolution; it equals using
``s^2 lambda / w`` as the regulariser (for either rule).

Speed. Only the 2x3 camera changes from frame to frame, so nothing of size L is touched per frame
except one product of the (centred) landmark basis with the landmarks, ``Q = C~^T l`` (one GEMM for all
frames). With ``G_ab = C~_a^T C~_b`` (3x3 blocks of K x K Gram matrices), ``F = C~^T M~`` and
``H = M~^T M~`` computed once:

- ``Y^T Y = sum_{a,b} (A^T A)_ab G_ab`` (six distinct K x K terms),
- ``Y^T X = sum_{a,r} A_ra Q_a,r - sum_{a,b} (A^T A)_ab F_a,b``,
- ``Y^T P Y = sum_r Z_r H^-1 Z_r^T`` with ``Z_r = sum_a A_ra F_a`` (K x 3),
- for deformed landmarks ``M~ + C~ alpha``: ``l~^T M~`` gains ``Q alpha``, ``F`` gains ``G alpha`` and
  ``H`` gains ``F alpha`` terms and ``alpha^T G alpha``,
- the authors' rule adds ``L U^T U`` with ``U = A (mean(C) - mean(M)) + mean(l)`` (2 x K per frame),

so a frame costs a few K x K products and one K x K Cholesky solve (fused in a numba kernel).
:func:`fit_frames_reference` is the plain per-frame version in the style of the authors' code (camera by
pseudo-inverse, one projection per component, an explicit inverse); tests check the two agree, the
benchmark compares their speed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from ..errors import FacemorphicError
from .options import UPDATE_RULES  # the rule names of :class:`FitOptions`, declared once with the option

#: the distinct entries (a, b), a <= b, of the symmetric 3x3 matrix A^T A
_PAIRS = ((0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2))


@dataclass
class FitOptions:
    """Ridge weight, rounds of pose re-estimation, lambda's units and the update rule.

    ``update="authors"``: the authors' ``_3DMM.py`` fit, every round solving ``(Y^T Y + R) d = Y^T X``
    with ``Y`` the uncentred basis projected with the translation. ``update="projected"`` (default): every
    round solves ``(Y~^T (I - P) Y~ + R) d = Y~^T X - R alpha`` with the centred basis projected without
    translation and ``P`` the projection onto what the camera re-fit absorbs; see the module docstring.
    """

    lam: float = 1.0
    rounds: int = 1
    normalise_scale: bool = False
    update: str = "projected"

    def __post_init__(self):
        if self.update not in UPDATE_RULES:
            raise FacemorphicError(f"fitting.update: unknown update rule {self.update!r}, expected one of "
                                   f"{list(UPDATE_RULES)}")


@dataclass
class FitResult:
    alpha: np.ndarray  # [T, K]
    camera: np.ndarray  # [T, 2, 4]: [A | t]
    residual: np.ndarray  # [T] RMS reprojection error over the landmarks used


class LandmarkBasis:
    """A basis at L landmarks (``[L, 3, K]``) with its per-frame-independent products precomputed."""

    def __init__(self, basis: np.ndarray, weights: np.ndarray):
        basis = np.asarray(basis, dtype=np.float64)
        self.n_landmarks, _, self.n_components = basis.shape
        self.weights = np.asarray(weights, dtype=np.float64)
        self.basis = basis
        self.mean = basis.mean(axis=0)  # [3, K]: centroid shift of each component
        self.centred = basis - self.mean
        k = self.n_components
        # C~ as [3K, L] (row a*K + k), for Q = C~^T l in one GEMM
        self.rows = np.ascontiguousarray(self.centred.transpose(1, 2, 0).reshape(3 * k, self.n_landmarks))
        gram = np.einsum("lak,lbj->abkj", self.centred, self.centred)  # G[a, b, k, j]
        # the six distinct symmetric terms: off-diagonal pairs enter twice (G_ab + G_ba)
        self.gram6_square = np.stack([gram[a, b] if a == b else gram[a, b] + gram[b, a] for a, b in _PAIRS])
        # alpha -> (G alpha)[k, a, b] = sum_j G[a, b, k, j] alpha_j, as one product with [K(j), K*9]
        self.gram_by_j = np.ascontiguousarray(gram.transpose(3, 2, 0, 1).reshape(k, 9 * k))


@numba.njit(cache=True, fastmath=True)
def _solve_round(a_mat, f, h_inv, b6, gram6, reg, rhs, alpha, projected, offsets,
                 n_landmarks):  # pragma: no cover (compiled)
    """One round's increment for every frame: assemble the K x K normal matrix and solve it by Cholesky.

    Per frame: ``N = sum_m b6[m] gram6[m] + diag(reg)``; for the projected update also
    ``N -= Z H^-1 Z^T`` with ``Z[k, (r, b)] = sum_a A[r, a] F[k, a, b]`` and ``rhs -= reg * alpha``; for
    the authors' update ``N += n_landmarks U^T U`` with ``U = offsets[t]`` (2 x K: each component's
    projected centroid plus the translation, what their uncentred ``Y`` with ``t`` adds to every row).
    Hand-written in numba because numpy would do this with a per-matrix LAPACK LU (its batched
    ``solve``) and several [T, K, ...] temporaries of tiny matrix products; fused, each normal matrix is
    built in a cache-resident buffer and factorised by LAPACK's Cholesky (the system is symmetric
    positive definite), several times faster.
    """
    n, k = rhs.shape
    n_terms = gram6.shape[0]
    gram_flat = gram6.reshape(n_terms, k * k)
    out = np.empty((n, k))
    flat = np.empty(k * k)
    z = np.empty((k, 6))
    z_h = np.empty((k, 6))
    b_vec = np.empty(k)
    y = np.empty(k)
    for t in range(n):
        coef = b6[t, 0]
        for e in range(k * k):
            flat[e] = coef * gram_flat[0, e]
        for m in range(1, n_terms):
            coef = b6[t, m]
            for e in range(k * k):
                flat[e] += coef * gram_flat[m, e]
        normal = flat.reshape(k, k)
        for i in range(k):
            b_vec[i] = rhs[t, i]
        if projected:
            for j in range(k):
                for r in range(2):
                    for c in range(3):
                        acc = 0.0
                        for a in range(3):
                            acc += a_mat[t, r, a] * f[t, j, a, c]
                        z[j, 3 * r + c] = acc
                for r in range(2):
                    for c in range(3):
                        acc = 0.0
                        for a in range(3):
                            acc += z[j, 3 * r + a] * h_inv[t, a, c]
                        z_h[j, 3 * r + c] = acc
            for i in range(k):
                for j in range(k):
                    acc = 0.0
                    for m in range(6):
                        acc += z_h[i, m] * z[j, m]
                    normal[i, j] -= acc
                b_vec[i] -= reg[t, i] * alpha[t, i]
        else:
            for i in range(k):
                for j in range(k):
                    normal[i, j] += n_landmarks * (offsets[t, 0, i] * offsets[t, 0, j]
                                                   + offsets[t, 1, i] * offsets[t, 1, j])
        for i in range(k):
            normal[i, i] += reg[t, i]
        low = np.linalg.cholesky(normal)
        for i in range(k):  # forward substitution, L y = b
            acc = b_vec[i]
            for p in range(i):
                acc -= low[i, p] * y[p]
            y[i] = acc / low[i, i]
        for i in range(k - 1, -1, -1):  # back substitution, L^T x = y
            acc = y[i]
            for p in range(i + 1, k):
                acc -= low[p, i] * out[t, p]
            out[t, i] = acc / low[i, i]
    return out


def _camera(cross: np.ndarray, gram_m: np.ndarray) -> np.ndarray:
    """A = (l~^T M~) (M~^T M~)^-1 for stacks ``cross`` [T, 2, 3] and ``gram_m`` [T, 3, 3] (or [3, 3])."""
    return np.linalg.solve(gram_m, np.swapaxes(cross, -1, -2)).swapaxes(-1, -2) if gram_m.ndim == 3 \
        else cross @ np.linalg.inv(gram_m)


def fit_frames(landmarks: np.ndarray, template: np.ndarray, basis: LandmarkBasis,
               options: FitOptions = FitOptions(), chunk: int = 512) -> FitResult:
    """Fit every frame of ``landmarks`` ``[T, L, 2]`` (all finite) to ``template`` ``[L, 3]`` + ``basis``."""
    landmarks = np.asarray(landmarks, dtype=np.float64)
    n_frames = len(landmarks)
    k = basis.n_components
    alpha = np.empty((n_frames, k))
    camera = np.empty((n_frames, 2, 4))
    residual = np.empty(n_frames)
    template = np.asarray(template, dtype=np.float64)
    template_mean = template.mean(axis=0)
    m0 = template - template_mean
    f0 = np.einsum("lak,lb->akb", basis.centred, m0)  # [3, K, 3]
    h0 = m0.T @ m0
    inv_w = 1.0 / basis.weights
    for start in range(0, n_frames, chunk):
        sl = slice(start, min(start + chunk, n_frames))
        a_, c_, r_ = _fit_chunk(landmarks[sl], m0, template_mean, f0, h0, basis, inv_w, options)
        alpha[sl], camera[sl], residual[sl] = a_, c_, r_
    return FitResult(alpha=alpha, camera=camera, residual=residual)


def _fit_chunk(lmk, m0, template_mean, f0, h0, basis: LandmarkBasis, inv_w, options: FitOptions):
    # Layouts (all batched matmuls, no per-frame Python): q[t, k, a, r] = sum_l C~[l, a, k] l[t, l, r];
    # f[t, k, a, b] = sum_l C~[l, a, k] M~[t, l, b]; h[t] = M~^T M~; cross[t] = l~^T M~ ; A [t, 2, 3].
    n, n_lmk, _ = lmk.shape
    k = basis.n_components
    lmk_mean = lmk.mean(axis=1)  # [T, 2]
    centred = lmk - lmk_mean[:, None, :]
    q = (basis.rows @ centred.transpose(1, 0, 2).reshape(n_lmk, 2 * n)).reshape(3, k, n, 2)
    q = np.ascontiguousarray(q.transpose(2, 1, 0, 3)).reshape(n, k, 6)  # [t, k, (a, r)]
    p0 = np.swapaxes(centred, 1, 2) @ m0  # l~^T M~0 : [T, 2, 3]
    f0k = np.ascontiguousarray(f0.transpose(1, 0, 2))  # [K, 3, 3]: F0[k, a, b]
    f0_flat = f0k.reshape(k, 9)
    alpha = np.zeros((n, k))
    reg_base = options.lam * inv_w
    for round_index in range(options.rounds + 2):
        if round_index == 0:
            cross, gram_m, f = p0, h0, np.broadcast_to(f0k, (n, k, 3, 3))
        else:
            g_alpha = (alpha @ basis.gram_by_j).reshape(n, k, 3, 3)  # (G alpha)[t, k, a, b]
            f = f0k + g_alpha
            cross = p0 + (alpha[:, None, :] @ q).reshape(n, 3, 2).transpose(0, 2, 1)
            f0_alpha = (alpha @ f0_flat).reshape(n, 3, 3)
            alpha_g_alpha = (alpha[:, None, :] @ g_alpha.reshape(n, k, 9)).reshape(n, 3, 3)
            gram_m = h0 + f0_alpha + f0_alpha.transpose(0, 2, 1) + alpha_g_alpha
        a_mat = _camera(cross, gram_m)  # [T, 2, 3]
        if round_index == options.rounds + 1:
            break  # final camera on the final shape
        b = np.swapaxes(a_mat, 1, 2) @ a_mat  # A^T A : [T, 3, 3]
        b6 = np.stack([b[:, i, j] for i, j in _PAIRS], axis=1)  # [T, 6]
        a_t = np.swapaxes(a_mat, 1, 2).reshape(n, 6, 1)  # A[t, r, a] at (a, r)
        if round_index == 0:
            rhs = (q @ a_t)[..., 0] - b.reshape(n, 9) @ f0_flat.T
        else:
            rhs = (q @ a_t)[..., 0] - (f.reshape(n, k, 9) @ b.reshape(n, 9, 1))[..., 0]
        reg = np.broadcast_to(reg_base, (n, k))
        if options.normalise_scale:
            reg = reg * (np.einsum("trc,trc->t", a_mat, a_mat) / 2.0)[:, None]
        h_inv = np.broadcast_to(np.linalg.inv(gram_m), (n, 3, 3))
        projected = options.update == "projected"
        if projected:
            offsets = np.zeros((n, 2, k))
        else:  # U = A (mean(C) - mean(M)) + mean(l): projected component centroids plus the translation t
            shape_mean = template_mean + alpha @ basis.mean.T
            offsets = a_mat @ (basis.mean[None] - shape_mean[:, :, None]) + lmk_mean[:, :, None]
        alpha += _solve_round(a_mat, f, h_inv, b6, basis.gram6_square, np.ascontiguousarray(reg), rhs, alpha,
                              projected, offsets, float(n_lmk))
    shape = m0[None] + (alpha @ basis.centred.transpose(2, 0, 1).reshape(k, -1)).reshape(n, n_lmk, 3)
    diff = centred - shape @ np.swapaxes(a_mat, 1, 2)
    residual = np.sqrt(np.einsum("tlr,tlr->t", diff, diff) / n_lmk)
    shape_mean = template_mean + alpha @ basis.mean.T  # uncentred centroid of the deformed landmarks
    translation = lmk_mean - (a_mat @ shape_mean[:, :, None])[..., 0]
    camera = np.concatenate([a_mat, translation[:, :, None]], axis=2)
    return alpha, camera, residual


def fit_frames_reference(landmarks: np.ndarray, template: np.ndarray, basis: np.ndarray, weights: np.ndarray,
                         options: FitOptions = FitOptions()) -> FitResult:
    """The same fit, frame by frame, written the obvious way (the authors' style); a test/benchmark reference.

    ``basis`` is ``[L, 3, K]``. Per frame: camera by pseudo-inverse, ``Y`` built one projected component at a
    time (for the authors' rule the uncentred component plus the translation, for the projected rule the
    centred component without it), the normal matrix inverted explicitly.
    """
    landmarks = np.asarray(landmarks, dtype=np.float64)
    n_frames, n_lmk, _ = landmarks.shape
    k = basis.shape[2]
    centred_basis = basis - basis.mean(axis=0)
    alphas, cameras, residuals = np.empty((n_frames, k)), np.empty((n_frames, 2, 4)), np.empty(n_frames)
    for t in range(n_frames):
        lmk = landmarks[t]
        alpha = np.zeros(k)
        for _ in range(options.rounds + 1):
            shape = template + basis @ alpha
            a_mat, trans = _camera_pinv(lmk, shape)
            x = (lmk - (shape @ a_mat.T + trans)).reshape(-1)
            y = np.empty((2 * n_lmk, k))
            for j in range(k):
                if options.update == "authors":
                    y[:, j] = (basis[:, :, j] @ a_mat.T + trans).reshape(-1)
                else:
                    y[:, j] = (centred_basis[:, :, j] @ a_mat.T).reshape(-1)
            reg = options.lam / weights
            if options.normalise_scale:
                reg = reg * (np.sum(a_mat**2) / 2.0)
            rhs = y.T @ x
            if options.update == "projected":
                shape_c = shape - shape.mean(axis=0)
                projector = shape_c @ np.linalg.pinv(shape_c)  # onto the camera's range, per image axis
                per_axis = y.reshape(n_lmk, 2, k)
                y = (per_axis - np.einsum("lm,mrk->lrk", projector, per_axis)).reshape(2 * n_lmk, k)
                rhs = rhs - reg * alpha
            alpha = alpha + np.linalg.inv(y.T @ y + np.diag(reg)) @ rhs
        shape = template + basis @ alpha
        a_mat, trans = _camera_pinv(lmk, shape)
        diff = lmk - (shape @ a_mat.T + trans)
        alphas[t] = alpha
        cameras[t] = np.concatenate([a_mat, trans[:, None]], axis=1)
        residuals[t] = np.sqrt(np.sum(diff**2) / n_lmk)
    return FitResult(alpha=alphas, camera=cameras, residual=residuals)


def _camera_pinv(lmk: np.ndarray, shape: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lmk_c = lmk - lmk.mean(axis=0)
    shape_c = shape - shape.mean(axis=0)
    a_mat = lmk_c.T @ np.linalg.pinv(shape_c.T)
    return a_mat, lmk.mean(axis=0) - a_mat @ shape.mean(axis=0)
