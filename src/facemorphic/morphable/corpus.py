"""Scan corpora for learning the shape models, loaded into one in-memory :class:`ScanCorpus`.

Sources (all in FLAME topology, metres; none is bundled because all are licence-gated):

- D3DFACS registered to FLAME: ``<root>/<Subject>/<AUcode>/<AUcode>_<frame>.ply``. The AU codes are the
  folder name's tokens joined by ``+``; a token may carry a side letter and an intensity letter
  (``L12``, ``12C``), parsed with ``[LR]?\\d+[A-E]?``. Frame numbers do not start at 0 and are sorted
  numerically. The first frame is the neutral face; the apex is the frame farthest from it (mean vertex
  distance) after rigidly aligning each frame onto the neutral one, since registrations carry small rigid
  jitter that would otherwise be taken for expression.
- VOCASET training data: ``templates.pkl`` (the subjects' neutral identity meshes), ``subj_seq_to_idx.pkl``
  (subject -> sentence -> frame -> row of ``data_verts.npy``) and ``data_verts.npy`` (several GB, opened
  memory-mapped and never read whole). VOCASET is speech without AU labels, so only its templates feed
  the models; the sequences stay available through :class:`VocasetSequences`.
- The synthetic corpus of ``facemorphic.synthetic`` uses the same two layouts.

The corpus keeps, per subject, one neutral mesh (for the identity model) and, per expression sequence,
the neutral and apex meshes with the sequence's AU labels (for the AU model).
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputFileError
from .meshio import read_ply
from .procrustes import rigid_align, robust_rigid_align
from .safe_pickle import load_pickle

log = logging.getLogger(__name__)

AU_TOKEN = re.compile(r"^([LR]?)(\d+)([A-E]?)$")


@dataclass
class ScanCorpus:
    """Meshes of one topology: neutral faces per subject and (neutral, apex) pairs per AU sequence.

    ``neutral_vertices`` is ``[S, N, 3]`` (one row per entry of ``neutral_subjects``);
    ``expression_neutral``/``expression_apex`` are ``[E, N, 3]`` with the apex already rigidly aligned to
    its neutral; ``expression_aus`` holds each sequence's AU numbers (side/intensity letters dropped) and
    ``expression_codes`` the raw folder name.
    """

    faces: np.ndarray
    neutral_subjects: list[str] = field(default_factory=list)
    neutral_sources: list[str] = field(default_factory=list)
    neutral_vertices: np.ndarray | None = None
    expression_subjects: list[str] = field(default_factory=list)
    expression_codes: list[str] = field(default_factory=list)
    expression_aus: list[tuple[int, ...]] = field(default_factory=list)
    expression_neutral: np.ndarray | None = None
    expression_apex: np.ndarray | None = None
    expression_apex_frame: list[int] = field(default_factory=list)

    @property
    def n_vertices(self) -> int:
        arrays = [a for a in (self.neutral_vertices, self.expression_neutral) if a is not None]
        return arrays[0].shape[1] if arrays else 0

    def merge(self, other: "ScanCorpus") -> "ScanCorpus":
        """Concatenate two corpora of the same topology (same vertex count and faces)."""
        if self.n_vertices and other.n_vertices and self.n_vertices != other.n_vertices:
            raise ValueError(f"corpora differ in vertex count: {self.n_vertices} vs {other.n_vertices}")
        faces = self.faces if len(self.faces) else other.faces

        def cat(a, b):
            parts = [x for x in (a, b) if x is not None and len(x)]
            return np.concatenate(parts) if parts else None

        return ScanCorpus(
            faces=faces,
            neutral_subjects=self.neutral_subjects + other.neutral_subjects,
            neutral_sources=self.neutral_sources + other.neutral_sources,
            neutral_vertices=cat(self.neutral_vertices, other.neutral_vertices),
            expression_subjects=self.expression_subjects + other.expression_subjects,
            expression_codes=self.expression_codes + other.expression_codes,
            expression_aus=self.expression_aus + other.expression_aus,
            expression_neutral=cat(self.expression_neutral, other.expression_neutral),
            expression_apex=cat(self.expression_apex, other.expression_apex),
            expression_apex_frame=self.expression_apex_frame + other.expression_apex_frame,
        )

    def apex_offsets(self) -> np.ndarray:
        """Apex-minus-neutral displacement per sequence, ``[E, 3N]`` interleaved xyz (0 means neutral)."""
        return (self.expression_apex - self.expression_neutral).reshape(len(self.expression_apex), -1)


def parse_au_code(code: str) -> tuple[int, ...]:
    """AU numbers of a D3DFACS folder name such as ``1+2+L12C`` -> ``(1, 2, 12)``.

    Raises ``ValueError`` for a token that is not ``[LR]?<number>[A-E]?``.
    """
    aus = []
    for token in code.split("+"):
        match = AU_TOKEN.match(token.strip())
        if not match:
            raise ValueError(f"not an AU token: {token!r} in {code!r}")
        aus.append(int(match.group(2)))
    return tuple(aus)


def _frame_number(path: Path, code: str) -> int:
    stem = path.stem
    tail = stem[len(code) + 1:] if stem.startswith(code + "_") else stem.rsplit("_", 1)[-1]
    digits = re.findall(r"\d+", tail)
    if not digits:
        raise InputFileError(path, "file name has no frame number (expected <AUcode>_<frame>.ply)")
    return int(digits[-1])


def natural_frames(sequence_dir: Path) -> list[Path]:
    """The ``.ply`` frames of a sequence folder in numeric frame order."""
    code = sequence_dir.name
    return sorted(sequence_dir.glob("*.ply"), key=lambda p: _frame_number(p, code))


def select_apex(neutral: np.ndarray, frames: np.ndarray) -> tuple[int, np.ndarray]:
    """Index and aligned vertices of the frame farthest (mean vertex distance) from ``neutral``.

    ``frames`` is ``[F, N, 3]``; each frame is rigidly aligned onto ``neutral`` first, robustly (see
    :func:`~.procrustes.robust_rigid_align`) so the expression itself does not bias the alignment.
    """
    aligned = robust_rigid_align(frames, neutral)
    distance = np.linalg.norm(aligned - neutral, axis=-1).mean(axis=-1)
    best = int(np.argmax(distance))
    return best, aligned[best]


def load_d3dfacs(root: str | os.PathLike, subject_neutral: str = "mean") -> ScanCorpus:
    """Load D3DFACS-in-FLAME sequences: neutral + apex per sequence, one neutral per subject.

    ``subject_neutral`` picks the subject's identity mesh: ``"mean"`` (default) averages the first frames of
    all the subject's sequences after rigid alignment, which averages out registration noise; ``"first"``
    takes the first frame of the subject's first sequence (sorted by folder name).
    Sequences whose folder name is not an AU code, or that hold fewer than two frames, are skipped with a
    warning.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputFileError(root, "D3DFACS folder does not exist")
    faces = np.zeros((0, 3), dtype=np.int64)
    corpus = ScanCorpus(faces=faces)
    neutrals, exp_neutral, exp_apex = [], [], []
    for subject_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        subject_firsts = []
        for seq_dir in sorted(p for p in subject_dir.iterdir() if p.is_dir()):
            try:
                aus = parse_au_code(seq_dir.name)
            except ValueError as exc:
                log.warning("skipping %s: %s", seq_dir, exc)
                continue
            frame_paths = natural_frames(seq_dir)
            if len(frame_paths) < 2:
                log.warning("skipping %s: fewer than two frames", seq_dir)
                continue
            first, seq_faces = read_ply(frame_paths[0])
            if not len(corpus.faces) and len(seq_faces):
                corpus.faces = seq_faces
            if len(first) != (len(exp_neutral[0]) if exp_neutral else len(first)):
                raise InputFileError(frame_paths[0], f"has {len(first)} vertices, other scans {len(exp_neutral[0])}")
            frames = []
            for path in frame_paths[1:]:
                verts, _ = read_ply(path)
                if verts.shape != first.shape:
                    raise InputFileError(path, f"has {len(verts)} vertices, the sequence's first frame {len(first)}")
                frames.append(verts)
            apex_index, apex = select_apex(first, np.stack(frames))
            corpus.expression_subjects.append(subject_dir.name)
            corpus.expression_codes.append(seq_dir.name)
            corpus.expression_aus.append(aus)
            corpus.expression_apex_frame.append(_frame_number(frame_paths[apex_index + 1], seq_dir.name))
            exp_neutral.append(first)
            exp_apex.append(apex)
            subject_firsts.append(first)
        if not subject_firsts:
            continue
        if subject_neutral == "first":
            neutral = subject_firsts[0]
        elif subject_neutral == "mean":
            neutral = rigid_align(np.stack(subject_firsts), subject_firsts[0]).mean(axis=0)
        else:
            raise ValueError(f"subject_neutral must be 'mean' or 'first', not {subject_neutral!r}")
        corpus.neutral_subjects.append(subject_dir.name)
        corpus.neutral_sources.append("d3dfacs")
        neutrals.append(neutral)
    if not exp_neutral:
        raise InputFileError(root, "no D3DFACS sequences found (expected <Subject>/<AUcode>/<AUcode>_<frame>.ply)")
    corpus.neutral_vertices = np.stack(neutrals)
    corpus.expression_neutral = np.stack(exp_neutral)
    corpus.expression_apex = np.stack(exp_apex)
    log.info("D3DFACS %s: %d subjects, %d sequences", root, len(neutrals), len(exp_neutral))
    return corpus


