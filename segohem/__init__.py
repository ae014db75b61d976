"""segohem: semantic-segmentation training with correct, fast, tunable OHEM."""

__version__ = "0.1.0"
