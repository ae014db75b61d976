"""Bad arguments and inputs raise ValueError naming the offending value."""

import pytest
import torch

from segohem.losses import BinaryOhemLoss, CrossEntropyLoss, OhemCELoss, TopKCELoss


@pytest.mark.parametrize("thresh", [0, 0.0, -0.5, 1.5, float("nan"), True, "0.7"])
def test_bad_thresh(thresh):
    with pytest.raises(ValueError, match=r"thresh must be a number in \(0, 1\], got"):
        OhemCELoss(thresh=thresh)


def test_bad_thresh_names_value():
    with pytest.raises(ValueError, match=r"1\.5"):
        OhemCELoss(thresh=1.5)


@pytest.mark.parametrize(("n_min", "match"), [
    (-1, "n_min must be >= 0 pixels, got -1"),
    (1.5, r"n_min=1.5 is a float.*\(0, 1\].*n_min=1"),
    (0.0, r"n_min=0.0 is a float"),
    ("100", "got '100'"),
    (True, "got True"),
    (float("inf"), r"n_min=inf is a float"),
    (float("-inf"), r"n_min=-inf is a float"),
    (float("nan"), r"n_min=nan is a float"),
])
def test_bad_n_min(n_min, match):
    with pytest.raises(ValueError, match=match):
        OhemCELoss(n_min=n_min)


def test_bad_top_k_and_warmup():
    with pytest.raises(ValueError, match="top_k must be a number in"):
        TopKCELoss(top_k=0)
    with pytest.raises(ValueError, match="warmup_steps must be an int >= 0, got -3"):
        TopKCELoss(warmup_steps=-3)


def test_bad_binary_options():
    with pytest.raises(ValueError, match="neg_ratio must be a finite number >= 0, got -1"):
        BinaryOhemLoss(neg_ratio=-1)
    with pytest.raises(ValueError, match="min_neg must be >= 0 pixels, got -5"):
        BinaryOhemLoss(min_neg=-5)


@pytest.mark.parametrize("loss_fn", [OhemCELoss(), TopKCELoss(), CrossEntropyLoss()])
def test_shape_mismatch_names_both_shapes(loss_fn):
    with pytest.raises(ValueError, match=r"\(2, 3, 8, 8\).*\(2, 8, 8\).*\(2, 4, 4\)"):
        loss_fn(torch.randn(2, 3, 8, 8), torch.zeros(2, 4, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="squeeze"):
        loss_fn(torch.randn(2, 3, 8, 8), torch.zeros(2, 1, 8, 8, dtype=torch.long))


@pytest.mark.parametrize("loss_fn", [OhemCELoss(), TopKCELoss(), CrossEntropyLoss(),
                                     OhemCELoss(per_image=True)])
def test_labels_out_of_range_are_named(loss_fn):
    labels = torch.zeros(1, 4, 4, dtype=torch.long)
    labels[0, 0, 0] = 3
    labels[0, 0, 1] = -1
    labels[0, 0, 2] = 255  # ignore_index is fine
    with pytest.raises(ValueError, match=r"\[-1, 3\] outside \[0, 3\).*ignore_index=255"):
        loss_fn(torch.randn(1, 3, 4, 4), labels)


def test_label_check_can_be_switched_off():
    labels = torch.zeros(1, 4, 4, dtype=torch.long)
    labels[0, 0, 0] = 3
    loss_fn = OhemCELoss(check_labels=False)
    with pytest.raises((IndexError, RuntimeError)):  # torch's own (less helpful) error
        loss_fn(torch.randn(1, 3, 4, 4), labels)


def test_float_labels_and_weight_mismatch():
    with pytest.raises(ValueError, match=r"integer tensor of class ids, got dtype torch\.float32"):
        OhemCELoss()(torch.randn(1, 3, 2, 2), torch.zeros(1, 2, 2))
    with pytest.raises(ValueError, match="weight has 2 entries but the logits have 3 classes"):
        OhemCELoss(weight=[1.0, 1.0])(torch.randn(1, 3, 2, 2), torch.zeros(1, 2, 2).long())
    with pytest.raises(ValueError, match=r"weight must be finite and >= 0, got \[1.0, -1.0\]"):
        OhemCELoss(weight=[1.0, -1.0])


def test_numpy_scalars_are_accepted():
    np = pytest.importorskip("numpy")
    loss_fn = OhemCELoss(thresh=np.float32(0.5), n_min=np.int64(10))
    assert loss_fn.thresh == 0.5 and loss_fn.n_min == 10 and type(loss_fn.n_min) is int
    assert OhemCELoss(n_min=np.float64(0.25)).n_min == 0.25


@pytest.mark.parametrize("ignore_index", [0, 1])
def test_binary_ignore_index_must_differ_from_the_labels(ignore_index):
    with pytest.raises(ValueError, match=f"ignore_index={ignore_index} collides"):
        BinaryOhemLoss(ignore_index=ignore_index)
