"""Reading and writing triangle meshes (PLY, OBJ) as numpy arrays.

Hand-written because the project only needs vertex positions and triangles, and the usual libraries
(trimesh, plyfile, open3d) would be a heavy dependency for that. PLY is read in its three encodings
(ascii, binary little/big endian) with any extra vertex properties skipped; faces with more than three
corners are fanned into triangles. Meshes are written as binary little-endian PLY.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import InputFileError
from ..fileio import atomic_path

_PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}


def _parse_ply_header(path: Path, handle) -> tuple[str, list[dict]]:
    if handle.readline().strip() != b"ply":
        raise InputFileError(path, "not a PLY file (missing 'ply' magic line)")
    encoding = None
    elements: list[dict] = []
    while True:
        raw = handle.readline()
        if not raw:
            raise InputFileError(path, "PLY header has no 'end_header'")
        words = raw.decode("ascii", errors="replace").split()
        if not words or words[0] in ("comment", "obj_info"):
            continue
        if words[0] == "format":
            encoding = words[1]
        elif words[0] == "element":
            elements.append({"name": words[1], "count": int(words[2]), "props": []})
        elif words[0] == "property":
            if not elements:
                raise InputFileError(path, "PLY property before any element")
            if words[1] == "list":
                elements[-1]["props"].append(("list", words[4], _PLY_TYPES[words[2]], _PLY_TYPES[words[3]]))
            else:
                elements[-1]["props"].append(("scalar", words[2], _PLY_TYPES[words[1]]))
        elif words[0] == "end_header":
            break
    if encoding not in ("ascii", "binary_little_endian", "binary_big_endian"):
        raise InputFileError(path, f"unsupported PLY format {encoding!r}")
    return encoding, elements


def _triangulate(polygons: list[np.ndarray]) -> np.ndarray:
    triangles = []
    for poly in polygons:
        for j in range(1, len(poly) - 1):
            triangles.append((poly[0], poly[j], poly[j + 1]))
    return np.asarray(triangles, dtype=np.int64).reshape(-1, 3)


def read_ply(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(vertices [N, 3] float64, faces [F, 3] int64)`` of a PLY mesh (faces may be empty)."""
    path = Path(path)
    try:
        handle = open(path, "rb")
    except OSError as exc:
        raise InputFileError(path, f"cannot open: {exc.strerror}") from exc
    with handle:
        encoding, elements = _parse_ply_header(path, handle)
        body = handle.read()
    vertices = None
    faces = np.zeros((0, 3), dtype=np.int64)
    if encoding == "ascii":
        tokens = body.split()
        pos = 0
        for element in elements:
            rows = []
            for _ in range(element["count"]):
                values = []
                for prop in element["props"]:
                    if prop[0] == "list":
                        n = int(tokens[pos])
                        values.append(np.array(tokens[pos + 1:pos + 1 + n], dtype=np.int64))
                        pos += 1 + n
                    else:
                        values.append(float(tokens[pos]))
                        pos += 1
                rows.append(values)
            if element["name"] == "vertex":
                names = [p[1] for p in element["props"]]
                idx = [names.index(c) for c in "xyz"]
                vertices = np.array([[r[i] for i in idx] for r in rows], dtype=np.float64).reshape(-1, 3)
            elif element["name"] == "face":
                li = next(i for i, p in enumerate(element["props"]) if p[0] == "list")
                faces = _triangulate([r[li] for r in rows])
    else:
        endian = "<" if encoding == "binary_little_endian" else ">"
        pos = 0
        for element in elements:
            scalar_only = all(p[0] == "scalar" for p in element["props"])
            if scalar_only:
                dtype = np.dtype([(p[1], endian + p[2]) for p in element["props"]])
                data = np.frombuffer(body, dtype=dtype, count=element["count"], offset=pos)
                pos += dtype.itemsize * element["count"]
                if element["name"] == "vertex":
                    vertices = np.stack([data[c].astype(np.float64) for c in "xyz"], axis=1)
                continue
            props = element["props"]
            if len(props) == 1 and element["count"] > 0:
                # fast path for the usual face element: one list property, all triangles
                cdt, idt = np.dtype(endian + props[0][2]), np.dtype(endian + props[0][3])
                tri = np.dtype([("n", cdt), ("idx", idt, (3,))])
                if len(body) - pos >= tri.itemsize * element["count"]:
                    records = np.frombuffer(body, tri, element["count"], pos)
                    if np.all(records["n"] == 3):
                        pos += tri.itemsize * element["count"]
                        if element["name"] == "face":
                            faces = records["idx"].astype(np.int64)
                        continue
            polygons = []
            for _ in range(element["count"]):
                for prop in element["props"]:
                    if prop[0] == "list":
                        cdt, idt = np.dtype(endian + prop[2]), np.dtype(endian + prop[3])
                        n = int(np.frombuffer(body, cdt, 1, pos)[0])
                        pos += cdt.itemsize
                        values = np.frombuffer(body, idt, n, pos).astype(np.int64)
                        pos += idt.itemsize * n
                        if element["name"] == "face" and prop[1] in ("vertex_indices", "vertex_index"):
                            polygons.append(values)
                    else:
                        pos += np.dtype(prop[2]).itemsize
            if element["name"] == "face":
                faces = _triangulate(polygons)
    if vertices is None:
        raise InputFileError(path, "PLY file has no vertex element with x, y, z")
    if faces.size and (faces.min() < 0 or faces.max() >= len(vertices)):
        raise InputFileError(path, "PLY face refers to a vertex that does not exist")
    return vertices, faces


