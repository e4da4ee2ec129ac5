"""Small reference image-classifier architectures, registered as the built-in model factories.

``small-cnn``, ``wide-cnn`` and ``mlp`` are what a provscan classifier checkpoint (see
:mod:`provscan.classifier_card`) may name as its factory without any plugin installed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn



def small_cnn(in_channels: int = 1, num_classes: int = 10, width: int = 16, image_size: int = 8,
              hidden: int = 64) -> nn.Module:
    """Two 3x3 conv layers (width, 2*width), 2x2 max-pool, one hidden dense layer."""
    from torch import nn

    flat = 2 * width * (image_size // 2) ** 2
    return nn.Sequential(
        nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(),
        nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(),
        nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(flat, hidden), nn.ReLU(),
        nn.Linear(hidden, num_classes),
    )


def wide_cnn(in_channels: int = 1, num_classes: int = 10, width: int = 32, image_size: int = 8) -> nn.Module:
    """Three conv layers with batch norm and global average pooling (a different family)."""
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(in_channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
        nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
        nn.Conv2d(width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * width, num_classes),
    )


def mlp(in_channels: int = 1, num_classes: int = 10, image_size: int = 8, hidden: int = 128) -> nn.Module:
    """A two-hidden-layer perceptron over the flattened image."""
    from torch import nn

    d = in_channels * image_size * image_size
    return nn.Sequential(nn.Flatten(), nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, hidden),
                         nn.ReLU(), nn.Linear(hidden, num_classes))


FACTORIES = {"small-cnn": small_cnn, "wide-cnn": wide_cnn, "mlp": mlp}
