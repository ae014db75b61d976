"""MinorityRectificationLoss (class rectification loss, CRL) against a slow reference."""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from segohem.losses import CrossEntropyLoss, MinorityRectificationLoss, OhemCELoss
from segohem.losses._hard_pixels import row_top_k
from segohem.losses.crl import minority_classes
from tests._support.batches import value_and_grad
from tests._support.reference_losses import crl_reference, ohem_reference


def imbalanced_batch(seed: int, batch: int, classes: int, height: int, width: int,
                     ignore_fraction: float, present: int, skew: float):
    """Logits ``(B, C, H, W)`` and labels where class i is ``skew**i`` times as frequent as
    class 0, only the first ``present`` classes occur, and some pixels are 255."""
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch, classes, height, width, generator=gen) * 2.0
    freq = torch.tensor([skew ** i for i in range(present)])
    labels = torch.multinomial(freq, batch * height * width, replacement=True,
                               generator=gen).reshape(batch, height, width)
    drop = torch.rand(batch, height, width, generator=gen) < ignore_fraction
    return logits, torch.where(drop, 255, labels)


def reference_value_and_grad(logits, labels, k, rho, margin, alpha, base_fn,
                             score="log_prob"):
    x = logits.detach().clone().requires_grad_()
    value = crl_reference(x, labels, base_fn(x, labels), k, rho, margin, alpha, score=score)
    value.backward()
    return value.detach(), x.grad


@given(seed=st.integers(0, 10_000), batch=st.integers(1, 3), classes=st.integers(2, 6),
       height=st.integers(1, 7), width=st.integers(1, 7), k=st.integers(1, 5),
       rho=st.floats(0.05, 1.0), margin=st.floats(0.0, 1.0), alpha=st.floats(0.0, 1.0),
       ignore=st.sampled_from([0.0, 0.3, 1.0]), present=st.integers(1, 6),
       skew=st.floats(0.2, 1.0), ohem_base=st.booleans(),
       score=st.sampled_from(["log_prob", "prob"]))
def test_matches_reference(seed, batch, classes, height, width, k, rho, margin, alpha, ignore,
                           present, skew, ohem_base, score):
    logits, labels = imbalanced_batch(seed, batch, classes, height, width, ignore,
                                      min(present, classes), skew)
    if ohem_base:
        base, base_ref = OhemCELoss(0.7), lambda x, y: ohem_reference(x, y, 0.7)
    else:
        base = CrossEntropyLoss()
        def base_ref(x, y):
            return F.cross_entropy(x, y, ignore_index=255) if (y != 255).any() else x.sum() * 0
    loss = MinorityRectificationLoss(base, k=k, rho=rho, margin=margin, alpha=alpha,
                                     score=score)
    value, grad = value_and_grad(loss, logits, labels)
    ref_value, ref_grad = reference_value_and_grad(logits, labels, k, rho, margin, alpha,
                                                   base_ref, score)
    torch.testing.assert_close(value, ref_value, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-4, atol=1e-6)
    assert torch.isfinite(value)


def test_minority_classes_rule():
    # valid = 100; sorted counts 0 (c3), 1 (c4), 5 (c2), 14 (c1), 80 (c0)
    counts = torch.tensor([80, 14, 5, 0, 1])
    # rho 0.5 -> limit 50: cumulative 0, 1, 6, 20 fit, 100 does not; c3 (0) and c4 (1 px)
    # are dropped for having fewer than 2 pixels.
    assert minority_classes(counts, 0.5).tolist() == [False, True, True, False, False]
    # rho 0.1 -> limit 10: 0, 1, 6 fit, 20 does not.
    assert minority_classes(counts, 0.1).tolist() == [False, False, True, False, False]
    assert minority_classes(counts, 1.0).tolist() == [True, True, True, False, False]
    # ties: lower class id first
    assert minority_classes(torch.tensor([5, 5, 10]), 0.25).tolist() == [True, False, False]