def read_obj(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(vertices, faces)`` of a Wavefront OBJ (``v`` and ``f`` lines; texture/normal indices ignored)."""
    path = Path(path)
    vertices, polygons = [], []
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise InputFileError(path, f"cannot open: {exc.strerror}") from exc
    for line in lines:
        words = line.split()
        if not words:
            continue
        if words[0] == "v":
            vertices.append([float(w) for w in words[1:4]])
        elif words[0] == "f":
            idx = [int(w.split("/")[0]) for w in words[1:]]
            polygons.append(np.array([i - 1 if i > 0 else len(vertices) + i for i in idx]))
    if not vertices:
        raise InputFileError(path, "OBJ file has no 'v' lines")
    return np.asarray(vertices, dtype=np.float64), _triangulate(polygons)


def read_mesh(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read a .ply or .obj mesh by its suffix."""
    suffix = Path(path).suffix.lower()
    if suffix == ".ply":
        return read_ply(path)
    if suffix == ".obj":
        return read_obj(path)
    raise InputFileError(path, "mesh must be .ply or .obj")


def write_ply(path: str | os.PathLike, vertices: np.ndarray, faces: np.ndarray | None = None,
              binary: bool = True) -> None:
    """Write a PLY (binary little-endian or ASCII) with float32 vertices and int32 triangles, atomically.

    The layout of D3DFACS / FLAME ``.ply`` files; the synthetic scan corpus is written with it too.
    """
    vertices = np.asarray(vertices, dtype="<f4")
    faces = np.zeros((0, 3), dtype="<i4") if faces is None else np.asarray(faces, dtype="<i4")
    header = (
        "ply\n" + ("format binary_little_endian 1.0\n" if binary else "format ascii 1.0\n")
        + f"element vertex {len(vertices)}\nproperty float x\nproperty float y\nproperty float z\n"
        f"element face {len(faces)}\nproperty list uchar int vertex_indices\nend_header\n"
    )
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        handle.write(header.encode("ascii"))
        if binary:
            face_records = np.zeros(len(faces), dtype=[("n", "u1"), ("idx", "<i4", (3,))])
            face_records["n"] = 3
            face_records["idx"] = faces
            handle.write(np.ascontiguousarray(vertices).tobytes())
            handle.write(face_records.tobytes())
        else:
            lines = [f"{x:.7g} {y:.7g} {z:.7g}" for x, y, z in vertices]
            lines += [f"3 {a} {b} {c}" for a, b, c in faces]
            handle.write(("\n".join(lines) + "\n").encode("ascii"))
