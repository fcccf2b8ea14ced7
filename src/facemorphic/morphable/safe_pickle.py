"""Loading pickles from dataset releases without running their code or trusting their memory layout.

VOCASET's ``templates.pkl`` / ``subj_seq_to_idx.pkl``, FLAME's landmark embedding and DECA's
``landmark_embedding.npy`` are pickles. A plain ``pickle.load`` would execute whatever callable the file
names, so they are read with :class:`RestrictedUnpickler`. Python 2 pickles (the FLAME and VOCASET
releases: protocol 2, ``str`` payloads) are read with ``encoding='latin1'``.

Refusing foreign globals is not enough: numpy's own rebuilders trust their arguments. ``dtype.__setstate__``
accepts any flags, so a pickle that sets the "holds object references" flag on a float dtype (or rebuilds a
dtype after an array already uses it) makes numpy treat raw bytes from the file as pointers, and the
process segfaults. The unpickler is therefore built on the pure-Python ``pickle._Unpickler`` (the C one
cannot be hooked per opcode) and checks every opcode that calls or mutates something:

- REDUCE may call only the rebuilders below, each of which validates its arguments; NEWOBJ, INST, OBJ and
  extension codes are refused (no data pickle needs them);
- dtypes are rebuilt from their spec string (``'<f8'``, ``'S5'``...) as fresh copies, and their pickled
  state must equal the state numpy gives a freshly constructed dtype of that spec and byte order (flags
  included); each dtype is built once, before any array uses it;
- arrays are rebuilt only from a validated dtype, a shape and a byte string of exactly the right size, and
  checked again afterwards (dtype kind, flags, no object references, buffer size);
- BUILD applies only to those arrays and dtypes; APPEND/SETITEM/ADDITEMS only to lists, dicts and sets.

Accepted: numeric, boolean and string (bytes/unicode) arrays and scalars, lists, tuples, dicts
(``OrderedDict`` too), sets, frozensets and Python scalars. Anything else raises
:class:`RefusedPickleError` naming the file and the refused global or the reason.

DECA's embedding (an ``np.save``'d dict) is a pickled 0-d *object* array whose elements come as a Python
list (never as raw bytes); :func:`load_npy_object` allows object arrays in that form only. The dict also
holds torch tensors (its dynamic jaw contour): when torch is installed those are rebuilt through
``torch.load(..., weights_only=True)`` (torch's own restricted loader) and converted to numpy arrays.
"""

from __future__ import annotations

import _compat_pickle
import collections
import io
import math
import os
import pickle
from pathlib import Path

import numpy as np

from ..errors import InputFileError

#: dtype kinds an array or scalar may have: boolean, integers, floats, complex, bytes, unicode.
ALLOWED_DTYPE_KINDS = frozenset("biufcSU")
#: Containers and scalars a loaded object graph may hold (numpy arrays and scalars are checked apart).
_PLAIN_TYPES = (type(None), bool, int, float, complex, str, bytes, bytearray)
_CONTAINER_TYPES = (list, tuple, dict, collections.OrderedDict, set, frozenset)
#: Deeper nesting than this is refused (real data nests 3-4 levels; the checks walk the graph).
MAX_NESTING = 100

_RECONSTRUCT, _DTYPE, _SCALAR, _FROMBUFFER, _NDARRAY = "reconstruct", "dtype", "scalar", "frombuffer", "ndarray"
#: (module, name) -> rebuilder a data pickle may name. numpy 2 moved ``numpy.core`` to ``numpy._core``;
#: both spellings occur in files in the wild.
_NUMPY_GLOBALS = {
    ("numpy", "ndarray"): _NDARRAY, ("numpy", "dtype"): _DTYPE,
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT, ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy.core.multiarray", "scalar"): _SCALAR, ("numpy._core.multiarray", "scalar"): _SCALAR,
    ("numpy.core.numeric", "_frombuffer"): _FROMBUFFER, ("numpy._core.numeric", "_frombuffer"): _FROMBUFFER,
}


