"""``ComputeProbe``: time spent inside a training step's compute calls (forward, loss,
backward, optimizer update), so that the rest of a step -- the host time the training loop
itself costs -- can be reported separately from the model's own cost.

It hooks, while :meth:`ComputeProbe.attach` is active:

* the model's and the loss's ``forward`` (``register_forward_pre_hook`` / ``..._hook``),
* ``torch.Tensor.backward`` (patched; Lightning's precision plugin calls it too),
* every optimizer's ``step`` (``torch.optim.optimizer.register_optimizer_step_pre_hook`` /
  ``..._post_hook``, global, so it sees Lightning's optimizer as well as a hand-built one).

Time is attributed exclusively to the innermost open part. Lightning calls
``optimizer.step(closure)`` and the closure runs forward, loss and backward *inside* the step;
the probe wraps that closure so that time in it (Lightning's ``training_step`` plumbing,
``self.log``) is counted as host time, not as optimizer time: only the update itself is.

Intervals are only counted between :meth:`start` and :meth:`stop` (the timed window). On
CUDA every boundary synchronises the device, so each interval holds its kernels' time; this
slows the step a little but measures both loops the same way.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

PARTS = ("forward", "loss", "backward", "optimizer")
_HOST = "host"  # the optimizer's closure: not compute by itself


class ComputeProbe:
    """Accumulates seconds spent in each of :data:`PARTS` inside the timed window."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.seconds = dict.fromkeys(PARTS, 0.0)
        self.active = False
        self._stack: list[str] = []  # open parts, innermost last
        self._last = 0.0

    def _now(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def _charge(self, now: float) -> None:
        """Charge the time since the last boundary to the innermost open part."""
        if self._stack and self._stack[-1] in self.seconds:
            self.seconds[self._stack[-1]] += now - self._last
        self._last = now

    def _enter(self, part: str) -> None:
        if self.active:
            self._charge(self._now())
            self._stack.append(part)

    def _exit(self, part: str) -> None:
        if self.active and self._stack and self._stack[-1] == part:
            self._charge(self._now())
            self._stack.pop()

    def start(self) -> None:
        """Begin counting (call at the start of the timed window)."""
        self.active = True

    def stop(self) -> None:
        """Stop counting (call at the end of the timed window)."""
        self.active = False
        self._stack.clear()

    def total_ms(self) -> float:
        return 1e3 * sum(self.seconds.values())

    @contextlib.contextmanager
    def attach(self, model: nn.Module, loss: nn.Module) -> Iterator[None]:
        """Install the hooks on ``model``, ``loss``, ``Tensor.backward`` and optimizers."""
        from torch.optim.optimizer import (
            register_optimizer_step_post_hook,
            register_optimizer_step_pre_hook,
        )

        handles = []
        for part, module in (("forward", model), ("loss", loss)):
            handles.append(module.register_forward_pre_hook(
                lambda *_, p=part: self._enter(p)))
            handles.append(module.register_forward_hook(lambda *_, p=part: self._exit(p)))

        def wrap_closure(closure: Any) -> Any:
            def timed_closure() -> Any:
                self._enter(_HOST)
                try:
                    return closure()
                finally:
                    self._exit(_HOST)
            return timed_closure

        def before_step(_opt: Any, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
            # ``args`` is ``(optimizer, *step_args)``: the closure is args[1] or a keyword.
            self._enter("optimizer")
            if kwargs.get("closure") is not None:
                kwargs = {**kwargs, "closure": wrap_closure(kwargs["closure"])}
            elif len(args) > 1 and callable(args[1]):
                args = (args[0], wrap_closure(args[1]), *args[2:])
            return args, kwargs

        handles.append(register_optimizer_step_pre_hook(before_step))
        handles.append(register_optimizer_step_post_hook(lambda *_: self._exit("optimizer")))
        original_backward = torch.Tensor.backward

        def timed_backward(tensor: torch.Tensor, *args: Any, **kwargs: Any) -> None:
            self._enter("backward")
            try:
                original_backward(tensor, *args, **kwargs)
            finally:
                self._exit("backward")

        torch.Tensor.backward = timed_backward  # type: ignore[method-assign]
        try:
            yield
        finally:
            torch.Tensor.backward = original_backward  # type: ignore[method-assign]
            for handle in handles:
                handle.remove()
