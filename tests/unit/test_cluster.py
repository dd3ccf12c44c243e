"""The Dask settings read from the environment (no scheduler needed): the connect timeout."""

from __future__ import annotations

import pytest

from diagnostics.cluster import CONNECT_ENV, CONNECT_TIMEOUT_S, connect_timeout
from diagnostics.errors import NormScopeError


def test_connect_timeout_default_and_setting(monkeypatch):
    monkeypatch.delenv(CONNECT_ENV, raising=False)
    assert connect_timeout() == CONNECT_TIMEOUT_S == 5.0
    monkeypatch.setenv(CONNECT_ENV, " 0.5 ")
    assert connect_timeout() == 0.5
    monkeypatch.setenv(CONNECT_ENV, "600")
    assert connect_timeout() == 600.0


@pytest.mark.parametrize("text", ["0", "-1", "nan", "inf", "601", "5s", "soon"])
def test_connect_timeout_refuses_what_is_not_seconds(monkeypatch, text):
    monkeypatch.setenv(CONNECT_ENV, text)
    with pytest.raises(NormScopeError, match=rf"^{CONNECT_ENV}='{text}' must be a number of "
                                             r"seconds in \(0, 600\]; unset it for the default 5 s$"):
        connect_timeout()