class RefusedPickleError(InputFileError):
    """The pickle names a global outside the allow-list or rebuilds something unsafe (it could run code
    or corrupt memory on load)."""


def _torch_storage_from_bytes(data: bytes):
    import torch

    return torch.load(io.BytesIO(data), weights_only=True)


def _fresh_dtype_state(dtype: np.dtype) -> tuple:
    """The ``__setstate__`` tuple numpy writes for ``dtype`` (version 3, without metadata)."""
    return tuple(dtype.__reduce__()[2][:8])


def check_array(path, array: np.ndarray, allow_object: bool = False) -> None:
    """Refuse an array numpy could misread: foreign dtype kind or flags, object references, wrong buffer size."""
    dtype = array.dtype
    if type(array) is not np.ndarray:
        raise RefusedPickleError(path, f"refusing array of type {type(array).__name__} (only plain numpy arrays)")
    if dtype.fields is not None or dtype.subdtype is not None:
        raise RefusedPickleError(path, f"refusing structured/sub-array dtype {dtype!r}")
    if dtype.kind == "O" and allow_object:
        fresh = np.dtype(object)
    elif dtype.kind not in ALLOWED_DTYPE_KINDS or dtype.hasobject:
        raise RefusedPickleError(path, f"refusing array of dtype {dtype!r} (kind {dtype.kind!r}; only "
                                       "numeric, boolean and string arrays are accepted)")
    else:
        fresh = np.dtype(dtype.str)
    if dtype.flags != fresh.flags or dtype.itemsize != fresh.itemsize:
        raise RefusedPickleError(path, f"refusing array whose dtype {dtype!r} has forged flags {dtype.flags} "
                                       f"(a fresh {fresh!r} has {fresh.flags})")
    expected = math.prod(array.shape) * dtype.itemsize
    if array.nbytes != expected:
        raise RefusedPickleError(path, f"array buffer holds {array.nbytes} bytes, shape {array.shape} needs {expected}")


