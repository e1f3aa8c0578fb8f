"""DCGAN initialisation (Radford et al. 2015), shared by every network of the project."""

from __future__ import annotations

from torch import nn
from torch.nn.utils import parametrize

_WEIGHTED = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm)


def _init_layer(m: nn.Module) -> None:
    if isinstance(m, _WEIGHTED):
        # a spectrally normalised layer (--d-norm spectral) computes .weight from its stored original
        weight = m.parametrizations.weight.original if parametrize.is_parametrized(m, "weight") else m.weight
        nn.init.normal_(weight, 0.0, 0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, _NORMS) and m.weight is not None:
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


def init_weights(module: nn.Module) -> nn.Module:
    """Convolutions and linears N(0, 0.02), norm scales N(1, 0.02), biases 0 (children first)."""
    module.apply(_init_layer)
    return module
