"""Hostile and unlucky inputs to the data layer and the command line (issue 10; issue 9 item 8).

Each case ends in one sentence (a NormScopeError, or one ``error:`` line and exit 2), never a
traceback, a hang, a crash, an unbounded allocation or a wrong number:

- a compressed ``.npz`` bomb, refused before inflating under a memory ceiling;
- ``.npy``/``.npz`` headers with negative or overflowing dimensions, members shorter than their
  header, malformed headers;
- a full disk (a 2 MiB tmpfs, or a loop file): dataset writes, uploads, CLI outputs, and the
  temporary folders dead writers leave;
- float64 sources keep their precision and their range;
- FIFOs where files are expected;
- zips holding a path as file and folder, and names too long for a file system;
- feature settings too big to allocate;
- the CLI: system errors, bugs (a log file), terminal injection, RuntimeWarnings;
- a folder reopened after its bad clips were deleted.
"""

from __future__ import annotations

import io
import os
import shutil
import struct
import subprocess
import sys
import textwrap
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from audio_helpers import make_folder, npz_bytes, wav_bytes, zip_bytes

from diagnostics.data import files, store
from diagnostics.data.arrays import load_array_file
from diagnostics.data.audio import features as audio_features
from diagnostics.data.audio.features import FeatureParams, extract_features
from diagnostics.data.audio.loader import load_audio
from diagnostics.data.ingest import load_dataset
from diagnostics.data.store import dataset_meta, open_dataset, register_arrays
from diagnostics.data.uploads import register_upload_npy_npz, register_upload_zip
from diagnostics.errors import NormScopeError
from diagnostics.stats.summary import dataset_stats

REPO = Path(__file__).resolve().parents[2]