class RestrictedUnpickler(pickle._Unpickler):
    """Rebuilds only plain containers, numpy arrays/scalars and (optionally) torch tensors; see the module."""

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, file, path: str | os.PathLike, allow_torch_tensors: bool = False,
                 allow_object_arrays_from_lists: bool = False, **kwargs):
        super().__init__(file, **kwargs)
        self._path = path
        self._allow_torch = allow_torch_tensors
        self._allow_object_lists = allow_object_arrays_from_lists
        # objects awaiting their single BUILD, and dtypes already built (by id; the values keep them alive)
        self._unbuilt_arrays: dict[int, np.ndarray] = {}
        self._unbuilt_dtypes: dict[int, np.dtype] = {}
        self._built_dtypes: dict[int, np.dtype] = {}
        self._rebuilders = {
            _RECONSTRUCT: self._reconstruct, _DTYPE: self._make_dtype, _SCALAR: self._make_scalar,
            _FROMBUFFER: self._frombuffer,
        }
        self._plain_globals = {("builtins", "set"): set, ("builtins", "frozenset"): frozenset,
                               ("builtins", "complex"): complex, ("builtins", "bytearray"): self._bytearray,
                               ("collections", "OrderedDict"): collections.OrderedDict,
                               ("_codecs", "encode"): self._codecs_encode, ("builtins", "bytes"): self._empty_bytes}
        self._torch_globals = {("torch._utils", "_rebuild_tensor_v2"): self._rebuild_tensor,
                               ("torch.storage", "_load_from_bytes"): _torch_storage_from_bytes}
        # the only objects REDUCE may call (compared by identity: the same bound methods find_class hands out)
        self._callables = [*self._rebuilders.values(), *self._plain_globals.values()]
        if allow_torch_tensors:
            self._callables += self._torch_globals.values()

    def _refuse(self, reason: str):
        raise RefusedPickleError(self._path, reason)

    # ---- globals ---------------------------------------------------------------------------------------
    def find_class(self, module: str, name: str):
        # Python 2 names (__builtin__.set, copy_reg...) mapped as the default unpickler does
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
        if (module, name) in _NUMPY_GLOBALS:
            role = _NUMPY_GLOBALS[(module, name)]
            return np.ndarray if role == _NDARRAY else self._rebuilders[role]
        if (module, name) in self._plain_globals:
            return self._plain_globals[(module, name)]
        if self._allow_torch and (module, name) in self._torch_globals:
            return self._torch_globals[(module, name)]
        self._refuse(f"refusing to unpickle global {module}.{name}: only plain containers and numpy arrays are "
                     "accepted from data pickles (a pickle naming other callables could run code)")

    # ---- rebuilders (the only callables REDUCE may call) -------------------------------------------------
    def _codecs_encode(self, text, encoding="utf-8", errors="strict"):
        """``_codecs.encode(str, 'latin1')`` is how Python 3 writes bytes at protocol 2."""
        if type(text) is not str or encoding not in ("latin1", "latin-1") or errors != "strict":
            self._refuse("refusing _codecs.encode other than str -> latin1 bytes")
        return text.encode("latin1")

    def _empty_bytes(self, *args):
        """``bytes()`` is how Python 3 writes ``b''`` at protocols 0-2 (and nothing else)."""
        if args:
            self._refuse("refusing bytes() with arguments")
        return b""

    def _bytearray(self, data=b"", encoding=None):
        """bytearray from bytes or a latin1 str only (``bytearray(10**12)`` would zero-fill a terabyte)."""
        if type(data) in (bytes, bytearray) and encoding is None:
            return bytearray(data)
        if type(data) is str and encoding in ("latin1", "latin-1"):
            return bytearray(data, encoding)
        self._refuse("refusing bytearray() from anything but bytes or a latin1 str")

    def _make_dtype(self, spec, align=False, copy=True):
        if type(spec) is bytes:
            spec = spec.decode("latin1")
        if type(spec) is not str or len(spec) > 16:
            self._refuse(f"refusing dtype spec {spec!r} (a short type string like 'f8' is expected)")
        try:
            dtype = np.dtype(spec, align=bool(align), copy=True)  # a copy: BUILD must never touch numpy's singletons
        except (TypeError, ValueError) as exc:
            self._refuse(f"refusing dtype spec {spec!r}: {exc}")
        allowed = ALLOWED_DTYPE_KINDS | ({"O"} if self._allow_object_lists else set())
        if dtype.kind not in allowed or dtype.fields is not None or dtype.subdtype is not None:
            self._refuse(f"refusing dtype {spec!r} (kind {dtype.kind!r}): only numeric, boolean and string "
                         "dtypes are accepted")
        if dtype.itemsize == 0:
            self._refuse(f"refusing flexible dtype {spec!r} without a size")
        self._unbuilt_dtypes[id(dtype)] = dtype
        return dtype

    def _built_dtype(self, dtype) -> np.dtype:
        if not isinstance(dtype, np.dtype) or id(dtype) not in self._built_dtypes:
            self._refuse(f"refusing an array or scalar whose dtype {dtype!r} was not rebuilt from a checked state")
        return dtype

    def _reconstruct(self, subtype, shape, typecode):
        if subtype is not np.ndarray or typecode not in (b"b", "b") or shape != (0,):
            self._refuse(f"refusing numpy _reconstruct({subtype!r}, {shape!r}, {typecode!r}) "
                         "(only a plain ndarray placeholder is accepted)")
        array = np.empty(0, dtype=np.uint8)
        self._unbuilt_arrays[id(array)] = array
        return array

    def _checked_shape(self, shape, itemsize: int, nbytes: int | None) -> tuple[int, ...]:
        if (type(shape) is not tuple or len(shape) > 32
                or not all(type(n) is int and 0 <= n < 2 ** 48 for n in shape)):
            self._refuse(f"refusing array shape {shape!r}")
        if nbytes is not None and math.prod(shape) * itemsize != nbytes:
            self._refuse(f"array data holds {nbytes} bytes but shape {shape} of {itemsize}-byte items "
                         f"needs {math.prod(shape) * itemsize}")
        return shape

    def _array_bytes(self, data) -> bytes:
        if type(data) is str:  # Python 2 str payloads, decoded as latin1
            return data.encode("latin1")
        if type(data) in (bytes, bytearray):
            return bytes(data)
        self._refuse(f"refusing array data of type {type(data).__name__} (raw bytes expected)")

    def _make_scalar(self, dtype, data):
        dtype = self._built_dtype(dtype)
        if dtype.kind == "O":
            self._refuse("refusing a numpy object scalar")
        data = self._array_bytes(data)
        if len(data) != dtype.itemsize:
            self._refuse(f"numpy scalar of {dtype!r} needs {dtype.itemsize} bytes, the pickle holds {len(data)}")
        return np.frombuffer(data, dtype=dtype)[0]

    def _frombuffer(self, buffer, dtype, shape, order):
        dtype = self._built_dtype(dtype)
        if dtype.kind == "O":
            self._refuse("refusing an object array rebuilt from a buffer")
        data = self._array_bytes(buffer)
        shape = self._checked_shape(shape, dtype.itemsize, len(data))
        if order not in ("C", "F"):
            self._refuse(f"refusing array order {order!r}")
        array = np.frombuffer(data, dtype=dtype).reshape(shape, order=order).copy(order="K")
        check_array(self._path, array)
        return array

    def _rebuild_tensor(self, storage, offset, size, stride, requires_grad=False, hooks=None, *rest):
        import torch
        import torch._utils

        if (not isinstance(storage, torch.storage.TypedStorage) or type(offset) is not int
                or type(size) is not tuple or type(stride) is not tuple or requires_grad is not False
                or (hooks is not None and hooks != collections.OrderedDict()) or any(rest)):
            self._refuse("refusing a torch tensor rebuilt from anything but a plain storage, size and stride")
        return torch._utils._rebuild_tensor_v2(storage, offset, size, stride, False, collections.OrderedDict())

    # ---- opcodes that call or mutate -------------------------------------------------------------------
    def load_reduce(self):
        args = self.stack.pop()
        func = self.stack[-1]
        if not any(func is allowed for allowed in self._callables):
            self._refuse(f"refusing to call {getattr(func, '__qualname__', type(func).__name__)} while "
                         "unpickling (not an allowed rebuilder)")
        if type(args) is not tuple:
            self._refuse("REDUCE arguments are not a tuple")
        self.stack[-1] = func(*args)

    dispatch[pickle.REDUCE[0]] = load_reduce

    def load_build(self):
        state = self.stack.pop()
        target = self.stack[-1]
        if isinstance(target, np.dtype) and id(target) in self._unbuilt_dtypes:
            del self._unbuilt_dtypes[id(target)]
            self._build_dtype(target, state)
            self._built_dtypes[id(target)] = target
        elif isinstance(target, np.ndarray) and id(target) in self._unbuilt_arrays:
            del self._unbuilt_arrays[id(target)]
            self._build_array(target, state)
        else:
            self._refuse(f"refusing to set the state of a {type(target).__name__} (only freshly rebuilt numpy "
                         "arrays and dtypes take a state, once)")

    dispatch[pickle.BUILD[0]] = load_build

    def _build_dtype(self, dtype: np.dtype, state) -> None:
        if type(state) is not tuple or len(state) not in (8, 9) or state[0] not in (3, 4):
            self._refuse(f"refusing dtype state {state!r} (numpy's version 3/4 state tuple expected)")
        if len(state) == 9 and state[8] not in (None, {}):
            self._refuse("refusing dtype metadata")
        byteorder = state[1]
        if byteorder not in ("<", ">", "|"):
            self._refuse(f"refusing dtype byte order {byteorder!r}")
        reference = dtype if byteorder == "|" else dtype.newbyteorder(byteorder)
        expected = _fresh_dtype_state(np.dtype(reference.str))
        if tuple(state[1:8]) != expected[1:8]:
            self._refuse(f"refusing forged dtype state {state!r} for {dtype!r} (a fresh dtype has {expected!r})")
        dtype.__setstate__(expected)
        if dtype != reference or dtype.flags != np.dtype(reference.str).flags:
            self._refuse(f"dtype {dtype!r} differs from a fresh {reference!r} after rebuilding")

    def _build_array(self, array: np.ndarray, state) -> None:
        if type(state) is not tuple or len(state) not in (4, 5) or (len(state) == 5 and state[0] != 1):
            self._refuse("refusing numpy array state (version 1 tuple of shape, dtype, order, data expected)")
        shape, dtype, is_fortran, data = state[-4:]
        dtype = self._built_dtype(dtype)
        if type(is_fortran) not in (bool, int):
            self._refuse(f"refusing array order flag {is_fortran!r}")
        if dtype.kind == "O":
            # object elements pickled as a list of already checked objects, never as raw bytes (np.save(dict))
            if type(data) is not list:
                self._refuse("refusing an object array rebuilt from raw bytes")
            self._checked_shape(shape, 1, len(data))
        else:
            data = self._array_bytes(data)
            self._checked_shape(shape, dtype.itemsize, len(data))
        array.__setstate__((1, shape, dtype, bool(is_fortran), data))
        check_array(self._path, array, allow_object=dtype.kind == "O")

    def _require(self, target, kinds: tuple, opcode: str):
        if type(target) not in kinds:
            self._refuse(f"refusing {opcode} on a {type(target).__name__}")

    def load_append(self):
        value = self.stack.pop()
        self._require(self.stack[-1], (list,), "APPEND")
        self.stack[-1].append(value)

    def load_appends(self):
        items = self.pop_mark()
        self._require(self.stack[-1], (list,), "APPENDS")
        self.stack[-1].extend(items)

    def load_setitem(self):
        value = self.stack.pop()
        key = self.stack.pop()
        self._require(self.stack[-1], (dict, collections.OrderedDict), "SETITEM")
        self.stack[-1][key] = value

    def load_setitems(self):
        items = self.pop_mark()
        self._require(self.stack[-1], (dict, collections.OrderedDict), "SETITEMS")
        for i in range(0, len(items), 2):
            self.stack[-1][items[i]] = items[i + 1]

    def load_additems(self):
        items = self.pop_mark()
        self._require(self.stack[-1], (set,), "ADDITEMS")
        self.stack[-1].update(items)

    def _refuse_opcode(self):
        self._refuse("refusing object-construction opcode (NEWOBJ/INST/OBJ/EXT): data pickles do not need it")

    dispatch[pickle.APPEND[0]] = load_append
    dispatch[pickle.APPENDS[0]] = load_appends
    dispatch[pickle.SETITEM[0]] = load_setitem
    dispatch[pickle.SETITEMS[0]] = load_setitems
    dispatch[pickle.ADDITEMS[0]] = load_additems
    for _opcode in (pickle.NEWOBJ, pickle.NEWOBJ_EX, pickle.INST, pickle.OBJ, pickle.EXT1, pickle.EXT2,
                    pickle.EXT4):
        dispatch[_opcode[0]] = _refuse_opcode
    del _opcode

    def load(self):
        obj = super().load()
        check_loaded(self._path, obj, allow_torch=self._allow_torch, allow_object=self._allow_object_lists)
        return obj


