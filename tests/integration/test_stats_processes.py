"""Statistics in fresh processes: which modules the demo's statistics import, and the numba
kernel's on-disk cache across processes."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import REPO


def _run_py(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_demo_statistics_never_import_numba():
    code = (
        "import sys, json\n"
        "from diagnostics.data.ingest import load_dataset\n"
        "from diagnostics.stats.summary import dataset_stats\n"
        "ds = load_dataset('demo')\n"
        "for on in ('train', 'all'):\n"
        "    dataset_stats(ds, on=on)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('numba', 'llvmlite', 'torch', 'streamlit'))))\n"
    )
    assert json.loads(_run_py(code)) == []


def test_numba_kernel_is_cached_across_processes():
    code = (
        "import numpy as np\n"
        "from diagnostics.stats import moments as S\n"
        "X = np.random.default_rng(0).random((9, 3, 4), dtype=np.float32)\n"
        "S.compute_stats(X, engine='numba')\n"
        "from diagnostics.stats import kernels\n"
        "fast, _ = kernels._get_kernels()\n"
        "print(sum(fast.stats.cache_hits.values()), sum(fast.stats.cache_misses.values()))\n"
    )
    _run_py(code)  # compiles and writes the cache if it is not there yet
    hits, misses = map(int, _run_py(code).split())
    assert (hits, misses) == (1, 0)


def test_a_busy_process_is_seen_at_once():
    """A process spinning on a core is seen at once (not a minute later, as load averages)."""
    import time

    import diagnostics.stats.stream as S

    spin = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        assert S.busy_cores() >= 1
    finally:
        spin.kill()
        spin.wait()
