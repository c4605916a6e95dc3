"""Integrations with other engines; each is an optional extra (``pip install "pyimgcls[ray]"``) and is
imported only when used: ``from pyimgcls.integrations import ray as pray``."""
