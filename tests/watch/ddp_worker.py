"""Two CPU processes (gloo) train one small model under DDP with wb.watch on both ranks; run by test_ddp.py.

    python ddp_worker.py ROOT DATA OUT PORT
DATA holds global batches (steps, batch, ...); rank r trains on its half of each. Rank 0 writes what
its instruments measured to OUT (JSON); every rank writes OUT.rank<r> with what its watcher did.
"""

import json
import os
import sys

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP


def small_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 3))


def train(model, ddp_or_model, x, y, w, part=slice(None)):
    opt = w.optimizer if w.optimizer is not None else None
    for s in range(len(x)):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(ddp_or_model(x[s][part]), y[s][part])
        loss.backward()
        opt.step()
        w.step(loss)
    w.epoch(val_loss=0.0)
    w.close()


def measured(session) -> dict:
    import workbench as wb

    gn, ur = wb.instruments.get(session, "grad_norms"), wb.instruments.get(session, "update_ratio")
    return {"grad_total": [r["total"] for r in gn.since(0) if "total" in r],
            "grad_layers": [r["layers"] for r in gn.since(0) if "total" in r],
            "ratios": [r["ratios"] for r in ur.since(0)]}


def worker(rank: int, world: int, root: str, data: str, out: str, port: int) -> None:
    import workbench as wb

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        x, y = torch.load(data)
        model = small_model()
        ddp = DDP(model)
        opt = torch.optim.SGD(ddp.parameters(), lr=0.5, momentum=0.9)
        w = wb.watch(ddp, opt, root=root, num_classes=3, every=1, instruments=["grad_norms", "update_ratio"])
        half = x.shape[1] // world
        train(model, ddp, x, y, w, slice(rank * half, (rank + 1) * half))
        with open(f"{out}.rank{rank}", "w") as f:
            json.dump({"active": w.active, "run": None if w.run is None else w.run.id}, f)
        if rank == 0:
            with open(out, "w") as f:
                json.dump(measured(w.session), f)
        dist.barrier()  # every rank reaches the end: nothing waited on rank 0's instruments
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    root, data, out, port = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    mp.spawn(worker, args=(2, root, data, out, port), nprocs=2, join=True)