@dataclass
class VocasetSequences:
    """VOCASET's frames, memory-mapped: ``vertices(subject, sentence)`` returns ``[F, N, 3]``."""

    data_verts: np.ndarray
    index: dict

    def sequences(self) -> list[tuple[str, str]]:
        return [(s, q) for s, seqs in self.index.items() for q in seqs]

    def vertices(self, subject: str, sentence: str) -> np.ndarray:
        frames = self.index[subject][sentence]
        rows = [frames[k] for k in sorted(frames)]
        return np.asarray(self.data_verts[rows], dtype=np.float64)


def load_vocaset(root: str | os.PathLike) -> tuple[ScanCorpus, VocasetSequences | None]:
    """Load VOCASET: the neutral templates as a corpus, and the memory-mapped sequences (if present).

    ``data_verts.npy`` and ``subj_seq_to_idx.pkl`` are optional (the templates suffice for the identity
    model); when present they are checked for consistency (vertex count, row indices in range).
    """
    root = Path(root)
    templates_path = root / "templates.pkl"
    if not templates_path.is_file():
        raise InputFileError(templates_path, "VOCASET templates.pkl not found")
    templates = load_pickle(templates_path)
    if not isinstance(templates, dict) or not templates:
        raise InputFileError(templates_path, "expected a dict subject -> (N, 3) template array")
    subjects = sorted(templates)
    meshes = []
    for subject in subjects:
        mesh = np.asarray(templates[subject], dtype=np.float64)
        if mesh.ndim != 2 or mesh.shape[1] != 3:
            raise InputFileError(templates_path, f"template of {subject!r} has shape {mesh.shape}, expected (N, 3)")
        meshes.append(mesh)
    if len({m.shape for m in meshes}) != 1:
        raise InputFileError(templates_path, "templates differ in vertex count")
    corpus = ScanCorpus(
        faces=np.zeros((0, 3), dtype=np.int64),
        neutral_subjects=[str(s) for s in subjects],
        neutral_sources=["vocaset"] * len(subjects),
        neutral_vertices=np.stack(meshes),
    )
    sequences = None
    verts_path, index_path = root / "data_verts.npy", root / "subj_seq_to_idx.pkl"
    if verts_path.is_file() and index_path.is_file():
        data_verts = np.load(verts_path, mmap_mode="r", allow_pickle=False)
        if data_verts.ndim != 3 or data_verts.shape[1:] != meshes[0].shape:
            raise InputFileError(verts_path, f"shape {data_verts.shape} does not match the templates' "
                                             f"{meshes[0].shape}")
        index = load_pickle(index_path)
        if not isinstance(index, dict):
            raise InputFileError(index_path, "expected a dict subject -> sentence -> frame -> row")
        rows = [r for seqs in index.values() for frames in seqs.values() for r in frames.values()]
        if rows and (min(rows) < 0 or max(rows) >= len(data_verts)):
            raise InputFileError(index_path, f"row indices outside data_verts.npy's {len(data_verts)} frames")
        sequences = VocasetSequences(data_verts=data_verts, index=index)
    log.info("VOCASET %s: %d templates", root, len(subjects))
    return corpus, sequences
