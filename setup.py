"""Packages: ``bamir`` and, mapped from the repository's top-level ``conf/``, its configs as ``bamir.conf``.

The rest of the build is in pyproject.toml.
"""

from setuptools import find_packages, setup

setup(packages=[*find_packages(include=["bamir*"]), "bamir.conf"], package_dir={"bamir.conf": "conf"})
