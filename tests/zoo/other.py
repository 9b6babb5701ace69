"""An MLP that standardises each image, a fine-tune with a frozen backbone (the PyTorch transfer-learning
tutorial's "ConvNet as fixed feature extractor"), and a TCN forecaster (Bai et al.: causal Conv1d + Chomp1d).

Bugs, the way people make them:
std_mlp
- ``batch_stats``: ``(x - x.mean()) / x.std()`` without ``dim``: statistics of the whole batch;
- ``no_grad_features``: the first layer run under ``torch.no_grad()`` "to save memory";
- ``big_init``: the output layer initialised ``normal_(0, 1)``;
finetune
- ``freeze_after_head``: the freezing loop runs after the new head is attached: nothing trains;
- ``head_in_list``: the head kept in a plain python list (never registered, never trained);
- ``normalize_dim0``: features L2-normalised with ``F.normalize(f, dim=0)`` (over the batch);
tcn
- ``same_padding``: ``padding=(k - 1) // 2`` ("same") instead of left padding + Chomp1d;
- ``chomp_left``: Chomp1d cuts the first steps instead of the last (``x[:, :, c:]``);
- ``window_norm``: each window standardised with its own mean and std (computed over future steps too).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tests.zoo.vision import SmallResNet

MLP_BUGS = ("batch_stats", "no_grad_features", "big_init")
FINETUNE_BUGS = ("freeze_after_head", "head_in_list", "normalize_dim0")
TCN_BUGS = ("same_padding", "chomp_left", "window_norm")


class StandardizedMLP(nn.Module):
    """Standardise every image (zero mean, unit std per image), then a 2-layer MLP."""

    def __init__(self, num_classes=10, width=64, bug=""):
        super().__init__()
        self.bug = bug
        self.fc1 = nn.Linear(64, width)
        self.fc2 = nn.Linear(width, num_classes)
        if bug == "big_init":
            nn.init.normal_(self.fc2.weight, 0, 1)

    def forward(self, x):
        x = x.flatten(1)
        if self.bug == "batch_stats":
            x = (x - x.mean()) / x.std()
        else:
            x = (x - x.mean(1, keepdim=True)) / x.std(1, keepdim=True)
        if self.bug == "no_grad_features":
            with torch.no_grad():
                h = self.fc1(x)
        else:
            h = self.fc1(x)
        return self.fc2(F.relu(h))


def std_mlp(num_classes=10, width=64, bug=""):
    return StandardizedMLP(num_classes, width, bug)


class HeadInList(nn.Module):
    """The backbone with its head kept in a python list (a multi-head design started and never finished)."""

    def __init__(self, backbone, head):
        super().__init__()
        backbone.fc = nn.Identity()
        self.backbone, self.heads = backbone, [head]

    def forward(self, x):
        return self.heads[0](self.backbone(x))


class NormalizedFeatures(nn.Module):
    def __init__(self, in_features, num_classes):
        super().__init__()
        self.fc = nn.Linear(in_features, num_classes)

    def forward(self, f):
        return self.fc(F.normalize(f, dim=0))


def finetune(num_classes=10, bug=""):
    """A (stand-in for a pretrained) ResNet frozen as a feature extractor, a new trainable fc head."""
    model = SmallResNet(num_classes=1000, width=8)
    if bug != "freeze_after_head":
        for param in model.parameters():
            param.requires_grad = False
    num_ftrs = model.fc.in_features
    if bug == "normalize_dim0":
        model.fc = NormalizedFeatures(num_ftrs, num_classes)
    elif bug == "head_in_list":
        return HeadInList(model, nn.Linear(num_ftrs, num_classes))
    else:
        model.fc = nn.Linear(num_ftrs, num_classes)
    if bug == "freeze_after_head":
        for param in model.parameters():
            param.requires_grad = False
    return model


class Chomp1d(nn.Module):
    def __init__(self, chomp_size, left=False):
        super().__init__()
        self.chomp_size, self.left = chomp_size, left

    def forward(self, x):
        return x[:, :, self.chomp_size:].contiguous() if self.left else x[:, :, :-self.chomp_size].contiguous()


class TemporalBlock(nn.Module):
    def __init__(self, n_inputs, n_outputs, kernel_size, dilation, bug=""):
        super().__init__()
        same = bug == "same_padding"
        padding = (kernel_size - 1) * dilation // 2 if same else (kernel_size - 1) * dilation
        self.conv1 = nn.Conv1d(n_inputs, n_outputs, kernel_size, padding=padding, dilation=dilation)
        self.chomp1 = nn.Identity() if same else Chomp1d(padding, left=bug == "chomp_left")
        self.conv2 = nn.Conv1d(n_outputs, n_outputs, kernel_size, padding=padding, dilation=dilation)
        self.chomp2 = nn.Identity() if same else Chomp1d(padding, left=bug == "chomp_left")
        self.net = nn.Sequential(self.conv1, self.chomp1, nn.ReLU(), self.conv2, self.chomp2, nn.ReLU())
        self.downsample = nn.Conv1d(n_inputs, n_outputs, 1) if n_inputs != n_outputs else None

    def forward(self, x):
        res = x if self.downsample is None else self.downsample(x)
        return F.relu(self.net(x) + res)


class TCN(nn.Module):
    """Two temporal blocks (dilation 1, 2), a 1x1 conv to one value per step: (B, T, 1) -> (B, T)."""

    def __init__(self, width=16, kernel_size=3, bug=""):
        super().__init__()
        self.bug = bug
        self.blocks = nn.Sequential(TemporalBlock(1, width, kernel_size, 1, bug),
                                    TemporalBlock(width, width, kernel_size, 2, bug))
        self.out = nn.Conv1d(width, 1, 1)

    def forward(self, x):
        if self.bug == "window_norm":
            x = (x - x.mean(1, keepdim=True)) / (x.std(1, keepdim=True) + 1e-5)
        h = self.blocks(x.transpose(1, 2))
        return self.out(h).squeeze(1)


def tcn(width=16, bug=""):
    return TCN(width, bug=bug)
