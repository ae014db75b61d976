"""Hydra configs of segohem (the top-level conf/ folder, shipped as segohem.conf).

Importing this package (Hydra does, to read the configs) registers the resolvers they use,
e.g. ``${segohem.classes:...}`` (:mod:`segohem.config.resolvers`)."""

from segohem.config.resolvers import register_resolvers

register_resolvers()
