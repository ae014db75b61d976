"""Let CUDA kernels use atomics under ``torch.use_deterministic_algorithms(True)`` where
the result is deterministic anyway.

With deterministic algorithms enabled (Lightning's ``Trainer(deterministic=True)``),
CUDA's ``index_add_`` and ``scatter_add_`` switch to a sort-based fallback that reads
the index range back to the host: a host-device sync on every call. segohem uses them
only where atomics cannot make the result order-dependent: integer histogram counts
(integer addition is exact) and scatters whose indices are unique (one write per
element). There, deterministic mode is switched off for the one call.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def order_independent_atomics(device: torch.device) -> Iterator[None]:
    """Suspend deterministic-algorithms mode around an order-independent CUDA atomic op.

    A no-op on CPU, while compiling (global state must not change inside a graph), and
    when deterministic mode is off.
    """
    toggle = (device.type == "cuda" and not torch.compiler.is_compiling()
              and torch.are_deterministic_algorithms_enabled())
    if not toggle:
        yield
        return
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(False)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(True, warn_only=warn_only)
