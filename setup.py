"""Package discovery (everything else is in pyproject.toml): every package under segohem/ and
the Hydra plugin namespace, found on disk, plus conf/ shipped as segohem.conf."""

from setuptools import find_namespace_packages, setup

setup(packages=[*find_namespace_packages(include=["segohem", "segohem.*", "hydra_plugins.*"],
                                         exclude=["*.__pycache__"]),
                "segohem.conf"])
