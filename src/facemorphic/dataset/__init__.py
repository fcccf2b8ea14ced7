"""Dataset layout discovery, probing, the manifest, rejects and train/test splits (the ingest stage)."""

from __future__ import annotations

from .._lazy import lazy_exports

#: name -> the submodule that defines it, imported on first use (see facemorphic._lazy)
_EXPORTS = {name: module for module, names in {
    ".ingest": ("ingest_user", "merge_manifests", "read_sync_csv"),
    ".layout": ("Candidate", "Rejection", "discover_user", "list_users", "recording_id"),
    ".manifest": ("MANIFEST_COLUMNS", "REJECT_COLUMNS"),
    ".splits": ("assign_splits",),
}.items() for name in names}
__all__ = list(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
