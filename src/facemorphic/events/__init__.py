"""Event-camera stage: read Prophesee RAW files exactly and fast, and turn events into frames aligned
to the RGB frames.

Why the project owns its RAW decoder. Measured on the real recordings in ``../shared/data/events``
against Prophesee's own reference decoder (OpenEB 5.1.1): faery 0.7.1 puts 1,455 events of the first
EVT3 file up to 11 us late (it refuses to let its clock go back on a lone lower TIME_LOW word);
expelliarmus 1.1.12 gets most EVT3 timestamps wrong and stops at trigger words; evlib 0.13.2 is exact
but decodes about 4 million events per second with 7 GB of memory on a 50M-event file; evt3 0.4.1
(Rust, MIT) is exact at about 70-77 Mev/s but reads EVT 3.0 only and writes nothing. Prophesee's own
decode loop runs at about 100 Mev/s per core, a numba port of it matched that, and decoding fused with
frame accumulation reached about 137 Mev/s. So the project owns a numba EVT 3.0 / EVT 2.0 decoder
(:mod:`.raw`, :mod:`._kernels`), a small DAT reader, an EVT 3.0 encoder (:mod:`.evt3_writer`) and a
decoder fused with frame accumulation (:mod:`.frames`); evt3 and evlib are test-only cross-checks.
The formats follow Prophesee's public "EVT 3.0 Format" and "EVT 2.0 Format" pages.
"""

from __future__ import annotations

from .._lazy import lazy_exports

#: name -> the submodule that defines it, imported on first use (see facemorphic._lazy)
_EXPORTS = {name: module for module, names in {
    ".raw": ("EVENT_DTYPE", "TRIGGER_DTYPE", "Chunk", "RawInfo", "RawReader", "probe_raw", "read_events",
             "read_window"),
    ".triggers": ("read_trigger_edges", "sync_to_triggers"),
    ".frames": ("event_frame_size",),
}.items() for name in names}
__all__ = list(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
