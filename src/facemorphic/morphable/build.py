"""From corpora on disk to a :class:`MorphableModel` (the work behind ``facemorphic morphable``)."""

from __future__ import annotations

import logging
import os
import time

import numpy as np

from ..errors import FacemorphicError, InputFileError
from .corpus import ScanCorpus, load_d3dfacs, load_vocaset
from .learning import apex_offsets_in_frame, learn_au_dictionary, learn_identity
from .model import MorphableModel

log = logging.getLogger(__name__)


def load_corpus(d3dfacs: str | os.PathLike, vocaset: str | os.PathLike | None = None) -> ScanCorpus:
    """D3DFACS (neutrals + AU sequences) merged with VOCASET's templates (more neutrals), when given."""
    corpus = load_d3dfacs(d3dfacs)
    if vocaset is not None:
        voca, _ = load_vocaset(vocaset)
        if voca.n_vertices != corpus.n_vertices:
            raise InputFileError(vocaset, f"VOCASET meshes have {voca.n_vertices} vertices, "
                                          f"D3DFACS {corpus.n_vertices}")
        corpus = corpus.merge(voca)
    return corpus


def learn_morphable_model(corpus: ScanCorpus, embedding: tuple[np.ndarray, np.ndarray],
                template_mesh: tuple[np.ndarray, np.ndarray] | None = None, n_id: int | None = None,
                n_au: int = 32, sparsity: float = 0.05, au_weight_mode: str = "mean_abs",
                positive_codes: bool = False, dl_max_iter: int = 200, seed: int = 0):
    """Learn both models; returns ``(model, au)`` where ``au`` keeps the training codes (for the figure)."""
    reference = None
    faces = corpus.faces
    if template_mesh is not None:
        reference, template_faces = template_mesh
        if len(reference) != corpus.n_vertices:
            raise FacemorphicError(f"template mesh has {len(reference)} vertices, the scans {corpus.n_vertices}")
        faces = template_faces if len(template_faces) else faces
    if not len(faces):
        raise FacemorphicError("no triangles: neither the template mesh nor the scans have faces")
    started = time.perf_counter()
    identity = learn_identity(corpus.neutral_vertices, n_id, reference)
    offsets = apex_offsets_in_frame(corpus, identity.template)
    au = learn_au_dictionary(offsets, n_au, sparsity, au_weight_mode, positive_codes, dl_max_iter, seed)
    landmark_faces, landmark_bary = embedding
    if int(landmark_faces.max()) >= len(faces):
        raise FacemorphicError(f"landmark embedding refers to face {int(landmark_faces.max())}, "
                               f"the mesh has {len(faces)}")
    model = MorphableModel(
        template=identity.template, faces=faces, landmark_faces=landmark_faces, landmark_bary=landmark_bary,
        id_basis=identity.basis, id_weights=identity.weights, au_basis=au.basis, au_weights=au.weights,
        attrs={
            "source": "learned", "n_neutrals": len(corpus.neutral_vertices),
            "n_sequences": len(offsets), "au_lambda1": au.lambda1, "sparsity": sparsity,
            "au_weight_mode": au_weight_mode, "positive_codes": positive_codes, "seed": seed,
            "learning_seconds": time.perf_counter() - started,
        },
    )
    return model, au

