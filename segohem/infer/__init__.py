"""Using a trained checkpoint: the inference core (whole image, sliding window, TTA),
evaluation, prediction files and their formats, export and its formats."""
