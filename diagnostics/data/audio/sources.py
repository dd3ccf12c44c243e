"""Where clips come from: a folder of class sub-folders, or a ``path,label`` CSV manifest."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import NormScopeError
from ..files import NotRegularFile, open_regular

#: File name endings read as audio (all readable by soundfile / libsndfile >= 1.1).
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff")


# --- sources: folders and manifests -----------------------------------------------------------

@dataclass(frozen=True, eq=False)
class ClipList:
    """The clips of a source, in the order they become rows.

    Attributes
    ----------
    paths : tuple of Path
        Absolute paths.
    names : tuple of str
        How each clip is shown (relative to ``base`` where possible).
    labels : tuple of str, or None
        Class of each clip (the sub-folder, or the manifest's label); None without classes.
    origin : Path
        The folder or the manifest file.
    kind : {"folder", "manifest"}
    notes : tuple of str
        What was ignored and why.
    """

    paths: tuple[Path, ...]
    names: tuple[str, ...]
    labels: tuple[str, ...] | None
    origin: Path
    kind: str
    notes: tuple[str, ...] = field(default_factory=tuple)


def _is_audio(name: str) -> bool:
    return name.lower().endswith(AUDIO_EXTENSIONS)


def _ext_list() -> str:
    return ", ".join(AUDIO_EXTENSIONS[:4]) + ", ..."


def scan_folder(folder: str | os.PathLike) -> ClipList:
    """List the clips of a folder with one sub-folder per class (nested folders allowed).

    Hidden files and folders are ignored, and so are files that are not audio (counted in
    the notes).  A folder with audio files but no class sub-folders gives unlabelled clips.

    Raises
    ------
    NormScopeError
        If the folder does not exist, is empty, or holds no audio file.
    """
    folder = Path(folder)
    if not folder.exists():
        raise NormScopeError(f"{folder} does not exist; check the path")
    if not folder.is_dir():
        raise NormScopeError(f"{folder} is not a folder")
    try:
        top = sorted((e for e in os.scandir(folder) if not e.name.startswith(".")),
                     key=lambda e: e.name)
    except OSError as exc:
        raise NormScopeError(f"cannot read {folder} ({exc.strerror})") from None
    if not top:
        raise NormScopeError(f"{folder} is empty; put one sub-folder per class with audio clips "
                             f"({_ext_list()}) in it")
    labelled: list[tuple[str, str]] = []  # (relative name, class)
    loose: list[str] = []
    other = 0
    for entry in top:
        if entry.is_dir():
            for dirpath, dirnames, filenames in os.walk(entry.path):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                for fname in sorted(filenames):
                    if fname.startswith("."):
                        continue
                    if _is_audio(fname):
                        rel = os.path.relpath(os.path.join(dirpath, fname), folder)
                        labelled.append((Path(rel).as_posix(), entry.name))
                    else:
                        other += 1
        elif _is_audio(entry.name):
            loose.append(entry.name)
        else:
            other += 1
    notes = []
    if other:
        notes.append(f"{other} file(s) that are not audio ({_ext_list()}) were ignored")
    if labelled:
        if loose:
            notes.append(f"{len(loose)} clip(s) directly in {folder.name}/ (not in a class "
                         "sub-folder) were ignored")
        labelled.sort()
        names = tuple(r for r, _ in labelled)
        labels: tuple[str, ...] | None = tuple(c for _, c in labelled)
    elif loose:
        notes.append("the clips are not sorted into class sub-folders, so they have no labels")
        names, labels = tuple(sorted(loose)), None
    else:
        raise NormScopeError(
            f"{folder} holds no audio clips ({_ext_list()}) in class sub-folders "
            f"({other} other file(s)); put one sub-folder per class with audio clips in it"
        )
    paths = tuple((folder / n).absolute() for n in names)
    return ClipList(paths=paths, names=names, labels=labels, origin=folder.absolute(),
                    kind="folder", notes=tuple(notes))


def read_manifest(csv_path: str | os.PathLike) -> ClipList:
    """Read a ``path,label`` CSV; paths are relative to the CSV's folder (or absolute).

    A header line ``path,label`` is optional; blank lines and lines starting with ``#`` are
    skipped.  Files that are missing are not an error here: they are skipped, with the reason,
    when the features are made.
    """
    csv_path = Path(csv_path)
    if not csv_path.exists():
        raise NormScopeError(f"{csv_path} does not exist; check the path")
    try:
        with open_regular(csv_path) as fh:
            text = fh.read().decode("utf-8-sig")
    except NotRegularFile as exc:
        raise NormScopeError(f"{csv_path} {exc.strerror}; give a .csv manifest (path,label)"
                             ) from None
    except UnicodeDecodeError:
        raise NormScopeError(f"{csv_path} is not a UTF-8 text file; save the manifest as CSV "
                             "(path,label)") from None
    except OSError as exc:
        raise NormScopeError(f"cannot read {csv_path} ({exc.strerror})") from None
    try:
        rows = list(csv.reader(text.splitlines()))
    except csv.Error as exc:
        raise NormScopeError(f"{csv_path} is not a valid CSV ({exc})") from None
    base = csv_path.parent.absolute()
    paths, names, labels = [], [], []
    for lineno, row in enumerate(rows, 1):
        cells = [c.strip() for c in row]
        if not any(cells) or cells[0].startswith("#"):
            continue
        if not paths and [c.lower() for c in cells[:2]] in (["path", "label"], ["file", "label"],
                                                            ["filename", "label"]):
            continue  # header
        if len(cells) < 2 or not cells[0] or not cells[1]:
            raise NormScopeError(f"line {lineno} of {csv_path} is {','.join(row)[:80]!r}; every "
                                 "line must be path,label")
        p = Path(cells[0]).expanduser()
        paths.append(p if p.is_absolute() else base / p)
        names.append(cells[0])
        labels.append(cells[1])
    if not paths:
        raise NormScopeError(f"{csv_path} lists no clips; write one line path,label per clip")
    return ClipList(paths=tuple(paths), names=tuple(names), labels=tuple(labels),
                    origin=csv_path.absolute(), kind="manifest")


