"""A CPU Lightning Trainer on two processes (strategy="ddp_spawn", gloo) with RecipeCallback; run by test_lightning.py.

    python lightning_ddp_worker.py ROOT
Prints one JSON line: the world size Lightning used and the global step it reached.
"""

import json
import sys

import lightning.pytorch as pl
import torch
from torch import nn

import workbench as wb
from workbench.integrations.lightning import RecipeCallback


class Small(pl.LightningModule):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, i):
        x, y = batch
        return nn.functional.cross_entropy(self(x), y)

    def validation_step(self, batch, i):
        x, y = batch
        self.log("val_loss", nn.functional.cross_entropy(self(x), y), sync_dist=True)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


if __name__ == "__main__":
    train, test = wb.datasets.digits()
    loaders = [torch.utils.data.DataLoader(d, batch_size=64) for d in (train, test)]
    trainer = pl.Trainer(max_epochs=2, accelerator="cpu", devices=2, strategy="ddp_spawn", logger=False,
                         callbacks=[RecipeCallback(root=sys.argv[1], every=2)], enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(Small(), *loaders)
    print(json.dumps({"world_size": trainer.world_size, "global_step": trainer.global_step}))
