"""Hostile pickles are refused cleanly (no code run, no segfault); real-shaped data pickles still load.

The hostile files are loaded in ONE subprocess that reports each case's outcome as JSON: a pickle that
corrupts numpy's memory kills its process with SIGSEGV, which must fail this test rather than pytest.
"""

from __future__ import annotations

import collections
import copyreg
import json
import os
import pickle
import pickletools
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from facemorphic.morphable.safe_pickle import load_pickle

try:
    from numpy._core.multiarray import _reconstruct, scalar
    from numpy._core.numeric import _frombuffer
except ImportError:  # numpy 1.x
    from numpy.core.multiarray import _reconstruct, scalar
    from numpy.core.numeric import _frombuffer

# Loads every *.pkl of a folder with load_pickle; one JSON line {name: [outcome, message]}.
LOADER = r"""
import json, sys
from pathlib import Path
from facemorphic.errors import InputFileError
from facemorphic.morphable.safe_pickle import RefusedPickleError, load_pickle
results = {}
for path in sorted(Path(sys.argv[1]).glob("*.pkl")):
    try:
        load_pickle(path)
        results[path.stem] = ["loaded", ""]
    except RefusedPickleError as exc:
        results[path.stem] = ["refused", str(exc)]
    except InputFileError as exc:
        results[path.stem] = ["unreadable", str(exc)]
    except BaseException as exc:
        results[path.stem] = ["crashed", f"{type(exc).__name__}: {exc}"]
print(json.dumps(results))
"""