@pytest.mark.parametrize("case", ["one_class", "all_ignored", "rho_too_small", "singletons"])
def test_no_class_qualifies_gives_exactly_the_base_loss(case):
    logits, labels = imbalanced_batch(0, 2, 4, 6, 6, 0.0, 3, 0.5)
    rho = 0.5
    if case == "one_class":
        labels = torch.ones_like(labels)          # minority needs another class's pixels
        rho = 1.0
    elif case == "all_ignored":
        labels = torch.full_like(labels, 255)
    elif case == "rho_too_small":
        rho = 1e-6
    else:                                         # rare classes with a single pixel each
        labels = torch.zeros_like(labels)
        labels[0, 0, 0], labels[1, 0, 0] = 1, 2
    base = CrossEntropyLoss()
    loss = MinorityRectificationLoss(CrossEntropyLoss(), k=4, rho=rho, alpha=0.7)
    value, grad = value_and_grad(loss, logits, labels)
    base_value, base_grad = value_and_grad(base, logits, labels)
    assert torch.equal(value, base_value) and torch.isfinite(value)
    assert torch.equal(grad, base_grad)
    assert float(loss.last_rectification.minority_classes) == 0
    assert float(loss.last_rectification.alpha) == 0


def test_mining_direction_one_step_raises_hard_positives_and_lowers_hard_negatives():
    logits, labels = imbalanced_batch(3, 2, 2, 16, 16, 0.1, 2, 0.02)
    logits = logits * 0.3  # unsaturated probabilities: a small step shows its direction
    loss = MinorityRectificationLoss(CrossEntropyLoss(), k=8, alpha=1.0, margin=1.0)
    x = logits.clone().requires_grad_()
    loss(x, labels).backward()
    rare = 1
    assert 2 <= int((labels == rare).sum()) < 16  # fewer than 2k: the old |d| form failed
    prob = F.softmax(logits, 1)[:, rare].reshape(-1)
    stepped = F.softmax(logits - 5.0 * x.grad, 1)[:, rare].reshape(-1)
    flat = labels.reshape(-1)
    own = (flat == rare).nonzero().squeeze(1)
    other = ((flat != rare) & (flat != 255)).nonzero().squeeze(1)
    hard_pos = own[prob[own].argsort()[:8]]
    hard_neg = other[prob[other].argsort(descending=True)[:8]]
    assert (stepped[hard_pos] > prob[hard_pos]).all()
    assert (stepped[hard_neg] < prob[hard_neg]).all()
    # Easy majority pixels and ignored pixels get no gradient from the rectification term.
    untouched = torch.ones_like(flat, dtype=torch.bool)
    untouched[own] = False
    untouched[hard_neg] = False
    per_pixel = x.grad.permute(0, 2, 3, 1).reshape(-1, 2).abs().sum(1)
    assert per_pixel[untouched].max() == 0
    assert float(loss.last_rectification.minority_classes) >= 1


def test_stats_and_base_statistics_pass_through():
    logits, labels = imbalanced_batch(1, 2, 4, 12, 12, 0.2, 4, 0.3)
    loss = MinorityRectificationLoss(OhemCELoss(0.7), k=4, alpha=0.3)
    loss(logits, labels)
    stats = loss.last_rectification
    assert stats.minority_classes >= 1
    assert 0 <= float(stats.active_triplets) <= 1
    assert float(stats.alpha) == pytest.approx(0.3)
    assert set(stats.as_dict("crl/")) == {"crl/minority_classes", "crl/rectification",
                                           "crl/active_triplets", "crl/alpha"}
    assert loss.last_stats is loss.base.last_stats is not None
    pixels = loss.selected_pixels(logits, labels)
    assert pixels.shape == labels.shape


def test_alpha_from_eta_and_the_training_class_counts():
    loss = MinorityRectificationLoss(CrossEntropyLoss(), alpha=None)  # eta 0.01, paper's rule
    assert loss.needs_class_counts
    with pytest.raises(ValueError, match="set_class_counts"):
        loss.current_alpha()
    # shares 0.96, 0.03, 0.01, 0 of a 4-class set: 71 % must move to reach 25 % each
    assert loss.set_class_counts([9600, 300, 100, 0]) == pytest.approx(0.71)
    assert not loss.needs_class_counts
    assert "imbalance" in loss.state_dict()
    assert loss.set_class_counts([5, 5, 5, 5]) == 0.0  # balanced data: no rectification
    ratio = MinorityRectificationLoss(CrossEntropyLoss(), alpha=None, eta=2.0,
                                      imbalance_measure="ratio")
    # smallest / largest over present classes: 10 / 1000; class 2 (absent) is left out
    assert ratio.set_class_counts([1000, 10, 0]) == pytest.approx(2.0 * 0.01)
    assert MinorityRectificationLoss(CrossEntropyLoss(), alpha=None, eta=500.0,
                                     imbalance_measure="ratio").set_class_counts([10, 1000]) == 1
    with pytest.raises(ValueError, match=r"no class \(\['a', 'b'\]\) has a labelled pixel"):
        loss.set_class_counts([0, 0], class_names=["a", "b"])


