"""Image models as their communities write them, at test size: a CIFAR-style ResNet from torchvision's
BasicBlock, torchvision's VisionTransformer (zero-initialised head), the pytorch/examples MNIST CNN
(log_softmax + nll_loss).

Bugs, the way people make them:
resnet
- ``swish_backward``: a memory-efficient Swish (custom autograd Function) whose backward drops a term;
- ``fc_init``: every Linear initialised N(0, 1), "like the paper's Gaussian init";
- ``softmax_head``: ``nn.Softmax`` appended to the classifier, trained with cross-entropy;
vit
- ``mha_not_batch_first``: an encoder block rebuilt with ``nn.MultiheadAttention`` without ``batch_first=True``;
- ``gelu_backward``: a hand-written tanh-GELU Function with a wrong derivative;
- ``head_init``: the zero head re-initialised with ``normal_(std=1)``;
mnist_cnn
- ``softmax_nll``: ``F.softmax`` where ``F.log_softmax`` belongs, before ``nll_loss``;
- ``log_softmax_dim0``: ``F.log_softmax(x, dim=0)``: normalised over the batch;
- ``no_relu_fc``: the ReLU between fc1 and fc2 forgotten.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import VisionTransformer
from torchvision.models.resnet import BasicBlock, conv1x1
from torchvision.models.vision_transformer import MLPBlock

RESNET_BUGS = ("swish_backward", "fc_init", "softmax_head")
VIT_BUGS = ("mha_not_batch_first", "gelu_backward", "head_init")
CNN_BUGS = ("softmax_nll", "log_softmax_dim0", "no_relu_fc")


class SwishFunction(torch.autograd.Function):
    """Swish x * sigmoid(x) that saves only its input (the EfficientNet-PyTorch memory trick)."""

    @staticmethod
    def forward(ctx, x, wrong):
        ctx.save_for_backward(x)
        ctx.wrong = wrong
        return x * torch.sigmoid(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        s = torch.sigmoid(x)
        d = s if ctx.wrong else s * (1 + x * (1 - s))  # the bug: forgets the x * s * (1 - s) term
        return grad * d, None


class Swish(nn.Module):
    def __init__(self, wrong=False):
        super().__init__()
        self.wrong = wrong

    def forward(self, x):
        return SwishFunction.apply(x, self.wrong)


class SmallResNet(nn.Module):
    """CIFAR-style ResNet (He et al. section 4.2): 3 stages of torchvision BasicBlocks at ``width``, 2x, 4x."""

    def __init__(self, num_classes=10, width=8, blocks=(1, 1, 1), bug=""):
        super().__init__()
        self.inplanes = width
        self.conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.act = Swish(wrong=bug == "swish_backward")
        self.layer1 = self._make_layer(width, blocks[0], 1)
        self.layer2 = self._make_layer(2 * width, blocks[1], 2)
        self.layer3 = self._make_layer(4 * width, blocks[2], 2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(4 * width, num_classes)
        self.out = nn.Softmax(dim=1) if bug == "softmax_head" else nn.Identity()
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.Linear) and bug == "fc_init":
                nn.init.normal_(m.weight, 0, 1)

    def _make_layer(self, planes, blocks, stride):
        downsample = None
        if stride != 1 or self.inplanes != planes:
            downsample = nn.Sequential(conv1x1(self.inplanes, planes, stride), nn.BatchNorm2d(planes))
        layers = [BasicBlock(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes
        layers += [BasicBlock(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.act(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        x = torch.flatten(self.avgpool(x), 1)
        return self.out(self.fc(x))


def resnet(num_classes=10, width=4, bug=""):
    return SmallResNet(num_classes, width, bug=bug)


class TanhGELU(torch.autograd.Function):
    """GELU, tanh approximation, with a hand-written backward."""

    @staticmethod
    def forward(ctx, x, wrong):
        ctx.save_for_backward(x)
        ctx.wrong = wrong
        c = math.sqrt(2 / math.pi)
        return 0.5 * x * (1 + torch.tanh(c * (x + 0.044715 * x ** 3)))

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        c = math.sqrt(2 / math.pi)
        t = torch.tanh(c * (x + 0.044715 * x ** 3))
        inner = c * (1 + (0.044715 if ctx.wrong else 3 * 0.044715) * x ** 2)  # the bug: d/dx x^3 taken as x^2
        return grad * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * inner), None


class HandGELU(nn.Module):
    def __init__(self, wrong):
        super().__init__()
        self.wrong = wrong

    def forward(self, x):
        return TanhGELU.apply(x, self.wrong)


def vit(num_classes=10, width=16, bug=""):
    """torchvision's VisionTransformer on 16x16 images: patch 4, 2 layers, 2 heads, hidden ``width``."""
    model = VisionTransformer(image_size=16, patch_size=4, num_layers=2, num_heads=2, hidden_dim=width,
                              mlp_dim=2 * width, num_classes=num_classes)
    for block in model.encoder.layers:
        if bug == "mha_not_batch_first":
            block.self_attention = nn.MultiheadAttention(width, 2, dropout=0.0)
        if bug == "gelu_backward":
            block.mlp[1] = HandGELU(wrong=True)
    if bug == "head_init":
        nn.init.normal_(model.heads.head.weight, std=1.0)
    assert isinstance(model.encoder.layers[0].mlp, MLPBlock)
    return model


class Net(nn.Module):
    """pytorch/examples mnist/main.py's Net, scaled to 8x8 digits."""

    def __init__(self, num_classes=10, width=8, bug=""):
        super().__init__()
        self.bug = bug
        self.conv1 = nn.Conv2d(1, width, 3, 1)
        self.conv2 = nn.Conv2d(width, 2 * width, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(2 * width * 2 * 2, 64)
        self.fc2 = nn.Linear(64, num_classes)

    def forward(self, x):
        x = self.conv1(x)
        x = F.relu(x)
        x = self.conv2(x)
        x = F.relu(x)
        x = F.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)
        x = self.fc1(x)
        if self.bug != "no_relu_fc":
            x = F.relu(x)
        x = self.dropout2(x)
        x = self.fc2(x)
        if self.bug == "softmax_nll":
            return F.softmax(x, dim=1)
        return F.log_softmax(x, dim=0 if self.bug == "log_softmax_dim0" else 1)


def mnist_cnn(num_classes=10, width=8, bug=""):
    return Net(num_classes, width, bug)
