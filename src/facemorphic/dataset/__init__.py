"""Dataset layout discovery, probing, the manifest, rejects and train/test splits (the ingest stage)."""

from .layout import (
    MANIFEST_COLUMNS,
    REJECT_COLUMNS,
    Candidate,
    Rejection,
    discover_user,
    list_users,
    recording_id,
)
from .manifest import ingest_user, merge_manifests, read_sync_csv
from .splits import assign_splits

__all__ = [
    "MANIFEST_COLUMNS",
    "REJECT_COLUMNS",
    "Candidate",
    "Rejection",
    "assign_splits",
    "discover_user",
    "ingest_user",
    "list_users",
    "merge_manifests",
    "read_sync_csv",
    "recording_id",
]