def test_imbalance_survives_a_checkpoint_and_tolerates_checkpoints_without_it():
    loss = MinorityRectificationLoss(CrossEntropyLoss(), alpha=None)
    loss.set_class_counts([900, 100])
    state = loss.state_dict()
    resumed = MinorityRectificationLoss(CrossEntropyLoss(), alpha=None)
    resumed.load_state_dict(state)
    assert not resumed.needs_class_counts
    assert resumed.current_alpha() == pytest.approx(loss.current_alpha()) == pytest.approx(0.4)
    # A checkpoint of another loss (no key) or of an explicit alpha (NaN) keeps the counts'.
    fresh = MinorityRectificationLoss(CrossEntropyLoss(), alpha=None)
    fresh.set_class_counts([500, 500])
    fresh.load_state_dict({}, strict=True)
    nan_state = MinorityRectificationLoss(CrossEntropyLoss(), alpha=0.3).state_dict()
    fresh.load_state_dict(nan_state)
    assert fresh.current_alpha() == 0.0


def test_eval_mode_gives_the_base_loss():
    logits, labels = imbalanced_batch(4, 2, 4, 10, 10, 0.1, 4, 0.3)
    loss = MinorityRectificationLoss(CrossEntropyLoss(), k=4, alpha=0.5).eval()
    assert torch.equal(loss(logits, labels), CrossEntropyLoss()(logits, labels))
    loss.train()
    assert not torch.equal(loss(logits, labels), CrossEntropyLoss()(logits, labels))


