"""A tiny PLY writer and reader for triangle meshes (binary little-endian or ASCII).

Why hand-written: the scan corpus only needs vertices (float32 x, y, z) and triangles (``uchar`` count +
``int`` indices), the layout of D3DFACS / FLAME ``.ply`` files; no installed package writes PLY
(trimesh, plyfile and open3d are not dependencies), and the format is a dozen lines.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputFileError
from ..fileio import atomic_path

_FACE_DTYPE = np.dtype([("n", "u1"), ("idx", "<i4", (3,))])


def write_ply(path: str | Path, vertices: np.ndarray, faces: np.ndarray, binary: bool = True) -> None:
    """Write a triangle mesh (vertices [N, 3] metres, faces [F, 3]) atomically."""
    vertices = np.asarray(vertices, dtype="<f4")
    faces = np.asarray(faces, dtype="<i4")
    header = ("ply\n" + ("format binary_little_endian 1.0\n" if binary else "format ascii 1.0\n")
              + f"element vertex {len(vertices)}\nproperty float x\nproperty float y\nproperty float z\n"
              + f"element face {len(faces)}\nproperty list uchar int vertex_indices\nend_header\n")
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(header.encode("ascii"))
        if binary:
            fh.write(np.ascontiguousarray(vertices).tobytes())
            rec = np.empty(len(faces), _FACE_DTYPE)
            rec["n"] = 3
            rec["idx"] = faces
            fh.write(rec.tobytes())
        else:
            lines = [f"{x:.7g} {y:.7g} {z:.7g}" for x, y, z in vertices]
            lines += [f"3 {a} {b} {c}" for a, b, c in faces]
            fh.write(("\n".join(lines) + "\n").encode("ascii"))


def read_ply(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a triangle mesh written by :func:`write_ply` (or any PLY with float x, y, z and triangle lists)."""
    path = Path(path)
    data = path.read_bytes()
    end = data.find(b"end_header\n")
    if not data.startswith(b"ply") or end < 0:
        raise InputFileError(path, "not a PLY file (no 'ply' magic or no end_header)")
    header = data[:end].decode("ascii").splitlines()
    n_vert = n_face = 0
    fmt = ""
    vertex_props = []
    element = None
    for line in header:
        parts = line.split()
        if parts[:1] == ["format"]:
            fmt = parts[1]
        elif parts[:1] == ["element"]:
            element = parts[1]
            if element == "vertex":
                n_vert = int(parts[2])
            elif element == "face":
                n_face = int(parts[2])
        elif parts[:1] == ["property"] and element == "vertex":
            vertex_props.append(parts[1:])
    body = data[end + len(b"end_header\n"):]
    if fmt == "binary_little_endian":
        if any(p[0] not in ("float", "float32") for p in vertex_props):
            raise InputFileError(path, "only float vertex properties are supported")
        nprop = len(vertex_props)
        verts = np.frombuffer(body, "<f4", count=n_vert * nprop).reshape(n_vert, nprop)[:, :3]
        faces = np.frombuffer(body, _FACE_DTYPE, count=n_face, offset=n_vert * nprop * 4)
        if n_face and np.any(faces["n"] != 3):
            raise InputFileError(path, "only triangle faces are supported")
        return verts.astype(np.float64), faces["idx"].astype(np.int64)
    if fmt == "ascii":
        rows = body.decode("ascii").split("\n")
        verts = np.array([r.split()[:3] for r in rows[:n_vert]], dtype=np.float64).reshape(n_vert, 3)
        faces = np.array([r.split()[1:4] for r in rows[n_vert:n_vert + n_face]], dtype=np.int64).reshape(n_face, 3)
        return verts, faces
    raise InputFileError(path, f"unsupported PLY format {fmt!r}")
