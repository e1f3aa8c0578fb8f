"""stackgan: text-to-image StackGAN for invented Japanese dish names."""

__version__ = "0.1.0"
