"""Loading pickles from dataset releases without running their code.

VOCASET's ``templates.pkl`` / ``subj_seq_to_idx.pkl``, FLAME's landmark embedding and DECA's
``landmark_embedding.npy`` are pickles. A plain ``pickle.load`` would execute whatever callable the file
names, so they are read with :class:`RestrictedUnpickler`, which resolves only the globals needed to
rebuild plain containers and numpy arrays and refuses anything else with an error naming the file and the
refused global. Python 2 pickles (the FLAME and VOCASET releases) are read with ``encoding='latin1'``.

DECA's embedding dict also holds torch tensors (its dynamic jaw contour). When torch is installed those are
rebuilt too, but only through ``torch.load(..., weights_only=True)`` (torch's own restricted loader), and
converted to numpy arrays; the other keys never need torch.
"""

from __future__ import annotations

import _compat_pickle
import ast
import io
import os
import pickle
from pathlib import Path

import numpy as np

from ..errors import InputFileError

#: (module, name) pairs a data pickle may name: numpy's array/scalar rebuilders and plain containers.
#: numpy 2 moved ``numpy.core`` to ``numpy._core``; both spellings occur in files in the wild.
_ALLOWED = {
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("builtins", "set"), ("builtins", "frozenset"), ("builtins", "complex"), ("builtins", "bytearray"),
    ("builtins", "slice"), ("collections", "OrderedDict"), ("copyreg", "_reconstructor"),
    ("_codecs", "encode"),  # how Python 3 writes bytes (array buffers) at protocol 2
}


class RefusedPickleError(InputFileError):
    """The pickle names a global outside the allow-list (it could run code on load)."""


def _numpy_global(module: str, name: str):
    module = module.replace("numpy.core", "numpy._core") if hasattr(np, "_core") else module
    obj = __import__(module, fromlist=[name])
    return getattr(obj, name)


def _torch_storage_from_bytes(data: bytes):
    import torch

    return torch.load(io.BytesIO(data), weights_only=True)


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that rebuilds only plain containers and numpy arrays (and, optionally, torch tensors)."""

    def __init__(self, file, path: str | os.PathLike, allow_torch_tensors: bool = False, **kwargs):
        super().__init__(file, **kwargs)
        self._path = path
        self._allow_torch = allow_torch_tensors

    def find_class(self, module: str, name: str):
        # Python 2 names (__builtin__.set, copy_reg...) mapped as the default unpickler does
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
        if (module, name) in _ALLOWED:
            if module.startswith("numpy"):
                return _numpy_global(module, name)
            return getattr(__import__(module), name)
        if self._allow_torch and (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            import torch._utils

            return torch._utils._rebuild_tensor_v2
        if self._allow_torch and (module, name) == ("torch.storage", "_load_from_bytes"):
            return _torch_storage_from_bytes
        raise RefusedPickleError(
            self._path,
            f"refusing to unpickle global {module}.{name}: only plain containers and numpy arrays are "
            "accepted from data pickles (a pickle naming other callables could run code)",
        )


def _to_numpy(obj):
    """Replace torch tensors (DECA) by numpy arrays, recursively through containers."""
    if type(obj).__module__.startswith("torch"):
        return obj.detach().cpu().numpy()
    if isinstance(obj, dict):
        return {k: _to_numpy(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_numpy(v) for v in obj)
    return obj


def load_pickle(path: str | os.PathLike, allow_torch_tensors: bool = False):
    """Load a data pickle (Python 2 or 3) safely; see the module docstring."""
    path = Path(path)
    try:
        handle = open(path, "rb")
    except OSError as exc:
        raise InputFileError(path, f"cannot open: {exc.strerror}") from exc
    with handle:
        try:
            obj = RestrictedUnpickler(handle, path, allow_torch_tensors, encoding="latin1").load()
        except RefusedPickleError:
            raise
        except Exception as exc:  # truncated or not a pickle at all
            raise InputFileError(path, f"not a readable pickle: {exc}") from exc
    return _to_numpy(obj)


def load_npy_object(path: str | os.PathLike):
    """Load a ``.npy`` file safely, including the object-array form ``np.save(path, dict)`` writes.

    ``np.load(..., allow_pickle=True)`` would unpickle without restriction, so the header is parsed here
    and an object payload goes through :class:`RestrictedUnpickler`. A 0-d object array is unwrapped
    (the ``.item()`` that DECA's loader calls).
    """
    path = Path(path)
    try:
        handle = open(path, "rb")
    except OSError as exc:
        raise InputFileError(path, f"cannot open: {exc.strerror}") from exc
    with handle:
        try:
            version = np.lib.format.read_magic(handle)
        except ValueError as exc:
            raise InputFileError(path, f"not a .npy file: {exc}") from exc
        header_len_size = 2 if version == (1, 0) else 4
        header_len = int.from_bytes(handle.read(header_len_size), "little")
        header = ast.literal_eval(handle.read(header_len).decode("latin1"))
        dtype = np.dtype(header["descr"]) if not isinstance(header["descr"], list) else None
        if dtype is not None and dtype.hasobject:
            try:
                obj = RestrictedUnpickler(handle, path, allow_torch_tensors=True, encoding="latin1").load()
            except RefusedPickleError:
                raise
            except Exception as exc:
                raise InputFileError(path, f"object .npy payload is not readable: {exc}") from exc
            obj = _to_numpy(obj)
            if isinstance(obj, np.ndarray) and obj.dtype.hasobject and obj.shape == ():
                obj = obj.item()
            return _to_numpy(obj)
    return np.load(path, allow_pickle=False)
