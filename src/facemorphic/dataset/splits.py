"""Train/test splits: the paper's per-video protocol and the harder per-subject protocol.

Both are deterministic functions of the seed and the recording (or user) ids: each id gets a rank from a
keyed hash, and the lowest ranks go to the test set. Unlike shuffling a list, adding one recording
leaves the split of all others almost always unchanged, so cached results stay valid.

* ``video``: about ``test_fraction`` of the recordings of every stratum go to test (strata: each AU,
  plus ``free`` and ``reading``), so every AU is in both sets whenever it has at least two recordings;
  users are shared between train and test (FACEMORPHIC's protocol).
* ``subject``: about ``test_fraction`` of the users (at least one when there are two or more) go to test
  with all their recordings; no user is in both sets.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from ..errors import FacemorphicError

PROTOCOLS = ("video", "subject")


def _hash_rank(seed: int, key: str) -> int:
    digest = hashlib.blake2b(f"{seed}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def _n_test(n: int, test_fraction: float) -> int:
    if n < 2:
        return 0
    return int(min(n - 1, max(1, round(test_fraction * n))))


def assign_splits(manifest: pd.DataFrame, protocol: str, test_fraction: float, seed: int) -> np.ndarray:
    """Return an array of ``"train"``/``"test"`` for the manifest's rows."""
    if protocol not in PROTOCOLS:
        raise FacemorphicError(f"split protocol {protocol!r} is not one of {PROTOCOLS}")
    if not 0.0 <= test_fraction < 1.0:
        raise FacemorphicError(f"split test_fraction {test_fraction} must be in [0, 1)")
    split = np.full(len(manifest), "train", dtype=object)
    if test_fraction == 0 or len(manifest) == 0:
        return split
    if protocol == "subject":
        users = sorted(set(manifest["user"]), key=lambda u: _hash_rank(seed, u))
        test_users = set(users[: _n_test(len(users), test_fraction)])
        split[manifest["user"].isin(test_users).to_numpy()] = "test"
        return split
    strata = np.where(manifest["task"] == "au", manifest["au"].astype(str), manifest["task"].astype(str))
    ids = manifest["recording_id"].astype(str).to_numpy()
    for stratum in np.unique(strata):
        members = np.flatnonzero(strata == stratum)
        order = sorted(members, key=lambda i: _hash_rank(seed, ids[i]))
        split[order[: _n_test(len(members), test_fraction)]] = "test"
    return split