def run_python(code: str, *, env: dict | None = None, memory_limit: int | None = None,
               timeout: float = 60) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter from the repository root (optionally under an
    address-space limit, set in the child before anything is imported)."""
    full_env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
                "MKL_NUM_THREADS": "1", **(env or {})}
    full_env["PYTHONPATH"] = str(REPO) + os.pathsep + full_env.get("PYTHONPATH", "")

    def limit():
        if memory_limit is not None:
            import resource

            resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))

    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO, env=full_env,
                          capture_output=True, text=True, timeout=timeout, preexec_fn=limit)


def one_error_line(r: subprocess.CompletedProcess, status: int = 2) -> str:
    """The single ``error:`` line of a failed CLI run (and no traceback)."""
    assert r.returncode == status, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    return lines[0]


# --- builders -----------------------------------------------------------------------------------

def npy_header(shape_text: str, descr: str = "<f4", *, raw: str | None = None) -> bytes:
    """A version 1.0 ``.npy`` header written by hand (so it can lie)."""
    text = raw if raw is not None else (
        f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_text}, }}")
    body = text.encode("latin1")
    pad = 64 - (10 + len(body) + 1) % 64
    body += b" " * pad + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(body)) + body


def zip_of(entries: dict[str, bytes], *, compression=zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


#: The bomb's member: a float32 array of 1023 x 1024 x 1024 zeros (4 GiB less 4 MiB).
BOMB_HEADER = npy_header("(1023, 1024, 1024)")
BOMB_DATA_BYTES = 1023 * 1024 * 1024 * 4
#: CRC-32 of BOMB_HEADER followed by BOMB_DATA_BYTES zeros (computed once by inflating it all).
BOMB_CRC = 0xC27E8EDF


def npz_bomb() -> bytes:
    """A ~4 MB ``.npz`` whose member ``X.npy`` unpacks to ~4 GiB of zeros, built in 20 ms.

    After a full flush deflate starts afresh, so every MiB of zeros compresses to the same
    1,037 bytes: the stream is the header, that block 4,092 times, and an end block.
    """
    assert len(BOMB_HEADER) == 128
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = comp.compress(BOMB_HEADER) + comp.flush(zlib.Z_FULL_FLUSH)
    block = comp.compress(bytes(2**20)) + comp.flush(zlib.Z_FULL_FLUSH)
    stream = head + block * (BOMB_DATA_BYTES // 2**20) + comp.flush()
    name = b"X.npy"
    size = len(BOMB_HEADER) + BOMB_DATA_BYTES
    local = struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, 8, 0, 0x21, BOMB_CRC,
                        len(stream), size, len(name), 0) + name
    central = struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, 0, 8, 0, 0x21, BOMB_CRC,
                          len(stream), size, len(name), 0, 0, 0, 0, 0o100644 << 16, 0) + name
    end = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, 1, 1, len(central),
                      len(local) + len(stream), 0)
    return local + stream + central + end


def test_the_bomb_is_what_it_claims():
    data = npz_bomb()
    assert 3e6 < len(data) < 5e6
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        info = zf.getinfo("X.npy")
        assert info.file_size == 128 + BOMB_DATA_BYTES and info.CRC == BOMB_CRC
        with zf.open(info) as src:
            assert src.read(128) == BOMB_HEADER
            assert src.read(2**20) == bytes(2**20)  # zeros follow


# --- 1. the .npz bomb ---------------------------------------------------------------------------

def test_npz_bomb_upload_is_refused_before_inflating_under_a_memory_ceiling(tmp_path, home):
    bomb = tmp_path / "bomb.npz"
    bomb.write_bytes(npz_bomb())
    r = run_python(f"""
        from pathlib import Path
        from diagnostics.data.uploads import register_upload_npy_npz
        from diagnostics.errors import NormScopeError
        try:
            register_upload_npy_npz("bomb.npz", Path({str(bomb)!r}).read_bytes())
        except NormScopeError as exc:
            print("refused:", exc)
        """, env={"NORMSCOPE_HOME": str(home)}, memory_limit=int(1.5 * 2**30))
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("refused: bomb.npz: member X.npy unpacks to 4.0 GiB, more than "
                               "the 2.0 GiB allowed for uploads"), r.stdout
    assert len(r.stdout.splitlines()) == 1 and r.stderr == ""
    assert store.list_datasets() == [] and not any((home / "tmp").iterdir())


def test_npz_bomb_on_the_server_is_bounded_by_free_disk(tmp_path, small_disk, cli):
    bomb = tmp_path / "bomb.npz"
    bomb.write_bytes(npz_bomb())
    r = run_python(f"""
        import sys
        from diagnostics.cli.main import main
        sys.exit(main(["stats", {str(bomb)!r}]))
        """, env={"NORMSCOPE_HOME": str(small_disk)}, memory_limit=int(1.5 * 2**30))
    line = one_error_line(r)
    assert "member X.npy unpacks to 4.0 GiB and only" in line and "are free in" in line
    assert not any((small_disk / "tmp").iterdir())


def test_compressed_member_is_inflated_to_disk_not_memory(tmp_path, rng, home):
    X = rng.random((30, 8, 9))
    np.savez_compressed(tmp_path / "c.npz", X=X, y=np.arange(30) % 3)
    ds = load_array_file(tmp_path / "c.npz")
    assert isinstance(ds.X, np.memmap) and ds.X.dtype == np.float64
    np.testing.assert_array_equal(ds.X, X)
    assert not any((home / "tmp").iterdir())  # an anonymous file: nothing to clean up


def test_npz_member_larger_than_half_the_free_disk_is_refused(tmp_path, monkeypatch, home):
    from diagnostics.data import arrays

    np.savez_compressed(tmp_path / "c.npz", X=np.zeros((100, 100, 100)))  # 8 MB unpacked
    monkeypatch.setattr(arrays, "free_bytes", lambda folder: 4 * 2**20)
    with pytest.raises(NormScopeError, match=r"member X.npy unpacks to 7.6 MiB and only 4.0 MiB "
                                             r"are free in .*tmp \(half may be used\)"):
        load_array_file(tmp_path / "c.npz")


def test_npz_member_larger_than_the_given_limit_is_refused(tmp_path, rng):
    np.savez_compressed(tmp_path / "c.npz", X=np.zeros((100, 10, 10)))
    with pytest.raises(NormScopeError, match="member X.npy unpacks to 78 KiB, more than the "
                                             "1000 bytes allowed"):
        load_array_file(tmp_path / "c.npz", max_unpacked=1000)


# --- 2. headers ---------------------------------------------------------------------------------

BAD_HEADERS = [
    pytest.param(npy_header("(-1, 3, 4)") + bytes(96), "negative dimension", id="minus-one"),
    pytest.param(npy_header("(2, -3, -4)") + bytes(96), "negative dimension", id="two-negative"),
    pytest.param(npy_header("(4611686018427387904, 4611686018427387904, 8)") + bytes(96),
                 "overflows", id="overflow"),
    pytest.param(npy_header("(2, 3, 4)") + bytes(50), "holds 50 bytes of data but its header",
                 id="short-data"),
    pytest.param(npy_header("", raw="{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3, 4"),
                 "header is not readable", id="not-a-literal"),
    pytest.param(npy_header("", raw="{'descr': '<f4', 'shape': (2, 3, 4)}"), "lacks descr",
                 id="missing-key"),
    pytest.param(npy_header("(2, 3.5, 4)") + bytes(96), "not a tuple of integers", id="float-dim"),
    pytest.param(npy_header("(2, 3, 4)", descr="<q9") + bytes(96), "unknown type",
                 id="unknown-type"),
]


@pytest.mark.parametrize("content, match", BAD_HEADERS)
def test_bad_npy_header_is_damaged_never_objects(tmp_path, content, match):
    (tmp_path / "bad.npy").write_bytes(content)
    with pytest.raises(NormScopeError, match=f"bad.npy is damaged or truncated: .*{match}") as e:
        load_array_file(tmp_path / "bad.npy")
    assert "Python objects" not in str(e.value)


def test_unreadable_header_on_the_cli_is_one_line(tmp_path, cli, home):
    # numpy's own header reader let a tokenize error through: a traceback, exit 1.
    (tmp_path / "bad.npy").write_bytes(npy_header("", raw="{'descr': '<f4', 'shape': (2, 3"))
    line = one_error_line(cli("stats", str(tmp_path / "bad.npy"),
                              env={"NORMSCOPE_HOME": str(home)}))
    assert "bad.npy is damaged or truncated: its header is not readable" in line


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED],
                         ids=["stored", "deflated"])
@pytest.mark.parametrize("content, match", BAD_HEADERS[:5])
def test_bad_npz_member_header_names_the_member(tmp_path, content, match, compression):
    y = io.BytesIO()
    np.save(y, np.arange(2))
    (tmp_path / "bad.npz").write_bytes(zip_of({"X.npy": content, "y.npy": y.getvalue()},
                                              compression=compression))
    with pytest.raises(NormScopeError,
                       match=rf"\(member X.npy\) is damaged or truncated: .*{match}"):
        load_array_file(tmp_path / "bad.npz")


def test_member_shorter_than_its_header_is_damaged_not_mapped_into_the_next(tmp_path, rng, cli,
                                                                           home):
    # An np.savez-like archive (stored members, right CRCs) whose X.npy header claims 9
    # examples where 2 are stored: a mapping would read the following members as data.
    X = rng.random((2, 3, 4)).astype(np.float32)
    members = {"X.npy": npy_header("(9, 3, 4)") + X.tobytes()}
    for name, arr in (("y.npy", np.arange(2)), ("z.npy", np.ones((50, 30)))):
        buf = io.BytesIO()
        np.save(buf, arr)
        members[name] = buf.getvalue()
    (tmp_path / "lying.npz").write_bytes(zip_of(members))
    with pytest.raises(NormScopeError, match=r"lying.npz \(member X.npy\) is damaged or truncated"
                                             r": it holds 96 bytes of data but its header"):
        load_array_file(tmp_path / "lying.npz")
    line = one_error_line(cli("stats", str(tmp_path / "lying.npz"),
                              env={"NORMSCOPE_HOME": str(home)}))
    assert "member X.npy" in line and "damaged" in line


# --- 3. a full disk -----------------------------------------------------------------------------

def _mount_small_disk(mnt: Path, size_mib: int = 2) -> str | None:
    """Mount a small file system on ``mnt``; None when it worked, else why not."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or shutil.which("mount") is None:
        return "mounting a small file system needs root and mount(8)"
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mib}m", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode == 0:
        return None
    why = f"tmpfs: {r.stderr.strip()}"
    img = mnt.parent / "small-disk.img"
    mkfs = shutil.which("mkfs.ext4") or shutil.which("mkfs.ext2")
    if mkfs is None:
        return why + "; no mkfs for a loop file"
    with open(img, "wb") as fh:
        fh.truncate(size_mib * 2**20 + 2**20)
    r2 = subprocess.run([mkfs, "-q", "-F", str(img)], capture_output=True, text=True)
    if r2.returncode == 0:
        r2 = subprocess.run(["mount", "-o", "loop", str(img), str(mnt)], capture_output=True,
                            text=True)
    return None if r2.returncode == 0 else f"{why}; loop file: {r2.stderr.strip()}"


