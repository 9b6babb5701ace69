"""A plain PyTorch training loop, written as the PyTorch CIFAR-10 tutorial writes it, watched by the workbench.

The four lines marked ``# workbench`` are all it takes to get a stored run, live curves and every
instrument of recipe part III (histograms, update ratio, first layer, fixed-batch predictions, grad
norms and the NaN/inf trap) in the served app and in ``session.runs()``. The data is CIFAR-like
(3x32x32, 10 classes) and made in code: each class is a coloured blob at its own place on noise,
so there is something to learn and nothing to download.

    python examples/own_loop_cifar.py                 # runs under ./runs
    WORKBENCH_SERVE=5006 python examples/own_loop_cifar.py   # the app while it trains, and after (Ctrl+C)
"""

import os

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
from torch.utils.data import TensorDataset

import workbench as wb  # workbench

EPOCHS = int(os.environ.get("EPOCHS", "2"))
ROOT = os.environ.get("WORKBENCH_ROOT", "runs")
SERVE = int(os.environ.get("WORKBENCH_SERVE", "0"))


def cifar_like(n: int, seed: int) -> TensorDataset:
    """n images 3x32x32 in [-1, 1] (as after the tutorial's Normalize) and labels 0..9."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 10, (n,), generator=g)
    x = torch.randn(n, 3, 32, 32, generator=g) * 0.5
    colours = torch.tensor([[1, -1, -1], [-1, 1, -1], [-1, -1, 1], [1, 1, -1], [1, -1, 1],
                            [-1, 1, 1], [1, 1, 1], [1, 0, -1], [0, 1, -1], [-1, 0, 1]], dtype=torch.float32)
    for i in range(n):
        r, c = divmod(int(y[i]) % 5, 3)
        x[i, :, 6 * r + 4: 6 * r + 14, 10 * c + 2: 10 * c + 12] += colours[y[i]].view(3, 1, 1)
    return TensorDataset(x.clamp(-1, 1), y)


trainset, testset = cifar_like(2000, seed=0), cifar_like(500, seed=1)
trainloader = torch.utils.data.DataLoader(trainset, batch_size=32, shuffle=True,
                                          generator=torch.Generator().manual_seed(0))
testloader = torch.utils.data.DataLoader(testset, batch_size=100, shuffle=False)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


torch.manual_seed(0)
net = Net()
criterion = nn.CrossEntropyLoss()
optimizer = optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
w = wb.watch(net, optimizer, train=trainloader, test=testloader, epochs=EPOCHS, root=ROOT, serve=SERVE)  # workbench

for epoch in range(EPOCHS):
    running_loss = 0.0
    for i, data in enumerate(trainloader, 0):
        inputs, labels = data
        optimizer.zero_grad()
        outputs = net(inputs)
        loss = criterion(outputs, labels)
        loss.backward()
        optimizer.step()
        w.step(loss)  # workbench
        running_loss += loss.item()
        if i % 20 == 19:
            print(f"[{epoch + 1}, {i + 1:5d}] loss: {running_loss / 20:.3f}")
            running_loss = 0.0
    w.epoch()  # workbench

print("Finished Training", w.run.id, flush=True)