def check_loaded(path, obj, allow_torch: bool = False, allow_object: bool = False) -> None:
    """Walk a loaded object graph: only plain values, containers and valid arrays, no cycles, bounded depth.

    Iterative (a hostile pickle can nest deeper than Python's recursion limit) and linear in the graph
    (shared references are visited once).
    """
    done: set[int] = set()
    on_path: set[int] = set()
    pending: list[tuple[object, int, bool]] = [(obj, 0, False)]
    while pending:
        item, depth, leaving = pending.pop()
        if leaving:
            on_path.discard(id(item))
            done.add(id(item))
            continue
        if type(item) in _PLAIN_TYPES:
            continue
        if id(item) in on_path:
            raise RefusedPickleError(path, "refusing a container that contains itself")
        if id(item) in done:
            continue
        if depth > MAX_NESTING:
            raise RefusedPickleError(path, f"refusing containers nested deeper than {MAX_NESTING} levels")
        if type(item) is np.ndarray:
            check_array(path, item, allow_object=allow_object)
            children = item.ravel().tolist() if item.dtype.kind == "O" else ()
        elif isinstance(item, np.generic):
            if item.dtype.kind not in ALLOWED_DTYPE_KINDS or item.dtype.flags != np.dtype(item.dtype.str).flags:
                raise RefusedPickleError(path, f"refusing numpy scalar of dtype {item.dtype!r}")
            continue
        elif isinstance(item, np.dtype):
            if item.kind not in ALLOWED_DTYPE_KINDS or item.flags != np.dtype(item.str).flags:
                raise RefusedPickleError(path, f"refusing dtype {item!r}")
            continue
        elif type(item) in _CONTAINER_TYPES:
            children = [x for kv in item.items() for x in kv] if isinstance(item, dict) else list(item)
        elif allow_torch and type(item).__module__.startswith("torch") and type(item).__name__ == "Tensor":
            continue
        else:
            raise RefusedPickleError(path, f"refusing an object of type {type(item).__module__}."
                                           f"{type(item).__qualname__} in a data pickle")
        on_path.add(id(item))
        pending.append((item, depth, True))
        pending.extend((child, depth + 1, False) for child in children)