@pytest.fixture
def small_disk(tmp_path):
    """A ~2 MiB file system (tmpfs, else a loop file), unmounted afterwards; skipped with the
    reason where neither can be mounted."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    why = _mount_small_disk(mnt)
    if why is not None:
        pytest.skip(f"no small disk to fill: {why}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def fill(disk: Path, leave: int) -> None:
    """Fill ``disk`` until about ``leave`` bytes are free."""
    free = shutil.disk_usage(disk).free
    with open(disk / "filler", "wb") as fh:
        fh.write(bytes(max(free - leave, 0)))


def test_dataset_bigger_than_the_free_space_is_refused_before_writing(small_disk, monkeypatch,
                                                                      rng):
    monkeypatch.setenv("NORMSCOPE_HOME", str(small_disk))
    X = rng.random((40, 100, 100)).astype(np.float32)  # 1.6 MB + the check's margin > 2 MiB
    with pytest.raises(NormScopeError, match=r"needs .* on disk and only .* are free in"):
        register_arrays(X, None, (), "big")
    assert [p.name for p in (small_disk / "datasets").iterdir()] == []


def test_disk_filling_during_a_write_is_an_error_not_a_bus_error(small_disk, rng):
    # The free-space check is told there is room, so the write itself meets the full disk:
    # through a writable memory map that was SIGBUS (exit -7), with plain writes an OSError.
    r = run_python("""
        import numpy as np
        from diagnostics.data import store
        from diagnostics.errors import NormScopeError
        store.free_bytes = lambda folder: 10**12
        X = np.random.default_rng(0).random((30, 100, 100)).astype(np.float32)  # 1.2 MB
        open(store.home() / "filler", "wb").write(bytes(1_000_000))
        try:
            store.register_arrays(X, None, (), "big")
        except NormScopeError as exc:
            print("refused:", exc)
        """, env={"NORMSCOPE_HOME": str(small_disk)})
    assert r.returncode == 0, (r.returncode, r.stderr)
    assert "refused: cannot write dataset" in r.stdout and "No space left" in r.stdout
    assert [p.name for p in (small_disk / "datasets").iterdir()] == []  # staging removed


def test_upload_on_a_full_disk_is_one_sentence(small_disk, monkeypatch, rng):
    monkeypatch.setenv("NORMSCOPE_HOME", str(small_disk))
    (small_disk / "tmp").mkdir()
    fill(small_disk, 100_000)
    data = npz_bytes(X=rng.random((20, 40, 40)).astype(np.float32))  # 128 KB
    with pytest.raises(NormScopeError, match="cannot store the upload data.npz .*No space left"):
        register_upload_npy_npz("data.npz", data)
    assert not any((small_disk / "tmp").iterdir())


def test_compare_on_a_full_disk_is_one_sentence_and_no_store_is_called_damaged(small_disk, cli):
    fill(small_disk, 0)
    r = cli("compare", "digits", "--epochs", "1", "--eval", "holdout", "--seeds", "1",
            "--no-decide", "--workers", "1", env={"NORMSCOPE_HOME": str(small_disk / "home")})
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("error: the run store") and "cannot be written" in r.stderr
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert not list((small_disk / "home").glob("runs.db.damaged-*"))  # a full disk is no damage


@pytest.mark.slow
def test_disk_filling_during_compare_is_one_sentence_and_the_store_stays_sound(small_disk, cli):
    from models.store import RunStore

    home = small_disk / "home"
    RunStore(home / "runs.db")
    fill(small_disk, 150_000)  # room for the comparison, not for all its curves
    r = cli("compare", "digits", "--model", "linear", "--epochs", "2000", "--patience", "0",
            "--eval", "holdout", "--seeds", "1", "--no-decide", "--workers", "1",
            env={"NORMSCOPE_HOME": str(home), "NORMSCOPE_MAX_EPOCHS": "2000"}, timeout=300)
    assert r.returncode == 2, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: the run store") and "disk is full" in last
    assert "Traceback" not in r.stderr
    (small_disk / "filler").unlink()
    s = RunStore(home / "runs.db")
    assert s.integrity_check() == "ok" and s.notice is None
    s.mark_interrupted()
    (comp,) = s.list_comparisons()
    assert comp.status in ("failed", "interrupted")


def test_the_app_on_a_full_disk_says_so_and_keeps_the_statistics(small_disk, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("NORMSCOPE_HOME", str(small_disk / "home"))
    monkeypatch.setenv("NORMSCOPE_DATA_ROOT", str(small_disk))
    fill(small_disk, 0)
    for tab in ("Statistics", "Compare"):
        at = AppTest.from_file(str(Path(__file__).resolve().parents[2] / "app.py"),
                               default_timeout=120)
        at.query_params.update({"tab": tab, "runs": "abc"})
        at.run()
        assert not at.exception, at.exception
        assert any("cannot be written" in str(e.value) for e in at.error)
    assert not list((small_disk / "home").glob("runs.db.damaged-*"))


def test_stale_temporary_folders_are_removed_at_start_up_live_ones_kept(home, tmp_path, rng):
    np.save(tmp_path / "x.npy", rng.random((4, 3, 5)).astype(np.float32))
    datasets, tmp = home / "datasets", home / "tmp"
    old = time.time() - 3600
    stale = [datasets / ".tmp-0123456789ab-dead0001", datasets / ".trash-0123456789ab-dead0002",
             tmp / "upload-dead0003"]
    for d in stale:
        (d / "sub").mkdir(parents=True)
        (d / "sub" / "X.npy").write_bytes(b"half a dataset")
        os.utime(d, (old, old))
    live = datasets / ".tmp-0123456789ab-live0004"  # a writer in another process, still at work
    live.mkdir()
    os.utime(live, (old, old))
    young = tmp / "upload-young0005"  # created a moment ago: its writer may not hold it yet
    young.mkdir()
    claim = files.claim_dir(live)
    try:
        load_dataset(str(tmp_path / "x.npy"))  # the first open of this process cleans up
        assert not any(d.exists() for d in stale)
        assert live.is_dir() and young.is_dir()
    finally:
        files.release_dir(claim)
    assert store.clean_stale(force=True) == 1 and not live.exists() and young.is_dir()


def test_cli_outputs_appear_only_when_complete(small_disk, tmp_path, rng, cli, home):
    np.save(tmp_path / "x.npy", rng.random((8, 128, 128)).astype(np.float32))
    (small_disk / "out.npz").write_bytes(b"the previous result")
    fill(small_disk, 150_000)  # the arrays take about 530 KB, the report about 5 MB
    env = {"NORMSCOPE_HOME": str(home)}
    line = one_error_line(cli("stats", str(tmp_path / "x.npy"), "--out",
                              str(small_disk / "out.npz"), env=env))
    assert "cannot write" in line and "No space left on device" in line
    line = one_error_line(cli("report", str(tmp_path / "x.npy"), "--out",
                              str(small_disk / "report.html"), env=env))
    assert "cannot write" in line and "No space left on device" in line
    assert sorted(p.name for p in small_disk.iterdir() if p.name != "lost+found") == [
        "filler", "out.npz"]  # no truncated result, no temporary file
    assert (small_disk / "out.npz").read_bytes() == b"the previous result"


def test_cli_out_is_written_under_its_name(tmp_path, rng, cli, home):
    np.save(tmp_path / "x.npy", rng.random((8, 6, 7)).astype(np.float32))
    r = cli("stats", str(tmp_path / "x.npy"), "--out", str(tmp_path / "o"), "--json",
            env={"NORMSCOPE_HOME": str(home)})
    assert r.returncode == 0, r.stderr
    with np.load(tmp_path / "o.npz") as z:  # np.savez's rule: ".npz" is added
        assert z["mean"].shape == (6, 7)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "home") == ["o.npz", "x.npy"]


# --- 4. float64 kept ----------------------------------------------------------------------------

def precise_float64(rng) -> np.ndarray:
    """Values near 1e5 whose per-pixel spread is 1e-3 .. 2e-2 (1e-8 .. 2e-7 relative): float32
    (spacing 0.0078 there) rounds the narrow pixels to a constant and shrinks the others."""
    spread = np.geomspace(1e-3, 2e-2, 6 * 7).reshape(6, 7)
    return 1e5 + rng.normal(0.0, 1.0, (300, 6, 7)) * spread


@pytest.mark.parametrize("route", ["upload", "server file"])
def test_float64_npz_keeps_its_std_and_no_false_constant_pixels(tmp_path, rng, route, home):
    X = precise_float64(rng)
    np.savez_compressed(tmp_path / "f64.npz", X=X)
    if route == "upload":
        ident = register_upload_npy_npz("f64.npz", (tmp_path / "f64.npz").read_bytes())
        ds = open_dataset(ident)
    else:
        ds = load_array_file(tmp_path / "f64.npz")
    assert ds.X.dtype == np.float64
    st = dataset_stats(ds, on="all")
    np.testing.assert_allclose(st.std, X.std(axis=0), rtol=1e-6)
    assert st.n_constant == 0
    # The check has teeth: the same data through float32 shows constant pixels and a wrong std.
    r32 = X.astype(np.float32).astype(np.float64)
    assert np.sum(r32.std(axis=0) == 0) > 0
    assert not np.allclose(r32.std(axis=0), X.std(axis=0), rtol=0.05)


def test_values_beyond_float32_stay_finite(tmp_path, rng, home):
    X = rng.random((10, 4, 5)) * 1e300
    ident = register_arrays(X, None, (), "huge")
    stored = open_dataset(ident).X
    assert stored.dtype == np.float64 and np.all(np.isfinite(stored))
    np.testing.assert_array_equal(stored, X)
    up = register_upload_npy_npz("huge.npz", npz_bytes(X=X))
    assert np.all(np.isfinite(open_dataset(up).X))


def test_float32_ids_unchanged_and_float64_ids_hash_float64(rng):
    X = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    assert store.content_id(X, np.array([0, 1]), ("a", "b")) == "1f8592cffeb7"  # format 1
    a = store.content_id(X.astype(np.float64), None, ())
    b = store.content_id(X.astype(np.float64) * (1 + 1e-12), None, ())
    assert a != b  # a difference float32 cannot hold still makes another dataset


# --- 5. FIFOs -----------------------------------------------------------------------------------

@pytest.mark.timeout(10)
def test_fifo_array_file_is_refused_not_waited_on(tmp_path, rng, cli, home):
    os.mkfifo(tmp_path / "x.npy")
    os.mkfifo(tmp_path / "y.npy")
    with pytest.raises(NormScopeError, match=r"x.npy is a FIFO \(named pipe\), not a regular file"):
        load_array_file(tmp_path / "x.npy")
    np.save(tmp_path / "ok.npy", rng.random((4, 3, 5)).astype(np.float32))
    with pytest.raises(NormScopeError, match="y.npy is a FIFO"):
        load_array_file(tmp_path / "ok.npy", tmp_path / "y.npy")
    os.mkfifo(tmp_path / "m.csv")
    with pytest.raises(NormScopeError, match="m.csv is a FIFO"):
        load_dataset(str(tmp_path / "m.csv"))
    line = one_error_line(cli("stats", str(tmp_path / "x.npy"), env={"NORMSCOPE_HOME": str(home)},
                              timeout=8))
    assert "FIFO" in line


@pytest.mark.timeout(20)
def test_fifo_clip_in_a_class_folder_is_skipped_not_waited_on(tmp_path, rng, home):
    folder = make_folder(tmp_path / "clips", rng, per_class=2)
    os.mkfifo(folder / "dog" / "pipe.wav")
    ds = load_audio(folder, params=FeatureParams(duration=0.5), workers=1)
    assert ds.n == 4
    assert dataset_meta(ds.id)["skipped"] == [["dog/pipe.wav",
                                               "is a FIFO (named pipe), not an audio file"]]


# --- 6. zip edge cases --------------------------------------------------------------------------

def test_zip_with_a_path_that_is_file_and_folder_is_one_sentence(rng, home):
    for order in (("data/a", "data/a/0.wav"), ("data/a/0.wav", "data/a")):
        data = zip_bytes({name: wav_bytes(rng=rng) for name in order})
        with pytest.raises(NormScopeError, match="holds 'data/a' both as a file and as a folder"):
            register_upload_zip("clash.zip", data, FeatureParams(duration=0.5))
    assert not any((home / "tmp").iterdir())


def test_zip_entry_name_over_255_bytes_is_one_sentence(rng, home):
    long = "é" * 130 + ".wav"  # 264 bytes in UTF-8
    data = zip_bytes({"dog/a.wav": wav_bytes(rng=rng), f"dog/{long}": wav_bytes(rng=rng)})
    with pytest.raises(NormScopeError, match="is 264 bytes long, more than the 255 a file name"):
        register_upload_zip("long.zip", data, FeatureParams(duration=0.5))
    assert not any((home / "tmp").iterdir())


# --- 7. feature settings too big ----------------------------------------------------------------

def test_feature_settings_too_big_are_refused_before_allocating(tmp_path, rng, cli, home):
    with pytest.raises(NormScopeError, match=r"1,382,400,001 frames per clip and needs about "
                                             r"16 TiB of memory per clip, more than the limit"):
        FeatureParams(duration=3600, sr=384_000, hop=1)
    FeatureParams(duration=3600, sr=16_000, hop=160, n_fft=512)  # an hour of speech still fits
    folder = make_folder(tmp_path / "clips", rng, per_class=1)
    line = one_error_line(cli("stats", str(folder), "--duration", "3600", "--sr", "384000",
                              "--hop", "1", env={"NORMSCOPE_HOME": str(home)}))
    assert "memory per clip" in line


def test_too_many_clips_for_memory_are_refused_before_allocating(monkeypatch):
    monkeypatch.setattr(audio_features, "_physical_memory", lambda: 2**17)
    with pytest.raises(NormScopeError, match=r"the features of 3 clips \(60 x 130 each\) take "
                                             r"91 KiB, more than 50% of this machine's memory"):
        extract_features(["a.wav", "b.wav", "c.wav"], FeatureParams(), workers=1)


# --- 8. the command line never shows a traceback -------------------------------------------------

def _main_with(body: str, home: Path, args: str = "['datasets']") -> subprocess.CompletedProcess:
    return run_python(f"""
        import errno, importlib, sys
        m = importlib.import_module("diagnostics.cli.main")
        def broken(args):
            {body}
        m.COMMANDS["datasets"] = broken
        sys.exit(m.main({args}))
        """, env={"NORMSCOPE_HOME": str(home)})


def test_cli_os_error_is_one_line_exit_2(home):
    r = _main_with("raise OSError(errno.ENOSPC, 'No space left on device', '/data/x.npy')", home)
    line = one_error_line(r, 2)
    assert line == ("error: No space left on device (/data/x.npy); free some disk space and run "
                    "it again")


def test_cli_bug_is_one_line_exit_1_with_the_traceback_in_a_log(home, tmp_path):
    r = _main_with("return 1 / 0", home)
    line = one_error_line(r, 1)
    assert line.startswith("error: internal error (ZeroDivisionError); details in ")
    log = Path(line.split("details in ", 1)[1])
    assert log.parent == home / "logs"
    text = log.read_text()
    assert "Traceback" in text and "ZeroDivisionError" in text and "broken" in text
    # An unusable home still gets its log, in the system's temporary folder.
    (tmp_path / "not-a-folder").write_text("")
    r = _main_with("return 1 / 0", tmp_path / "not-a-folder")
    log = Path(one_error_line(r, 1).split("details in ", 1)[1])
    assert log.is_file() and "ZeroDivisionError" in log.read_text()
    log.unlink()


def test_cli_file_names_cannot_inject_into_the_terminal(rng, cli, home):
    # Clip names reach the skipped list as read from the folder (see test_bad_inputs.py for
    # real undecodable clips); Linux allows ESC, CR and newlines in them.
    evil = "dog/x\x1b[2J\x1b[31mred\nerror: forged line\r.wav"
    ident = register_arrays(rng.random((6, 3, 4)), None, (), "clips\x1b]0;title\x07",
                            {"skipped": [[evil, "not readable as audio: \x1b[1mboom"]]})
    r = cli("stats", ident, env={"NORMSCOPE_HOME": str(home)})
    assert r.returncode == 0, r.stderr
    assert "\x1b" not in r.stdout and "\r" not in r.stdout and "\x07" not in r.stdout
    assert not any(ln.startswith("error:") for ln in r.stdout.splitlines() + r.stderr.splitlines())
    assert r"dog/x\x1b[2J\x1b[31mred\nerror: forged line\r.wav: not readable" in r.stdout
    assert r.stdout.startswith(r"clips\x1b]0;title\x07 (id ")


def test_cli_numpy_runtime_warnings_never_reach_stderr(tmp_path, rng, cli, home):
    np.save(tmp_path / "huge.npy", rng.exponential(1.0, (50, 4, 5)) * 1e300)
    r = cli("stats", str(tmp_path / "huge.npy"), "--on", "all",
            env={"NORMSCOPE_HOME": str(home)})
    assert r.stderr == "" and r.returncode == 0, r.stderr
    assert "Warning" not in r.stdout


# --- 9. a folder reopened after its bad clips were deleted ----------------------------------------

def test_reopened_folder_without_its_bad_clips_reports_no_skipped_clips(tmp_path, rng, home):
    folder = make_folder(tmp_path / "clips", rng, per_class=2)
    bad = [folder / "dog" / "broken.wav", folder / "cat" / "empty.wav"]
    bad[0].write_bytes(b"RIFF\x00\x00 not audio")
    bad[1].write_bytes(b"")
    params = FeatureParams(duration=0.5)
    first = load_audio(folder, params=params, workers=1)
    assert len(dataset_meta(first.id)["skipped"]) == 2
    for p in bad:
        p.unlink()
    again = load_audio(folder, params=params, workers=1)
    meta = dataset_meta(again.id)
    assert meta["skipped"] == [] and not any("could not be decoded" in n for n in meta["notes"])
    np.testing.assert_array_equal(again.X, first.X)  # the same clips, reused, not decoded again
    assert meta["extra"]["reused"] == 4 and meta["extra"]["extracted"] == 0
