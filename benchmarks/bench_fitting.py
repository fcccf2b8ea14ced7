"""Benchmark of the 3DMM stage, printed as JSON lines.

* Fitting: frames per second of the batched closed-form fit (K=32 atoms, 68 landmarks, BLAS pinned to one
  thread with threadpoolctl; the numba kernel is single-threaded) against, in the same run, a plain
  per-frame implementation in the style of the authors' code (camera by pseudo-inverse per frame, one
  projection per component, an explicit inverse), and the ratio. The reference runs the authors' update
  rule; the batched fit is timed with that same rule (same algorithm, ratio = speed-up of the batching
  and the algebra) and with the pipeline's default projected rule. The results are checked equal.
* Learning: wall time of loading and learning the models from a synthetic scan corpus
  (``facemorphic.synthetic``), and the dictionary learning alone against scikit-learn's on the full
  3N-dimensional offsets (the baseline the span reduction in ``learn_au_dictionary`` avoids).

Usage: python benchmarks/bench_fitting.py [--frames 20000] [--reference-frames 1000] [--no-learning]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from facemorphic.fitting.closed_form import FitOptions, LandmarkBasis, fit_frames, fit_frames_reference


def emit(name: str, value: float, unit: str, **extra) -> None:
    print(json.dumps({"name": name, "value": float(f"{float(value):.6g}"), "unit": unit, **extra}), flush=True)


def fitting_problem(n_frames: int, n_landmarks: int = 68, k: int = 32, seed: int = 0):
    """Landmarks of a face-sized random model under random affine cameras, with 1 px detector noise."""
    rng = np.random.default_rng(seed)
    template = rng.normal(size=(n_landmarks, 3)) * 0.05  # metres
    basis = rng.normal(size=(n_landmarks, 3, k)) * 0.01
    weights = rng.uniform(5e-4, 2e-3, k)
    alpha = rng.laplace(scale=1e-3, size=(n_frames, k)) * (rng.random((n_frames, k)) < 0.2)
    yaw = rng.normal(scale=0.3, size=n_frames)
    cams = np.zeros((n_frames, 2, 3))
    cams[:, 0, 0], cams[:, 0, 2], cams[:, 1, 1] = np.cos(yaw), np.sin(yaw), -1.0
    cams *= 1500.0
    shapes = template + np.einsum("lck,tk->tlc", basis, alpha)
    landmarks = np.einsum("trc,tlc->tlr", cams, shapes) + np.array([320.0, 240.0])
    return landmarks + rng.normal(size=landmarks.shape), template, basis, weights


def best_rate(fn, n_frames: int, repeats: int) -> float:
    best = np.inf
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return n_frames / best


def bench_fitting(n_frames: int, n_reference: int, repeats: int) -> None:
    landmarks, template, basis, weights = fitting_problem(n_frames)
    lmk_basis = LandmarkBasis(basis, weights)
    fit_frames(landmarks[:8], template, lmk_basis)  # compile the numba kernel outside the timing
    for rounds in (0, 1):
        authors = FitOptions(lam=1.0, rounds=rounds, update="authors")
        default = FitOptions(lam=1.0, rounds=rounds)
        batched = fit_frames(landmarks[:n_reference], template, lmk_basis, authors)
        reference = fit_frames_reference(landmarks[:n_reference], template, basis, weights, authors)
        context = {"K": 32, "landmarks": 68, "rounds": rounds, "blas_threads": 1}
        emit("fit_batched_vs_reference_max_abs_diff", np.abs(batched.alpha - reference.alpha).max(), "coefficient",
             max_abs_coefficient=float(np.abs(reference.alpha).max()), **context)
        reference_rate = best_rate(
            lambda: fit_frames_reference(landmarks[:n_reference], template, basis, weights, authors), n_reference, 1)
        authors_rate = best_rate(lambda: fit_frames(landmarks, template, lmk_basis, authors), n_frames, repeats)
        default_rate = best_rate(lambda: fit_frames(landmarks, template, lmk_basis, default), n_frames, repeats)
        emit("fit_reference_per_frame_authors_update", reference_rate, "frames/s", **context)
        emit("fit_batched_authors_update", authors_rate, "frames/s", **context)
        emit("fit_batched_projected_update", default_rate, "frames/s", default=(rounds == 1), **context)
        emit("fit_ratio_batched_vs_reference_same_update", authors_rate / reference_rate, "x", rounds=rounds)
        emit("fit_ratio_projected_vs_reference", default_rate / reference_rate, "x", rounds=rounds)


def bench_learning() -> None:
    try:
        from facemorphic.synthetic.corpus import CorpusOptions, generate_corpus
    except ImportError:
        emit("morphable_learning_skipped", 0, "", reason="facemorphic.synthetic not available")
        return
    from sklearn.decomposition import DictionaryLearning

    from facemorphic.morphable.build import learn_morphable_model, load_corpus
    from facemorphic.morphable.learning import apex_offsets_in_frame
    from facemorphic.morphable.meshio import read_mesh
    from facemorphic.morphable.model import load_landmark_embedding

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        generate_corpus(out, seed=0, options=CorpusOptions())
        started = time.perf_counter()
        corpus = load_corpus(out / "d3dfacs", out / "vocaset")
        emit("morphable_corpus_load", time.perf_counter() - started, "s",
             sequences=len(corpus.expression_codes), neutrals=len(corpus.neutral_vertices),
             vertices=corpus.n_vertices)
        started = time.perf_counter()
        model, au = learn_morphable_model(corpus, load_landmark_embedding(out / "landmark_embedding.pkl"),
                                read_mesh(out / "template.ply"))
        emit("morphable_learn_identity_and_au", time.perf_counter() - started, "s", atoms=au.basis.shape[1])
        offsets = apex_offsets_in_frame(corpus, model.template)
        unit = offsets / np.sqrt(np.mean(np.sum(offsets**2, axis=1)))
        started = time.perf_counter()
        DictionaryLearning(n_components=32, alpha=0.05, max_iter=200, tol=1e-6, fit_algorithm="cd",
                           random_state=0).fit(unit)
        baseline = time.perf_counter() - started
        started = time.perf_counter()
        from facemorphic.morphable.learning import learn_au_dictionary

        learn_au_dictionary(offsets, seed=0)
        ours = time.perf_counter() - started
        emit("au_dictionary_sklearn_full_dimension", baseline, "s")
        emit("au_dictionary_span_reduced", ours, "s")
        emit("au_dictionary_ratio", baseline / ours, "x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=20000)
    parser.add_argument("--reference-frames", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-learning", action="store_true")
    args = parser.parse_args()
    with threadpool_limits(limits=1):
        bench_fitting(args.frames, args.reference_frames, args.repeats)
        if not args.no_learning:
            bench_learning()


if __name__ == "__main__":
    main()
