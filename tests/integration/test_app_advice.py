"""AppTest: the Compare tab offers only the configs the dataset can take (no dB on MFCCs)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def test_signed_data_is_offered_no_compression(rng, tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from diagnostics.normalize import all_config_names

    monkeypatch.setenv("NORMSCOPE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NORMSCOPE_DATA_ROOT", str(tmp_path))
    from diagnostics.data import store

    # MFCC-like: signed, one scale per coefficient.
    X = (rng.standard_normal((120, 12, 16)) * np.geomspace(40, 1, 12)[:, None] - 3).astype(np.float32)
    y = np.arange(120) % 3
    ident = store.register_arrays(X, y, ("a", "b", "c"), "mfcc-like", {"source": "test"})
    app = str(Path(__file__).resolve().parents[2] / "app.py")
    at = AppTest.from_file(app, default_timeout=120)
    # A link that asks for dB on this dataset: the option is not offered, so it is dropped.
    at.query_params.update({"tab": "Compare", "dataset": ident,
                            "configs": ["none", "db+per_row"]})
    at.run()
    assert not at.exception, at.exception
    ms = at.multiselect(key="configs")
    assert ms.options == [n for n in all_config_names() if "+" not in n]
    assert not any("+" in c for c in ms.value)
