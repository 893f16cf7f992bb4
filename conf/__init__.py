"""The Hydra configs: the wheel ships this folder inside the package as ``bamir.conf`` (setup.py)."""
