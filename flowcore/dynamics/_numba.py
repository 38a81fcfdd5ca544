"""Numba settings shared by the kernels (no numba configuration is changed at import).

``CACHE`` (env ``FLOWCORE_NUMBA_CACHE``, default on) is passed to ``numba.njit(cache=CACHE)`` so
kernels compile once per machine. Each kernel module also keeps its plain-Python function
(``*_py``) undecorated; tests run both, and CI runs once more with ``NUMBA_DISABLE_JIT=1``.
"""

from __future__ import annotations

import os

import numba

__all__ = ["CACHE", "njit"]

CACHE = os.environ.get("FLOWCORE_NUMBA_CACHE", "1") not in ("0", "false", "no")


def njit(fn=None, **kwargs):
    """``numba.njit`` with flowcore's defaults (``cache=CACHE``, ``nogil=True``)."""
    kwargs.setdefault("cache", CACHE)
    kwargs.setdefault("nogil", True)
    if fn is None:
        return lambda f: numba.njit(**kwargs)(f)
    return numba.njit(**kwargs)(fn)
