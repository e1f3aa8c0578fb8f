"""Moved: the DCGAN run schema is :mod:`stackgan.dcgan_config` (outside the training package, so
that run folders are read without importing training code). This name stays for code written
against it."""

from stackgan.dcgan_config import *  # noqa: F401,F403
from stackgan.dcgan_config import LOSSES, MIN_SIDE, RESUMABLE_CHANGES, DCGANConfig, parse_size  # noqa: F401
