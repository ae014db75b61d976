"""No host-device synchronisation in the losses' forward and backward.

On CPU the proof is that ``torch.compile(fullgraph=True)`` captures forward and backward
in one graph: any ``.item()``, data-dependent shape (boolean-mask indexing, ``nonzero``)
or Python branch on a tensor value would be a graph break, which ``fullgraph=True``
turns into an error. On a GPU, ``torch.cuda.set_sync_debug_mode("error")`` raises on any
synchronising CUDA call.
"""

import pytest
import torch

from segohem.losses import (
    BinaryOhemLoss,
    CrossEntropyLoss,
    OhemCELoss,
    OhemDiceLoss,
    TopKCELoss,
)
from tests._support.batches import make_batch, value_and_grad
from tests._support.reference_losses import bisenet_ohem


def loss_cases():
    """(id, loss factory, binary?) for every loss, label checks off (they must sync)."""
    return [
        ("ohem", lambda: OhemCELoss(0.7, check_labels=False), False),
        ("ohem_fallback", lambda: OhemCELoss(0.05, n_min=0.3, check_labels=False), False),
        ("ohem_per_image_weighted",
         lambda: OhemCELoss(0.7, per_image=True, weight=[1.0, 2.0, 0.5, 1.0],
                            check_labels=False), False),
        ("ohem_dice_ce_floor",
         lambda: OhemDiceLoss(0.7, dice_weight=0.5, ce_weight=1.0, check_labels=False), False),
        ("ohem_dice_ce_floor_weighted",
         lambda: OhemDiceLoss(0.7, dice_weight=0.5, ce_weight=0.5, weight=[1.0, 2.0, 0.5, 1.0],
                              check_labels=False), False),
        ("topk_warmup", lambda: TopKCELoss(0.3, warmup_steps=5, check_labels=False), False),
        ("ce", lambda: CrossEntropyLoss(check_labels=False), False),
        ("binary", lambda: BinaryOhemLoss(mine_positives=True, balance=True,
                                          check_labels=False), True),
    ]


def shipped_cases():
    """(id, factory, binary) for every conf/loss/*.yaml as shipped (labels validated by the
    dataset config, so ``check_labels`` resolves to false: no sync)."""
    from hydra.utils import instantiate

    from tests._support.configs import compose_train, group_options

    def factory(option: str):
        return lambda: instantiate(compose_train([f"loss={option}"]).loss)

    return [(f"shipped_{option}", factory(option), False)
            for option in group_options()["loss"]]


CASES = loss_cases() + shipped_cases()


def inputs(binary: bool, device: str = "cpu", ignore_all: bool = False):
    logits, labels = make_batch(0, 2, 4, 24, 32, ignore_fraction=0.2, tie_step=0.5)
    if binary:
        logits, labels = logits[:, :1], torch.where(labels == 255, 255, labels % 2)
    if ignore_all:
        labels = torch.full_like(labels, 255)
    return logits.to(device), labels.to(device)


