"""A corpus of bad inputs for audio folders, manifests, uploads and ids.

Each one must end in one clear NormScopeError (or a skipped, listed clip), never a traceback, a
hang, an unpickled object or a file written outside our folders.  The command-line cases run in
a subprocess: exit status 2 and exactly one line ``error: ...`` on stderr.
"""

from __future__ import annotations

import io
import pickle
import struct
import zipfile

import numpy as np
import pytest
import soundfile as sf
from audio_helpers import SR, make_folder, npy_bytes, npz_bytes, wav_bytes, write_clip, zip_bytes

from diagnostics.data import store
from diagnostics.data.audio.features import FeatureParams
from diagnostics.data.audio.loader import load_audio
from diagnostics.data.ingest import load_dataset
from diagnostics.errors import NormScopeError
from diagnostics.data.store import open_dataset, register_arrays
from diagnostics.data.uploads import register_upload_npy_npz, register_upload_zip
from diagnostics.stats.summary import dataset_stats, summary


# Every test gets its own empty NORMSCOPE_HOME (the `home` fixture of conftest.py).
pytestmark = pytest.mark.usefixtures("home")


class Evil:
    """Unpickling this creates the file ``MARKER``: proof that a pickle was executed."""

    marker = ""

    def __reduce__(self):
        return (open, (self.marker, "w"))


def evil_pickle(marker) -> bytes:
    e = Evil()
    e.marker = str(marker)
    return pickle.dumps(e)


def evil_object_npy(marker) -> bytes:
    e = Evil()
    e.marker = str(marker)
    buf = io.BytesIO()
    np.save(buf, np.array([e, 1], dtype=object), allow_pickle=True)
    return buf.getvalue()




# --- folders and clips --------------------------------------------------------------------------

def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(NormScopeError, match="empty is empty; put one sub-folder per class"):
        load_audio(tmp_path / "empty")


def test_folder_with_no_audio(tmp_path):
    (tmp_path / "d" / "dog").mkdir(parents=True)
    (tmp_path / "d" / "dog" / "notes.txt").write_text("x")
    (tmp_path / "d" / "table.csv").write_text("a,b")
    with pytest.raises(NormScopeError, match=r"holds no audio clips .* \(2 other file\(s\)\)"):
        load_audio(tmp_path / "d")


def test_missing_folder_and_wrong_kind(tmp_path):
    with pytest.raises(NormScopeError, match="does not exist"):
        load_audio(tmp_path / "nope")
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(NormScopeError, match="neither a folder of audio clips nor a .csv"):
        load_audio(tmp_path / "a.txt")


@pytest.mark.parametrize("name, content, reason", [
    ("text.wav", b"this is not audio\n" * 20, "not readable as audio: Format not recognised."),
    ("empty.flac", b"", "not readable as audio: Format not recognised."),
    ("header_only.wav", None, "not readable as audio: Error in WAV file. No 'data' chunk marker."),
    ("random.mp3", bytes(range(256)) * 8, "not readable as audio"),
])
def test_undecodable_clip_is_skipped_and_listed(tmp_path, rng, name, content, reason):
    folder = make_folder(tmp_path / "d", rng, per_class=2)
    if content is None:
        content = wav_bytes(rng=rng)[:30]
    (folder / "dog" / name).write_bytes(content)
    ds = load_audio(folder, workers=1)
    assert ds.n == 4
    [(file, why)] = store.dataset_meta(ds.id)["skipped"]
    assert file == f"dog/{name}" and why.startswith(reason)
    assert any("1 of 5 clips could not be decoded" in n for n in ds.notes)