def _load_in_subprocess(folder: Path) -> dict[str, list[str]]:
    proc = subprocess.run([sys.executable, "-c", LOADER, str(folder)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"loader process died (rc {proc.returncode}): {proc.stderr[-2000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


class Reduces:
    """Pickles as whatever ``__reduce__`` tuple it is given: lets ``pickle.dumps`` write forged opcodes."""

    def __init__(self, *reduce_value):
        self.reduce_value = reduce_value

    def __reduce__(self):
        return self.reduce_value


def _dtype(spec: str, byteorder: str = "<", elsize: int = -1, align: int = -1, flags: int = 0, names=None, fields=None):
    return Reduces(np.dtype, (spec, False, True), (3, byteorder, None, names, fields, elsize, align, flags))


def _array(dtype, shape: tuple, data):
    return Reduces(_reconstruct, (np.ndarray, (0,), b"b"), (1, shape, dtype, False, data))


def _rebuild_dtype_after_use() -> bytes:
    """A float array, then a second BUILD of its (memoised) dtype setting the object-reference flag."""
    raw = pickle.dumps(np.arange(4, dtype="f8") + 1e-300, protocol=2)
    ops = [(op.name, arg) for op, arg, _ in pickletools.genops(raw)]
    dtype_global = ops.index(("GLOBAL", "numpy dtype"))
    reduce_at = next(i for i in range(dtype_global, len(ops)) if ops[i][0] == "REDUCE")
    assert ops[reduce_at + 1][0] == "BINPUT"  # the memo slot of the rebuilt dtype
    memo_index = bytes([ops[reduce_at + 1][1]])
    forged = b"h" + memo_index + b"(K\x03X\x01\x00\x00\x00<NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK?tb0"
    return raw[:-1] + forged + b"."


def _nested_lists(depth: int) -> bytes:
    return b"\x80\x02" + b"]" * depth + b"a" * (depth - 1) + b"."


def _self_referencing_list() -> bytes:
    looped = []
    looped.append(looped)
    return pickle.dumps(looped, protocol=2)


#: name -> (pickle bytes, a fragment the refusal message must contain)
HOSTILE = {
    "os_system_reduce": (pickle.dumps(Reduces(os.system, ("echo pwned",)), protocol=2), "system"),
    "os_system_protocol5": (pickle.dumps(Reduces(os.system, ("echo pwned",)), protocol=5), "system"),
    "python2_builtin_eval": (b"c__builtin__\neval\n(S'1+1'\ntR.", "builtins.eval"),
    "getattr_trick": (pickle.dumps(Reduces(getattr, (np.ndarray, "tofile")), protocol=2), "builtins.getattr"),
    "copyreg_reconstructor": (pickle.dumps(Reduces(copyreg._reconstructor, (collections.OrderedDict, dict, {})),
                                           protocol=2), "copyreg._reconstructor"),
    "copyreg_newobj_python2_name": (b"\x80\x02ccopy_reg\n__newobj__\ncnumpy\nndarray\nK\x03\x86R.",
                                    "copyreg.__newobj__"),
    "reduce_calls_ndarray": (pickle.dumps(Reduces(np.ndarray, ((1 << 20,),)), protocol=2), "call"),
    "newobj_ndarray": (b"\x80\x02cnumpy\nndarray\nK\x03\x85\x81.", "NEWOBJ"),
    "build_on_dict": (b"\x80\x02}}X\x01\x00\x00\x00aK\x01sb.", "dict"),
    "build_on_ordereddict": (pickle.dumps(Reduces(collections.OrderedDict, (), {"attr": 1}), protocol=2),
                             "OrderedDict"),
    "setitems_on_array": (pickle.dumps(np.zeros(3), protocol=2)[:-1] + b"(K\x00K\x01u.", "SETITEMS"),
    "appends_on_bytearray": (pickle.dumps(bytearray(b"ab"), protocol=2)[:-1] + b"(K\x01e.", "APPENDS"),
    "bytearray_terabyte": (pickle.dumps(Reduces(bytearray, (1 << 40,)), protocol=2), "bytearray"),
    "dtype_object_flags_on_float": (pickle.dumps(_array(_dtype("f8", flags=63), (2,), b"A" * 16), protocol=2),
                                    "forged dtype state"),
    "dtype_rebuilt_after_use": (_rebuild_dtype_after_use(), "state of a Float64DType"),
    "dtype_forged_fields": (pickle.dumps(_array(_dtype("f8", names=("a",), fields={"a": (np.dtype("f8"), 0)}),
                                                (2,), b"A" * 16), protocol=2), "forged dtype state"),
    "dtype_forged_elsize": (pickle.dumps(_array(_dtype("S2", "|", elsize=4096, align=1), (2,), b"AAAA"),
                                         protocol=2), "forged dtype state"),
    "dtype_forged_byteorder": (pickle.dumps(_array(_dtype("f8", byteorder="|"), (2,), b"A" * 16), protocol=2),
                               "forged dtype state"),
    "void_flags_forged": (pickle.dumps(_array(_dtype("V8", "|", 8, 1, flags=63), (2,), b"A" * 16), protocol=2),
                          "'V8'"),
    "void_array": (pickle.dumps(np.zeros(2, dtype="V8"), protocol=2), "'V8'"),
    "object_array_from_raw_bytes": (pickle.dumps(_array(_dtype("O8", "|", flags=63), (2,), b"A" * 16),
                                                 protocol=2), "'O8'"),
    "object_array_from_list": (pickle.dumps(np.array([1, "x"], dtype=object), protocol=2), "'O8'"),
    "structured_with_object_field": (pickle.dumps(np.zeros(2, dtype=[("a", "O"), ("b", "f8")]), protocol=2), "V"),
    "structured_plain": (pickle.dumps(np.zeros(2, dtype=[("a", "f4")]), protocol=5), "V"),
    "datetime_array": (pickle.dumps(np.zeros(2, dtype="M8[s]"), protocol=2), "M8"),
    "array_shape_larger_than_data": (pickle.dumps(_array(np.dtype("f8"), (1 << 20,), b"A" * 16), protocol=2),
                                     "needs"),
    "array_subclass_placeholder": (pickle.dumps(Reduces(_reconstruct, (np.matrix, (0,), b"b")), protocol=2),
                                   "matrix"),
    "array_with_unbuilt_dtype": (pickle.dumps(_array(Reduces(np.dtype, ("f8", False, True)), (2,), b"A" * 16),
                                              protocol=2), "not rebuilt from a checked state"),
    "object_scalar": (pickle.dumps(Reduces(scalar, (_dtype("O8", "|", flags=63), b"A" * 8)), protocol=2), "'O8'"),
    "frombuffer_object_dtype": (pickle.dumps(Reduces(_frombuffer, (b"A" * 16, _dtype("O8", "|", flags=63),
                                                                   (2,), "C")), protocol=5), "'O8'"),
    "torch_tensor_without_permission": (b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n)R.", "torch._utils"),
    "persistent_id": (b"\x80\x02X\x01\x00\x00\x00aQ.", "persistent"),
    "nested_too_deep": (_nested_lists(5000), "nested deeper"),
    "self_referencing_list": (_self_referencing_list(), "contains itself"),
}


def test_hostile_pickles_are_refused_without_crashing(tmp_path):
    for name, (data, _) in HOSTILE.items():
        (tmp_path / f"{name}.pkl").write_bytes(data)
    results = _load_in_subprocess(tmp_path)
    assert set(results) == set(HOSTILE)
    wrong = {name: results[name] for name, (_, fragment) in HOSTILE.items()
             if results[name][0] not in ("refused", "unreadable") or f"{name}.pkl" not in results[name][1]
             or fragment not in results[name][1]}
    assert not wrong, wrong
    # every case is a refusal of something unsafe, except a dangling persistent id (simply unreadable)
    assert {name for name, (outcome, _) in results.items() if outcome == "unreadable"} == {"persistent_id"}


def _valid_payload() -> dict:
    """Everything a FLAME/VOCASET-style data pickle holds, plus every accepted array kind."""
    rng = np.random.default_rng(7)
    return {
        "v_template": rng.normal(size=(20, 3)),
        "lmk_face_idx": rng.integers(0, 100, 68).astype(np.uint32),
        "big_endian": np.arange(5, dtype=">i4"),
        "fortran": np.asfortranarray(rng.normal(size=(3, 4)).astype(np.float32)),
        "flags": np.array([True, False]), "bytes": np.array([b"ab", b"cde"]), "text": np.array(["xy", "é"]),
        "complex": np.array([1 + 2j]), "empty": np.zeros((0, 3)), "scalar": np.float32(2.5), "int_scalar": np.int64(-3),
        "nested": collections.OrderedDict([("s1", {"sentence01": {0: 5, 1: 6}})]),
        "set": {1, 2}, "frozen": frozenset({"a"}), "tuple": (1.5, None, "x", b"y"), "raw": bytearray(b"\x00\xff"),
    }


def _assert_payload_equal(loaded, expected):
    assert loaded.keys() == expected.keys()
    for key, value in expected.items():
        if isinstance(value, np.ndarray):
            assert loaded[key].dtype == value.dtype and loaded[key].shape == value.shape
            assert loaded[key].flags.f_contiguous == value.flags.f_contiguous
            np.testing.assert_array_equal(loaded[key], value)
        elif key == "shared":
            np.testing.assert_array_equal(loaded[key], value)
        else:
            assert loaded[key] == value and type(loaded[key]) is type(value), key


@pytest.mark.parametrize("protocol", [0, 2, 3, 4, 5])
def test_data_pickles_of_every_protocol_load_like_the_stock_unpickler(tmp_path, protocol):
    payload = _valid_payload()
    payload["shared"] = [payload["v_template"], payload["v_template"]]  # memo references
    data = pickle.dumps(payload, protocol=protocol)
    (tmp_path / "data.pkl").write_bytes(data)
    loaded = load_pickle(tmp_path / "data.pkl")
    # the stock unpickler is the reference (safe here: we wrote the file); it also byte-swaps '>i4' to native
    expected = pickle.loads(data)
    _assert_payload_equal(loaded, expected)
    np.testing.assert_array_equal(loaded["big_endian"], np.arange(5))
    assert loaded["shared"][0] is loaded["shared"][1]


def test_python2_numpy_pickle_loads(tmp_path):
    """What Python 2 / numpy 1.x wrote for ``{'a': np.arange(3.), 's': np.float64(0.5)}`` at protocol 2
    (byte strings as BINSTRING, ``numpy.core`` names): the form of the FLAME and VOCASET releases."""
    f8_dtype = (b"cnumpy\ndtype\nq\x05U\x02f8K\x00K\x01\x87Rq\x06"
                b"(K\x03U\x01<NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb")
    array = (b"cnumpy.core.multiarray\n_reconstruct\nq\x00cnumpy\nndarray\nq\x01K\x00\x85q\x02U\x01b\x87q\x03Rq\x04"
             b"(K\x01K\x03\x85" + f8_dtype + b"\x89U\x18" + np.arange(3.0).tobytes() + b"tb")
    scalar_half = b"cnumpy.core.multiarray\nscalar\nq\x07h\x06U\x08" + np.float64(0.5).tobytes() + b"\x86R"
    data = b"\x80\x02}q\x08(U\x01a" + array + b"U\x01s" + scalar_half + b"u."
    (tmp_path / "py2.pkl").write_bytes(data)
    loaded = load_pickle(tmp_path / "py2.pkl")
    assert loaded["a"].dtype == np.float64
    np.testing.assert_array_equal(loaded["a"], [0.0, 1.0, 2.0])
    assert loaded["s"] == 0.5 and isinstance(loaded["s"], np.float64)
    assert pickle.loads(data, encoding="latin1")["s"] == 0.5  # the stock unpickler reads the same file


def test_mutated_pickles_load_or_are_refused_never_crash(tmp_path):
    """Seeded byte mutations (flips, insertions, deletions, splices) of valid array pickles."""
    rng = random.Random(1234)
    seeds = [pickle.dumps({"a": np.arange(6, dtype=np.float32).reshape(2, 3), "s": np.int16(3), "t": "x"},
                          protocol=p) for p in (2, 5)]
    for i in range(300):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 4)):
            pos = rng.randrange(len(data))
            action = rng.randrange(4)
            if action == 0:
                data[pos] = rng.randrange(256)
            elif action == 1:
                data.insert(pos, rng.randrange(256))
            elif action == 2:
                del data[pos]
            else:
                start = rng.randrange(len(data))
                data[pos:pos] = data[start:start + rng.randint(1, 12)]
        (tmp_path / f"mutant{i:03d}.pkl").write_bytes(bytes(data))
    results = _load_in_subprocess(tmp_path)
    assert len(results) == 300
    crashed = {name: r for name, r in results.items() if r[0] == "crashed"}
    assert not crashed, crashed
    outcomes = collections.Counter(outcome for outcome, _ in results.values())
    assert outcomes["refused"] + outcomes["unreadable"] > 100  # the mutations do break most files