@pytest.mark.slow
@pytest.mark.parametrize(("name", "factory", "binary"), CASES, ids=[c[0] for c in CASES])
def test_compiles_to_one_graph_and_matches_eager(name, factory, binary):
    torch._dynamo.reset()
    eager_fn, compiled_fn = factory(), factory()
    compiled = torch.compile(compiled_fn, fullgraph=True, backend="aot_eager")
    for ignore_all in (False, True):
        logits, labels = inputs(binary, ignore_all=ignore_all)
        eager_value, eager_grad = value_and_grad(eager_fn, logits, labels)
        value, grad = value_and_grad(compiled, logits, labels)
        torch.testing.assert_close(value, eager_value, rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(grad, eager_grad, rtol=1e-6, atol=1e-8)
        stats, eager_stats = (getattr(f, "last_stats", None) for f in (compiled_fn, eager_fn))
        if stats is not None:  # the per-class counts are in the graph too
            torch.testing.assert_close(stats.class_valid, eager_stats.class_valid)
            torch.testing.assert_close(stats.class_kept, eager_stats.class_kept)
    stats = getattr(compiled_fn, "last_stats", None)
    if stats is not None:
        assert torch.isfinite(stats.kept_fraction)


@pytest.mark.slow
@pytest.mark.parametrize("loss_fn", [
    lambda x, y: bisenet_ohem(x, y, 0.7),  # boolean-mask indexing + branch on numel
    OhemCELoss(check_labels=True),  # the label check must read a flag back to raise
], ids=["bisenet", "label_check"])
def test_the_check_catches_syncing_code(loss_fn):
    """Negative control: code that syncs cannot be captured as one graph."""
    torch._dynamo.reset()
    logits, labels = inputs(False)
    with pytest.raises(Exception, match=r"(?i)graph break|data-dependent|unsupported"):
        value_and_grad(torch.compile(loss_fn, fullgraph=True, backend="aot_eager"),
                       logits, labels)


@pytest.mark.slow
def test_inductor_compiles_ohem():
    """The default backend too (generates C++ kernels for forward and backward)."""
    torch._dynamo.reset()
    eager_fn = OhemCELoss(0.05, check_labels=False)
    compiled_fn = OhemCELoss(0.05, check_labels=False)
    compiled = torch.compile(compiled_fn, fullgraph=True)
    logits, labels = inputs(False)
    eager_value, eager_grad = value_and_grad(eager_fn, logits, labels)
    value, grad = value_and_grad(compiled, logits, labels)
    torch.testing.assert_close(value, eager_value, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad, eager_grad, rtol=1e-5, atol=1e-7)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("deterministic", [False, True], ids=["default", "deterministic"])
@pytest.mark.parametrize(("name", "factory", "binary"), CASES, ids=[c[0] for c in CASES])
def test_no_sync_on_cuda(name, factory, binary, deterministic):
    """Forward + backward under set_sync_debug_mode("error"), fp32 and AMP (fp16 / bf16
    logits), also with torch.use_deterministic_algorithms(True) (Trainer(deterministic=True));
    each result must match the CPU computation on the same (rounded) logits."""
    for ignore_all in (False, True):
        logits, labels = inputs(binary, "cuda", ignore_all)
        for dtype in (torch.float32, torch.float16, torch.bfloat16):
            loss_fn = factory().cuda()  # fresh: TopK's warm-up counter starts at 0 each time
            x = logits.detach().to(dtype).requires_grad_()
            torch.cuda.synchronize()
            torch.use_deterministic_algorithms(deterministic)
            torch.cuda.set_sync_debug_mode("error")
            try:
                value = loss_fn(x, labels)
                value.backward()
            finally:
                torch.cuda.set_sync_debug_mode("default")
                torch.use_deterministic_algorithms(False)
            cpu_value, cpu_grad = value_and_grad(factory(), x.detach().cpu(), labels.cpu())
            torch.testing.assert_close(value.cpu(), cpu_value, rtol=1e-4, atol=1e-5)
            torch.testing.assert_close(x.grad.float().cpu(), cpu_grad.float(),
                                       rtol=1e-2, atol=1e-4)


def test_shipped_losses_skip_the_label_check_only_where_the_dataset_validates():
    """Every loss config reads dataset.labels_validated (true in every shipped dataset
    config): no per-step sync there, the check back for a dataset config without it."""
    from hydra.utils import instantiate

    from tests._support.configs import compose_train, group_options

    for option in group_options()["loss"]:
        for extra, expected in (([], False), (["~dataset.labels_validated"], True)):
            loss = instantiate(compose_train([f"loss={option}", *extra]).loss)
            flags = {m.check_labels for m in loss.modules() if hasattr(m, "check_labels")}
            assert flags == {expected}, (option, extra)
    for dataset in group_options()["dataset"]:  # from conf/dataset/_base.yaml
        assert compose_train([f"dataset={dataset}"]).dataset.labels_validated is True
