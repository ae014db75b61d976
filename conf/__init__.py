"""Hydra configs of segohem (the top-level conf/ folder, shipped as segohem.conf)."""
