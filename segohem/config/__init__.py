"""Configs from Python: compose (Hydra's compose API), checks before anything is built, the
OmegaConf resolvers the packaged configs use, and logging under Hydra."""
