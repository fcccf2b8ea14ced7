"""The FACEMORPHIC folder layout, and discovery of the recordings in it.

``{root}/{user}/AU_{n}/event_{rep}.raw`` holds the events of repetition ``rep`` of Action Unit ``n``;
its RGB partner is ``frames_{rep}.mp4`` (any container PyAV opens: .mp4, .avi, .mov, .mkv) or a folder
``frames_{rep}/`` of timestamped JPEG frames. ``AU_FREE`` and ``AU_READING`` hold the free-interaction
and sentence-reading recordings; the sentences are in ``AU_READING/sentences.txt``, one per line, line i
belonging to the i-th repetition in increasing order (a ``sentence_{rep}.txt`` file beside a recording
takes precedence).

Discovery only looks at names; probing the files happens in :mod:`facemorphic.dataset.ingest`. Every
file discovery meets either becomes part of a :class:`Candidate` or a :class:`Rejection` with a reason a
person understands, so nothing disappears silently.
"""

from __future__ import annotations

import errno
import os
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from .. import ACTION_UNITS

TASK_FOLDER = re.compile(r"^AU_(?P<name>\d+|FREE|READING)$")
EVENT_FILE = re.compile(r"^event_(?P<rep>\d+)\.raw$", re.IGNORECASE)
RGB_VIDEO_FILE = re.compile(r"^frames_(?P<rep>\d+)\.(?:mp4|avi|mov|mkv|m4v)$", re.IGNORECASE)
RGB_FOLDER = re.compile(r"^frames_(?P<rep>\d+)$")
SENTENCE_FILE = re.compile(r"^sentence_(?P<rep>\d+)\.txt$")
#: Files a user folder or task folder may hold besides recordings, used but never rejected.
KNOWN_SIDE_FILES = {"sentences.txt", "sync.csv"}


def recording_id(user: str, folder: str, repetition: int) -> str:
    """The id of one recording: ``{user}_{folder}_{rep}``, e.g. ``u01_AU_12_1`` or ``u01_AU_FREE_2``."""
    return f"{user}_{folder}_{int(repetition)}"


@dataclass
class Candidate:
    """One recording found by name: a RAW file and its RGB partner, not probed yet."""

    recording_id: str
    user: str
    folder: str
    task: str  # "au", "free" or "reading"
    au: int  # the AU number for task "au", 0 otherwise
    repetition: int
    raw_path: Path
    rgb_path: Path
    sentence: str = ""


@dataclass
class Rejection:
    """A file (or folder) that is not in the manifest, and why."""

    user: str
    recording_id: str
    path: str
    reason: str

    def as_row(self) -> dict:
        return {"user": self.user, "recording_id": self.recording_id, "path": self.path, "reason": self.reason}


def broken_link_reason(path: Path) -> str | None:
    """Why a symbolic link cannot be followed (dangling, or a loop), or None for anything else.

    ``Path.is_file`` and ``is_dir`` answer False for both, so without this check such an entry would be
    reported as a mere unrecognised name, hiding the actual fault.
    """
    if not path.is_symlink():
        return None
    try:
        path.stat()
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symbolic link loops (it points back to itself)"
        return f"dangling symbolic link (target {os.readlink(path)!r} does not exist)"
    return None


def list_users(root: str | Path) -> list[str]:
    """User folders under a dataset root (sorted), skipping hidden folders.

    A folder counts as a user when it holds at least one ``AU_*`` folder, so helper folders beside the
    users (the synthetic dataset's ``truth/``, say) are not taken for users. A folder that cannot be
    listed (no read permission) still counts: its ingest records the reason in the rejects, where a person
    sees it, instead of the folder vanishing from the dataset.
    """
    root = Path(root)
    if not root.is_dir():
        return []
    users = []
    for entry in sorted(root.iterdir()):
        if entry.is_dir() and not entry.name.startswith((".", "_")):
            try:
                holds_tasks = any(child.is_dir() and child.name.startswith("AU_") for child in entry.iterdir())
            except OSError:
                holds_tasks = True
            if holds_tasks:
                users.append(entry.name)
    return users


def _parse_task(folder: str) -> tuple[str, int] | None:
    match = TASK_FOLDER.match(folder)
    if match is None:
        return None
    name = match["name"]
    if name == "FREE":
        return "free", 0
    if name == "READING":
        return "reading", 0
    return "au", int(name)


def _read_sentences(task_dir: Path, repetitions: list[int]) -> dict[int, str]:
    sentences: dict[int, str] = {}
    listing = task_dir / "sentences.txt"
    if listing.is_file():
        lines = [line.strip() for line in listing.read_text(encoding="utf-8").splitlines() if line.strip()]
        for rep, line in zip(sorted(repetitions), lines):
            sentences[rep] = line
    for rep in repetitions:
        single = task_dir / f"sentence_{rep}.txt"
        if single.is_file():
            sentences[rep] = single.read_text(encoding="utf-8").strip()
    return sentences


