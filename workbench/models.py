"""Model factories: small models to start with (recipe II: linear, tiny CNN) and proven ones (III.M1).

Each factory takes keyword arguments ``num_classes``, ``in_channels`` and ``width`` with defaults
that fit digits; the Session passes what it infers from the data. Linear layers that follow a
flatten are lazy, so one factory fits any input size; the Session materialises them with one probe
forward pass under the session's seed.
"""

from __future__ import annotations

import torch
from torch import nn


def linear(num_classes: int = 10, in_channels: int = 1, width: int | None = None) -> nn.Module:
    """A linear classifier on the flattened input (``width`` is ignored: a linear model has none)."""
    return nn.Sequential(nn.Flatten(), nn.LazyLinear(num_classes))


def mlp(num_classes: int = 10, in_channels: int = 1, width: int = 64, depth: int = 2,
        dropout: float = 0.0) -> nn.Module:
    """A ReLU multi-layer perceptron on the flattened input: ``depth`` hidden layers of ``width`` units."""
    layers: list[nn.Module] = [nn.Flatten()]
    for i in range(depth):
        layers += [nn.LazyLinear(width) if i == 0 else nn.Linear(width, width), nn.ReLU()]
        if dropout:
            layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(width, num_classes) if depth else nn.LazyLinear(num_classes))
    return nn.Sequential(*layers)


class TinyCNN(nn.Module):
    """Two conv-BN-ReLU blocks, a pooled conv block and a linear head; a few thousand parameters."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, width: int = 16):
        super().__init__()
        w = width
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(),
            nn.Conv2d(w, 2 * w, 3, padding=1, bias=False), nn.BatchNorm2d(2 * w), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(2 * w, 2 * w, 3, padding=1, bias=False), nn.BatchNorm2d(2 * w), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
        )
        self.head = nn.Linear(2 * w, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))


def tiny_cnn(num_classes: int = 10, in_channels: int = 1, width: int = 16) -> nn.Module:
    """A tiny CNN for small images (8x8 digits up to 32x32); ``width`` sets the first layer's channels."""
    return TinyCNN(num_classes=num_classes, in_channels=in_channels, width=width)


def torchvision_model(name: str = "resnet18", num_classes: int = 10, in_channels: int = 3, weights=None,
                      small_input: bool = True) -> nn.Module:
    """A torchvision classifier adapted to ``num_classes``, ``in_channels`` and small inputs.

    ``weights``: None (random init, no download), a torchvision weights name such as
    ``"IMAGENET1K_V1"`` (torchvision downloads it when the user has internet), or a path to a
    state_dict file, loaded with ``weights_only=True``. With ``small_input`` the stem of a ResNet
    becomes a 3x3 stride-1 conv with no max-pool, so 8x8 to 32x32 images keep their detail.
    """
    import torchvision

    from_file = weights is not None and str(weights).endswith((".pt", ".pth"))
    model = torchvision.models.get_model(name, weights=None if from_file else weights)
    if from_file:
        model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    _adapt_stem(model, in_channels, small_input)
    _adapt_head(model, num_classes)
    return model


def _adapt_stem(model: nn.Module, in_channels: int, small_input: bool) -> None:
    conv = getattr(model, "conv1", None)
    if isinstance(conv, nn.Conv2d) and (small_input or conv.in_channels != in_channels):
        k, s, p = ((3, 1, 1) if small_input else (conv.kernel_size, conv.stride, conv.padding))
        model.conv1 = nn.Conv2d(in_channels, conv.out_channels, k, s, p, bias=conv.bias is not None)
        if small_input and hasattr(model, "maxpool"):
            model.maxpool = nn.Identity()
        return
    first = _first_conv(model)
    if first is not None and first[1].in_channels != in_channels:
        parent, attr, c = first[0], first[2], first[1]
        setattr(parent, attr, nn.Conv2d(in_channels, c.out_channels, c.kernel_size, c.stride, c.padding,
                                        bias=c.bias is not None))


def _first_conv(model):
    for parent in model.modules():
        for attr, child in parent.named_children():
            if isinstance(child, nn.Conv2d):
                return parent, child, attr
    return None


def _adapt_head(model: nn.Module, num_classes: int) -> None:
    for attr in ("fc", "classifier", "head", "heads"):
        head = getattr(model, attr, None)
        if isinstance(head, nn.Linear):
            if head.out_features != num_classes:
                setattr(model, attr, nn.Linear(head.in_features, num_classes))
            return
        if isinstance(head, nn.Sequential):
            for i in range(len(head) - 1, -1, -1):
                if isinstance(head[i], nn.Linear):
                    if head[i].out_features != num_classes:
                        head[i] = nn.Linear(head[i].in_features, num_classes)
                    return
    raise ValueError(f"cannot find the classifier head of {type(model).__name__} to set num_classes")


FACTORIES = {"linear": linear, "mlp": mlp, "tiny_cnn": tiny_cnn}