def _to_numpy(obj):
    """Replace torch tensors (DECA) by numpy arrays, recursively through containers (acyclic, depth-checked)."""
    if type(obj).__module__.startswith("torch"):
        return obj.detach().cpu().numpy()
    if isinstance(obj, dict):
        return type(obj)((k, _to_numpy(v)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_numpy(v) for v in obj)
    return obj


def _load_checked(path: Path, handle, allow_torch_tensors: bool, allow_object_arrays: bool, what: str):
    try:
        obj = RestrictedUnpickler(handle, path, allow_torch_tensors, allow_object_arrays, encoding="latin1").load()
    except RefusedPickleError:
        raise
    except Exception as exc:  # truncated, not a pickle at all, or arguments a rebuilder rejects
        raise InputFileError(path, f"{what} is not readable: {type(exc).__name__}: {exc}") from exc
    if allow_object_arrays and isinstance(obj, np.ndarray) and obj.dtype.hasobject and obj.shape == ():
        obj = obj.item()  # the .item() DECA's loader calls on np.save(dict)
    if not allow_torch_tensors:
        return obj
    converted = _to_numpy(obj)
    check_loaded(path, converted, allow_object=allow_object_arrays)
    return converted


def load_pickle(path: str | os.PathLike, allow_torch_tensors: bool = False):
    """Load a data pickle (Python 2 or 3) safely; see the module docstring."""
    path = Path(path)
    try:
        handle = open(path, "rb")
    except OSError as exc:
        raise InputFileError(path, f"cannot open: {exc.strerror}") from exc
    with handle:
        return _load_checked(path, handle, allow_torch_tensors, False, "pickle")


def load_npy_object(path: str | os.PathLike):
    """Load a ``.npy`` file safely, including the object-array form ``np.save(path, dict)`` writes.

    ``np.load(..., allow_pickle=True)`` would unpickle without restriction, so the header is read here
    (with numpy's bounded header reader) and an object payload goes through :class:`RestrictedUnpickler`.
    A 0-d object array is unwrapped (the ``.item()`` that DECA's loader calls).
    """
    path = Path(path)
    try:
        handle = open(path, "rb")
    except OSError as exc:
        raise InputFileError(path, f"cannot open: {exc.strerror}") from exc
    with handle:
        try:
            version = np.lib.format.read_magic(handle)
            fmt = np.lib.format
            read_header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
            _, _, dtype = read_header(handle)
        except (ValueError, OSError) as exc:
            raise InputFileError(path, f"not a .npy file: {exc}") from exc
        if dtype.hasobject:
            return _load_checked(path, handle, True, True, "object .npy payload")
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise InputFileError(path, f"not a readable .npy file: {exc}") from exc