def discover_user(root: str | Path, user: str) -> tuple[list[Candidate], list[Rejection]]:
    """Pair the RAW and RGB files of one user's folder by name.

    Returns the candidate recordings (sorted by id) and the rejections: unknown task folders, unknown
    AU numbers, unrecognised file names, a RAW without its RGB partner or the reverse, and duplicate
    recording ids (``event_1.raw`` beside ``event_01.raw``, or ``frames_1.mp4`` beside ``frames_1/``).
    """
    user_dir = Path(root) / user
    candidates: list[Candidate] = []
    rejections: list[Rejection] = []
    if not user_dir.is_dir():
        return [], [Rejection(user, "", str(user_dir), "user folder does not exist")]
    try:
        task_dirs = sorted(p for p in user_dir.iterdir() if not p.name.startswith("."))
    except OSError as exc:
        return [], [Rejection(user, "", str(user_dir), f"cannot list the user folder: {exc.strerror or exc}")]

    for task_dir in task_dirs:
        if (broken := broken_link_reason(task_dir)) is not None:
            rejections.append(Rejection(user, "", str(task_dir), broken))
            continue
        if not task_dir.is_dir():
            if task_dir.name not in KNOWN_SIDE_FILES:
                rejections.append(Rejection(user, "", str(task_dir), "file outside any AU_* folder"))
            continue
        parsed = _parse_task(task_dir.name)
        if parsed is None:
            rejections.append(
                Rejection(user, "", str(task_dir), "unknown folder name (expected AU_<n>, AU_FREE or AU_READING)")
            )
            continue
        task, au = parsed
        if task == "au" and au not in ACTION_UNITS:
            rejections.append(
                Rejection(user, "", str(task_dir), f"AU {au} is not one of the 24 FACEMORPHIC AUs {list(ACTION_UNITS)}")
            )
            continue

        try:
            entries = sorted(task_dir.iterdir())
        except OSError as exc:
            rejections.append(Rejection(user, "", str(task_dir), f"cannot list the folder: {exc.strerror or exc}"))
            continue
        raws: dict[int, list[Path]] = defaultdict(list)
        rgbs: dict[int, list[Path]] = defaultdict(list)
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if (broken := broken_link_reason(entry)) is not None:
                rejections.append(Rejection(user, "", str(entry), broken))
                continue
            if entry.is_file() and (m := EVENT_FILE.match(entry.name)):
                raws[int(m["rep"])].append(entry)
            elif entry.is_file() and (m := RGB_VIDEO_FILE.match(entry.name)):
                rgbs[int(m["rep"])].append(entry)
            elif entry.is_dir() and (m := RGB_FOLDER.match(entry.name)):
                rgbs[int(m["rep"])].append(entry)
            elif entry.is_file() and (entry.name in KNOWN_SIDE_FILES or SENTENCE_FILE.match(entry.name)):
                continue
            else:
                rejections.append(Rejection(user, "", str(entry), "unrecognised name (expected event_<rep>.raw, "
                                            "frames_<rep>.mp4 or a frames_<rep>/ JPEG folder)"))

        sentences = _read_sentences(task_dir, sorted(set(raws) | set(rgbs))) if task == "reading" else {}
        for rep in sorted(set(raws) | set(rgbs)):
            rid = recording_id(user, task_dir.name, rep)
            files = raws.get(rep, []) + rgbs.get(rep, [])
            if len(raws.get(rep, [])) > 1 or len(rgbs.get(rep, [])) > 1:
                names = ", ".join(p.name for p in files)
                for path in files:
                    rejections.append(Rejection(user, rid, str(path), f"duplicate recording id {rid} ({names})"))
                continue
            if rep not in rgbs:
                rejections.append(Rejection(user, rid, str(raws[rep][0]), "RAW file without its RGB partner "
                                            f"(frames_{rep}.mp4 or frames_{rep}/ is missing)"))
                continue
            if rep not in raws:
                rejections.append(Rejection(user, rid, str(rgbs[rep][0]), "RGB stream without its RAW partner "
                                            f"(event_{rep}.raw is missing)"))
                continue
            candidates.append(Candidate(rid, user, task_dir.name, task, au, rep, raws[rep][0], rgbs[rep][0],
                                        sentences.get(rep, "")))
    if not candidates and not rejections:
        rejections.append(Rejection(user, "", str(user_dir), "user folder holds no recordings"))
    return sorted(candidates, key=lambda c: c.recording_id), rejections