def test_truncated_wav_keeps_the_readable_part_with_a_note(tmp_path, rng):
    folder = make_folder(tmp_path / "d", rng, per_class=2)
    full = wav_bytes(rng=rng)
    (folder / "cat" / "cut.wav").write_bytes(full[: len(full) // 2])
    ds = load_audio(folder, workers=1)
    assert ds.n == 5 and store.dataset_meta(ds.id)["skipped"] == []
    assert any("1 clip(s) are cut short" in n for n in ds.notes)


def test_clip_with_nan_samples_is_skipped(tmp_path, rng):
    folder = make_folder(tmp_path / "d", rng, per_class=2)
    x = np.zeros(SR, np.float32)
    x[100] = np.nan
    sf.write(folder / "dog" / "nan.wav", x, SR, subtype="FLOAT")
    ds = load_audio(folder, workers=1)
    assert store.dataset_meta(ds.id)["skipped"] == [["dog/nan.wav",
                                                        "holds NaN or infinite samples"]]
    assert np.all(np.isfinite(ds.X))


def test_clip_with_no_samples_is_skipped(tmp_path, rng):
    folder = make_folder(tmp_path / "d", rng, per_class=2)
    sf.write(folder / "dog" / "zero.wav", np.zeros(0, np.float32), SR)
    ds = load_audio(folder, workers=1)
    assert store.dataset_meta(ds.id)["skipped"] == [["dog/zero.wav", "holds no samples"]]


def test_clip_that_vanished_after_listing_is_skipped(tmp_path, rng):
    from diagnostics.data.audio.features import extract_features

    paths = [write_clip(tmp_path / f"{i}.wav", 440.0, rng=rng) for i in range(3)]
    paths[1].unlink()
    (tmp_path / "folder.wav").mkdir()
    ext = extract_features([*paths, tmp_path / "folder.wav"], workers=1)
    assert ext.X.shape[0] == 2
    assert [r for _, r in ext.skipped] == ["does not exist", "is not a file"]


def test_nothing_decodable_is_an_error(tmp_path):
    for i in range(3):
        (tmp_path / "d" / "dog").mkdir(parents=True, exist_ok=True)
        (tmp_path / "d" / "dog" / f"{i}.wav").write_text("nope")
    with pytest.raises(NormScopeError, match=r"none of the 3 clips .* could be decoded \(first: "
                                             r"dog/0.wav: not readable as audio"):
        load_audio(tmp_path / "d", workers=1)


def test_mixed_rates_and_channels_are_resampled_to_mono(tmp_path, rng):
    for i, (sr, ch) in enumerate([(8000, 1), (16000, 2), (22050, 1), (44100, 2), (48000, 6)]):
        write_clip(tmp_path / "d" / "tone" / f"{i}.wav", 700.0, rng=rng, sr=sr, channels=ch)
    ds = load_audio(tmp_path / "d", workers=1)
    assert ds.n == 5 and ds.shape == (60, 130) and np.all(np.isfinite(ds.X))
    peak = np.argmax(np.asarray(ds.X)[:, :, 10], axis=1)
    assert len(set(peak.tolist())) == 1  # the tone lands in the same band whatever the file


def test_silent_folder_has_defined_statistics(tmp_path):
    for i in range(4):
        (tmp_path / "d" / "quiet").mkdir(parents=True, exist_ok=True)
        sf.write(tmp_path / "d" / "quiet" / f"{i}.wav", np.zeros(SR, np.float32), SR)
    for feature in ("mel", "logmel", "mfcc"):
        ds = load_audio(tmp_path / "d", params=FeatureParams(feature=feature), workers=1)
        st = dataset_stats(ds, on="all")
        assert st.n_nonfinite == 0 and st.constant.all()
        info = summary(ds, st, on="all")
        assert info["constant_pixels"] == ds.shape[0] * ds.shape[1]
        import json

        json.dumps(info, allow_nan=False)


# --- manifests ----------------------------------------------------------------------------------

@pytest.mark.parametrize("text, match", [
    ("path,label\n", "lists no clips"),
    ("", "lists no clips"),
    ("a.wav\n", "line 1 of .* is 'a.wav'; every line must be path,label"),
    ("path,label\na.wav,dog\nb.wav,\n", "line 3 of .* every line must be path,label"),
    ('"unterminated,dog\n', "lists no clips|every line must be|not a valid CSV"),
])
def test_bad_manifest(tmp_path, text, match):
    (tmp_path / "m.csv").write_text(text)
    with pytest.raises(NormScopeError, match=match):
        load_audio(tmp_path / "m.csv")


def test_binary_manifest(tmp_path):
    (tmp_path / "m.csv").write_bytes(b"\xff\xfe\x00\x81garbage")
    with pytest.raises(NormScopeError, match="not a UTF-8 text file"):
        load_audio(tmp_path / "m.csv")


def test_manifest_of_missing_files_is_an_error(tmp_path):
    (tmp_path / "m.csv").write_text("a.wav,x\nb.wav,y\n")
    with pytest.raises(NormScopeError, match=r"none of the 2 clips .*first: a.wav: does not exist"):
        load_audio(tmp_path / "m.csv")


# --- zip uploads --------------------------------------------------------------------------------

@pytest.mark.parametrize("entry", ["../x.wav", "dog/../../x.wav", "/tmp/x.wav", "C:\\x.wav",
                                   "\\\\server\\share\\x.wav", "dog\\..\\..\\x.wav"])
def test_zip_with_traversal_or_absolute_entries_is_refused(tmp_path, rng, entry, home):
    data = zip_bytes({"dog/a.wav": wav_bytes(rng=rng), entry: wav_bytes(rng=rng)})
    with pytest.raises(NormScopeError, match="points outside the archive"):
        register_upload_zip("evil.zip", data, FeatureParams())
    assert not (tmp_path / "x.wav").exists() and not (home / "x.wav").exists()
    assert store.list_datasets() == []


def test_zip_bomb_is_refused_by_declared_size(rng):
    data = zip_bytes({"dog/a.wav": wav_bytes(rng=rng), "dog/zeros.wav": bytes(5 * 2**20)})
    assert len(data) < 100_000  # 5 MiB of zeros compress to a few KiB
    with pytest.raises(NormScopeError, match="unpacks to more than 1 MiB"):
        register_upload_zip("bomb.zip", data, FeatureParams(), max_bytes=2**20)


def _set_declared_size(data: bytes, name: bytes, size: int) -> bytes:
    """Rewrite the uncompressed size of ``name`` in the central directory (a lying header)."""
    buf = bytearray(data)
    i = buf.find(b"PK\x01\x02" + b"", 0)
    while i != -1:
        n = struct.unpack_from("<H", buf, i + 28)[0]
        if bytes(buf[i + 46:i + 46 + n]) == name:
            struct.pack_into("<I", buf, i + 24, size)
        i = buf.find(b"PK\x01\x02", i + 4)
    return bytes(buf)


def test_zip_bomb_is_refused_with_default_limits_without_unpacking(rng, home):
    data = zip_bytes({"dog/a.wav": wav_bytes(rng=rng), "dog/b.wav": bytes(2**20)})
    data = _set_declared_size(data, b"dog/b.wav", 3 * 2**30)  # claims 3 GiB
    with pytest.raises(NormScopeError, match="unpacks to more than 2,048 MiB"):
        register_upload_zip("bomb.zip", data, FeatureParams())
    assert not any((home / "tmp").iterdir())


def test_zip_that_understates_its_size_is_caught(rng):
    data = zip_bytes({"dog/a.wav": wav_bytes(rng=rng), "dog/b.wav": bytes(2**20)})
    data = _set_declared_size(data, b"dog/b.wav", 1000)  # claims 1 kB, holds 1 MiB
    with pytest.raises(NormScopeError, match="damaged|unpacks to more than"):
        register_upload_zip("liar.zip", data, FeatureParams(), max_bytes=200_000)


def test_zip_with_too_many_entries(rng):
    data = zip_bytes({f"dog/{i}.txt": b"" for i in range(50)})
    with pytest.raises(NormScopeError, match="50 entries, more than the limit of 10"):
        register_upload_zip("many.zip", data, FeatureParams(), max_entries=10)


@pytest.mark.parametrize("name, data, match", [
    ("x.zip", b"not a zip at all", "x.zip is not a readable zip archive"),
    ("x.tar", b"whatever", "x.tar is not a .zip archive"),
    ("empty.zip", None, "empty.zip holds no audio clips|empty.zip is empty"),
    ("junk.zip", "junk", "junk.zip holds no audio clips"),
])
def test_zip_that_is_not_a_zip_of_clips(name, data, match):
    if data is None:
        data = zip_bytes({})
    elif data == "junk":
        data = zip_bytes({"__MACOSX/._a.wav": b"x", "notes/readme.txt": b"x"})
    with pytest.raises(NormScopeError, match=match):
        register_upload_zip(name, data, FeatureParams())


def test_zip_of_undecodable_clips(rng):
    data = zip_bytes({"dog/a.wav": b"nope", "cat/b.wav": b"nope"})
    with pytest.raises(NormScopeError, match="none of the 2 clips in bad.zip could be decoded"):
        register_upload_zip("bad.zip", data, FeatureParams())


# --- array uploads: pickles, keys, shapes, values, labels -------------------------------------

def test_pickle_upload_is_refused_and_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    for name, blob in (("evil.npy", evil_pickle(marker)), ("evil.npz", evil_pickle(marker)),
                       ("objects.npy", evil_object_npy(marker))):
        with pytest.raises(NormScopeError, match="pickle|Python objects|not a"):
            register_upload_npy_npz(name, blob)
        assert not marker.exists(), f"{name} was unpickled"
    good = npy_bytes(np.ones((4, 3, 2), np.float32))
    with pytest.raises(NormScopeError, match="Python objects|pickle"):
        register_upload_npy_npz("x.npy", good, labels_bytes=evil_object_npy(marker))
    with pytest.raises(NormScopeError, match="Python objects"):
        register_upload_npy_npz("x.npz", npz_bytes(X=np.array([Evil()], dtype=object)))
    assert not marker.exists()


def test_npz_without_expected_keys_names_the_keys_it_has():
    blob = npz_bytes(features_v2=np.ones((2, 3, 4)), target=np.arange(2))
    with pytest.raises(NormScopeError,
                       match=r"has no array named X \(it has: features_v2, target\)"):
        register_upload_npy_npz("mine.npz", blob)


@pytest.mark.parametrize("shape", [(10,), (10, 5), (2, 3, 4, 5), (0, 3, 4)])
def test_wrong_dimensions(shape):
    with pytest.raises(NormScopeError, match=r"mine.npy holds an (empty )?array of shape"):
        register_upload_npy_npz("mine.npy", npy_bytes(np.ones(shape, np.float32)))


def test_upload_message_names_the_upload_not_a_temporary_file():
    with pytest.raises(NormScopeError) as info:
        register_upload_npy_npz("my data.npy", npy_bytes(np.ones((3,), np.float32)))
    assert str(info.value).startswith("my data.npy holds") and "tmp" not in str(info.value)


def test_strings_and_wrong_upload_names():
    with pytest.raises(NormScopeError, match="photo.png is not an array file"):
        register_upload_npy_npz("photo.png", b"\x89PNG")
    with pytest.raises(NormScopeError, match="x.npy is empty"):
        register_upload_npy_npz("x.npy", b"")
    with pytest.raises(NormScopeError, match="values of type <U1"):
        register_upload_npy_npz("s.npy", npy_bytes(np.array([[["a"]]])))


def test_nan_and_inf_are_kept_counted_and_reported():
    X = np.ones((20, 4, 5), np.float32)
    X[:, 0] = np.linspace(0, 1, 20)[:, None]
    X[3, 1, 1], X[7, 2, 2] = np.nan, np.inf
    ds = open_dataset(register_upload_npy_npz("holes.npy", npy_bytes(X)))
    st = dataset_stats(ds, on="all")
    info = summary(ds, st, on="all")
    assert info["nonfinite_values"] == 2
    assert any(f["code"] == "nonfinite_values" for f in info["findings"])
    import json

    json.dumps(info, allow_nan=False)


@pytest.mark.parametrize("labels, match", [
    (np.arange(7), "7 labels for 10 examples"),
    (np.array([0.5] * 10), "non-integer floats"),
    (np.array([np.nan] * 10), "non-integer floats"),
    (np.zeros((10, 2)), r"labels have shape \(10, 2\)"),
])
def test_bad_labels(labels, match):
    X = npy_bytes(np.ones((10, 3, 4), np.float32))
    with pytest.raises(NormScopeError, match=match):
        register_upload_npy_npz("x.npy", X, labels_bytes=npy_bytes(labels))


def test_register_arrays_rejects_bad_labels():
    X = np.ones((4, 3, 2), np.float32)
    with pytest.raises(NormScopeError, match="class indices 0..1"):
        register_arrays(X, np.array([0, 1, 2, 0]), ("a", "b"), "x")
    with pytest.raises(NormScopeError, match="3 labels for 4 examples"):
        register_arrays(X, np.array([0, 1, 0]), ("a", "b"), "x")


# --- ids and paths --------------------------------------------------------------------------------

@pytest.mark.parametrize("ident, match", [
    ("0123456789ab", "no dataset with id 0123456789ab"),
    ("not-an-id", "is not a dataset id"),
    ("../../etc/passwd", "is not a dataset id"),
    ("ABCDEF012345", "is not a dataset id"),
])
def test_unknown_or_malformed_id(ident, match):
    with pytest.raises(NormScopeError, match=match):
        open_dataset(ident)


def test_path_outside_the_data_root(tmp_path, rng):
    make_folder(tmp_path / "elsewhere", rng, per_class=1)
    (tmp_path / "root").mkdir()
    with pytest.raises(NormScopeError, match="lies outside the data root"):
        load_dataset("../elsewhere", root=tmp_path / "root")


def test_labels_with_audio_folders_are_refused(tmp_path, rng):
    make_folder(tmp_path / "d", rng, per_class=1)
    with pytest.raises(NormScopeError, match="--labels applies to .npy files only"):
        load_dataset(str(tmp_path / "d"), labels="y.npy")


# --- the command line: exit 2, one line, no traceback ------------------------------------------

@pytest.fixture
def corpus(tmp_path, rng):
    """Bad inputs on disk, by name."""
    (tmp_path / "empty").mkdir()
    (tmp_path / "noaudio" / "dog").mkdir(parents=True)
    (tmp_path / "noaudio" / "dog" / "a.txt").write_text("x")
    (tmp_path / "corrupt" / "dog").mkdir(parents=True)
    for i in range(3):
        (tmp_path / "corrupt" / "dog" / f"{i}.wav").write_bytes(b"RIFF\x00\x00garbage")
    (tmp_path / "pickle.npy").write_bytes(evil_pickle(tmp_path / "pwned"))
    (tmp_path / "objects.npy").write_bytes(evil_object_npy(tmp_path / "pwned"))
    (tmp_path / "nokeys.npz").write_bytes(npz_bytes(a=np.ones((2, 3, 4)), b=np.ones(2)))
    np.save(tmp_path / "flat.npy", np.ones((5, 6), np.float32))
    (tmp_path / "bad.csv").write_text("only-a-path.wav\n")
    make_folder(tmp_path / "good", rng, per_class=1)
    return tmp_path


@pytest.mark.parametrize("args, match", [
    (["{d}/empty"], "is empty; put one sub-folder per class"),
    (["{d}/noaudio"], "holds no audio clips"),
    (["{d}/corrupt"], "none of the 3 clips"),
    (["{d}/pickle.npy"], "is a Python pickle"),
    (["{d}/objects.npy"], "holds Python objects"),
    (["{d}/nokeys.npz"], r"it has: a, b"),
    (["{d}/flat.npy"], r"shape \(5, 6\)"),
    (["{d}/bad.csv"], "every line must be path,label"),
    (["0123456789ab"], "no dataset with id 0123456789ab"),
    (["{d}/good", "--feature", "db"], "feature='db' is unknown"),
    (["{d}/good", "--sr", "fast"], "--sr 'fast' is not a number"),
    (["{d}/good", "--hop", "0"], "hop=0 must be between"),
    (["{d}/good", "--n-mfcc", "99", "--feature", "mfcc"], "n_mfcc=99 must not exceed"),
    (["{d}/good", "--workers", "0"], "--workers 0 must be a whole number"),
    (["{d}/good", "--labels", "{d}/flat.npy"], "--labels applies to .npy files only"),
    (["demo", "--feature", "logmel"], "apply to audio folders"),
])
def test_cli_bad_input_is_one_line_exit_2(cli, cli_main, corpus, home, args, match):
    import re

    # An empty folder on the real command line (exit status, no traceback); the other inputs
    # through the CLI's main in this process (the same checks of its output).
    run = cli if args == ["{d}/empty"] else cli_main
    r = run("stats", *[a.format(d=corpus) for a in args], env={"NORMSCOPE_HOME": str(home)})
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert re.search(match, lines[0]), lines[0]
    assert "Traceback" not in r.stderr and r.stdout == ""
    assert not (corpus / "pwned").exists()


def test_zip_entry_names_are_checked_before_anything_is_written(tmp_path, rng, home):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("dog/a.wav", wav_bytes(rng=rng))
        zf.writestr("dog/b.wav", wav_bytes(rng=rng))
        zf.writestr("../../escape.wav", b"x")  # last: a streaming extractor would have begun
    with pytest.raises(NormScopeError, match="escape.wav"):
        register_upload_zip("late.zip", buf.getvalue(), FeatureParams())
    tmp = home / "tmp"
    assert not tmp.exists() or not any(tmp.iterdir())
