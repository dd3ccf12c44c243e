"""The source clip of a row of a registered audio dataset, for listening in the app.

Only clips on this server are played: the path comes from the dataset's registry entry (its
``source`` folder or manifest and the clip name of each row, ``files.json``), never from a
URL, and must still exist as a regular audio file under the data root.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .. import store
from ..files import NotRegularFile, open_regular
from .sources import AUDIO_EXTENSIONS

#: Largest clip read for playback (a clip of minutes is still far smaller).
MAX_CLIP_BYTES = 64 * 2**20
MIME = {".wav": "audio/wav", ".flac": "audio/flac", ".ogg": "audio/ogg", ".oga": "audio/ogg",
        ".opus": "audio/ogg", ".mp3": "audio/mpeg", ".aif": "audio/aiff", ".aiff": "audio/aiff"}


@dataclass(frozen=True)
class Clip:
    """A playable clip: its bytes, MIME type and the name the registry knows it by."""

    data: bytes
    mime: str
    name: str


def clip_path(ident: str, index: int, *, root: str | os.PathLike) -> tuple[Path | None, str]:
    """Where row ``index`` of dataset ``ident`` came from, if it can be played here.

    Returns
    -------
    (Path or None, str)
        The resolved path, or None and the reason (one sentence) why nothing plays.
    """
    if not store.is_registered(ident):
        return None, "only registered audio datasets have clips to play"
    kind, _, origin = str(store.dataset_meta(ident).get("source", "")).partition(" ")
    if kind not in ("folder", "manifest"):
        return None, ("the clips of an upload are not kept on the server" if kind == "upload"
                      else "this dataset was not made from audio clips")
    files = store.dataset_files(ident)
    if files is None or not 0 <= int(index) < len(files):
        return None, "the registry lists no source clip for this example"
    base = Path(origin) if kind == "folder" else Path(origin).parent
    p = Path(files[int(index)]).expanduser()
    p = p if p.is_absolute() else base / p
    try:
        real = p.resolve(strict=True)
    except (OSError, RuntimeError):
        return None, f"{files[int(index)]} is no longer on the server"
    if not real.is_relative_to(Path(root).resolve()):
        return None, f"{files[int(index)]} lies outside the data root"
    if real.suffix.lower() not in AUDIO_EXTENSIONS:
        return None, f"{files[int(index)]} is not an audio file"
    return real, ""


def read_clip(ident: str, index: int, *, root: str | os.PathLike) -> tuple[Clip | None, str]:
    """The bytes of row ``index``'s source clip (see :func:`clip_path`), or None and why not."""
    path, why = clip_path(ident, index, root=root)
    if path is None:
        return None, why
    try:
        with open_regular(path) as fh:
            data = fh.read(MAX_CLIP_BYTES + 1)
    except NotRegularFile as exc:
        return None, f"{path.name} {exc.strerror}"
    except OSError as exc:
        return None, f"{path.name} cannot be read ({exc.strerror})"
    if len(data) > MAX_CLIP_BYTES:
        return None, f"{path.name} is over {MAX_CLIP_BYTES // 2**20} MB: too long to play here"
    return Clip(data, MIME.get(path.suffix.lower(), "audio/wav"), store.dataset_files(ident)[index]), ""
