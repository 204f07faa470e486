"""apt-video's build: every fact of the package is in pyproject.toml; this shim lets tools that
still run ``setup.py`` build it."""
from setuptools import setup

setup()