@pytest.mark.parametrize("seed", range(6))
def test_matches_reference_with_rectified_classes(seed):
    """Fixed cases where the rectification is certainly active (hypothesis may draw few)."""
    logits, labels = imbalanced_batch(seed, 2, 5, 9, 11, 0.2, 5, 0.35)
    loss = MinorityRectificationLoss(OhemCELoss(0.7), k=3 + seed, rho=0.5, margin=0.3,
                                     alpha=0.6)
    value, grad = value_and_grad(loss, logits, labels)
    assert float(loss.last_rectification.minority_classes) >= 2
    ref_value, ref_grad = reference_value_and_grad(
        logits, labels, 3 + seed, 0.5, 0.3, 0.6, lambda x, y: ohem_reference(x, y, 0.7))
    torch.testing.assert_close(value, ref_value, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"rho": 0.0}, "rho must be a number in \\(0, 1\\], got 0.0"),
    ({"rho": 1.5}, "rho must be .* got 1.5"),
    ({"k": 0}, "k must be an int >= 1 .* got 0"),
    ({"k": 2.5}, "k must be an int >= 1 .* got 2.5"),
    ({"margin": -0.1}, "margin must be a finite number >= 0, got -0.1"),
    ({"alpha": 1.2}, "alpha must be a number in \\[0, 1\\], got 1.2"),
    ({"alpha": -0.1}, "alpha must be .* got -0.1"),
    ({"eta": -1.0}, "eta must be a finite number >= 0, got -1.0"),
    ({"eta": math.nan}, "eta must be"),
    ({"imbalance_measure": "gini"}, "imbalance_measure must be one of"),
    ({"score": "logit"}, "score must be one of"),
])
def test_bad_arguments_name_the_value(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MinorityRectificationLoss(CrossEntropyLoss(), **kwargs)


@pytest.mark.slow
def test_compiles_to_one_graph_no_host_sync():
    """fullgraph=True fails on any .item(), data-dependent shape or tensor-valued branch."""
    torch._dynamo.reset()
    logits, labels = imbalanced_batch(2, 2, 4, 12, 16, 0.2, 4, 0.3)
    # alpha from the class counts: the value in use is a Python float, never read back
    eager = MinorityRectificationLoss(OhemCELoss(0.7, check_labels=False), k=4, alpha=None)
    compiled_fn = MinorityRectificationLoss(OhemCELoss(0.7, check_labels=False), k=4,
                                            alpha=None)
    for fn in (eager, compiled_fn):
        fn.set_class_counts([700, 200, 80, 20])
    compiled = torch.compile(compiled_fn, fullgraph=True, backend="aot_eager")
    for labels_case in (labels, torch.full_like(labels, 255)):
        value, grad = value_and_grad(compiled, logits, labels_case)
        ref_value, ref_grad = value_and_grad(eager, logits, labels_case)
        torch.testing.assert_close(value, ref_value, rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(grad, ref_grad, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_through_a_layer_matches_the_reference_in_either_memory_layout(memory_format):
    """Logits from a layer (the sparse gradient of the mined rows must be added into the
    base loss's dense one before the layer's backward) and channels-last logits (the
    mining ranks a copy, not the buffer lent to the base loss)."""
    inputs, labels = imbalanced_batch(5, 2, 4, 8, 8, 0.2, 4, 0.3)
    conv = torch.nn.Conv2d(4, 4, 3, padding=1)

    def weight_grad(loss_fn, fmt):
        conv.zero_grad()
        logits = conv(inputs.to(memory_format=fmt))
        assert logits.is_contiguous() == (fmt == torch.contiguous_format)
        value = loss_fn(logits, labels)
        value.backward()
        return value.detach(), conv.weight.grad.clone()

    def reference(x, y):
        return crl_reference(x, y, F.cross_entropy(x, y, ignore_index=255), 3, 0.5, 1.0, 0.5)

    loss = MinorityRectificationLoss(CrossEntropyLoss(), k=3, alpha=0.5)
    value, grad = weight_grad(loss, memory_format)
    ref_value, ref_grad = weight_grad(reference, torch.contiguous_format)
    assert float(loss.last_rectification.minority_classes) > 0
    torch.testing.assert_close(value, ref_value, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_logits(dtype):
    logits, labels = imbalanced_batch(6, 2, 4, 8, 8, 0.1, 4, 0.3)
    logits = logits.to(dtype)
    loss = MinorityRectificationLoss(OhemCELoss(0.7), k=3, alpha=0.5)
    value, grad = value_and_grad(loss, logits, labels)
    assert value.dtype == torch.float32 and grad.dtype == dtype
    ref_value, ref_grad = value_and_grad(loss, logits.float(), labels)
    torch.testing.assert_close(value, ref_value, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad.float(), ref_grad, rtol=1e-2, atol=1e-3)


@pytest.mark.parametrize("n", [1000, 64 * 3, 4096, 4096 * 3])
@pytest.mark.parametrize("k", [1, 8, 40])
def test_row_top_k_by_chunks_equals_topk(n, k):
    gen = torch.Generator().manual_seed(n + k)
    score = torch.randn(5, n, generator=gen)
    score[0] = 0.0                                    # all tied
    score[1, ::7] = -math.inf
    score[2, :n // 2] = score[2, n // 2:].flip(0)     # pairs of ties
    values, index = row_top_k(score, k, chunk=64)
    assert torch.equal(values, score.topk(k, dim=1).values)
    assert torch.equal(score.gather(1, index), values)
    assert all(len(set(row)) == k for row in index.tolist())


def test_matches_reference_on_images_large_enough_for_the_chunked_top_k():
    logits, labels = imbalanced_batch(8, 2, 3, 64, 64, 0.1, 3, 0.1)   # 4096 px: 8 chunks
    base_ref = lambda x, y: F.cross_entropy(x, y, ignore_index=255)  # noqa: E731
    loss = MinorityRectificationLoss(CrossEntropyLoss(), k=4, alpha=0.5)
    value, grad = value_and_grad(loss, logits, labels)
    ref_value, ref_grad = reference_value_and_grad(logits, labels, 4, 0.5, 1.0, 0.5, base_ref)
    assert float(loss.last_rectification.minority_classes) == 2
    torch.testing.assert_close(value, ref_value, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-4, atol=1e-6)
