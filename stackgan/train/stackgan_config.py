"""Moved: the StackGAN run schema is :mod:`stackgan.stackgan_config` (outside the training package, so
that inference and the web layer read run folders without importing training code). This name
stays for code written against it."""

from stackgan.stackgan_config import *  # noqa: F401,F403
from stackgan.stackgan_config import LEGACY_DEFAULTS, RESUMABLE_CHANGES, StackGANConfig  # noqa: F401
