"""HparamsLogger's flattening of the run config into TensorBoard HPARAMS columns."""

from segohem.callbacks.hparams import flatten


def test_hparams_are_flattened():
    flat = flatten({"loss": {"thresh": 0.7, "n_min": None}, "model": {"dims": [1, 2]}})
    assert flat == {"loss/thresh": 0.7, "loss/n_min": "None", "model/dims": "[1, 2]"}
    # One column per list, also for lists of dicts and empty lists (unlike Lightning's).
    flat = flatten({"t": {"transforms": [{"_target_": "A", "p": 0.5}], "ignore": []}})
    assert flat == {"t/transforms": "[{'_target_': 'A', 'p': 0.5}]", "t/ignore": "[]"}
