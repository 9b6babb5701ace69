"""The bad-input table: >= 100 wrong arguments and data, each refused with a WorkbenchError subclass that
names the problem and the fix, none silently accepted, and nothing on disk left in a wrong state.

Each row: an id, the call (on ``env``: a session on the digits, its data, a fresh runs folder), and a
regex the message must match (the argument or the data at fault).
"""

import math
import re
from types import SimpleNamespace

import pytest
import torch
from torch import nn

import workbench as wb
from workbench.errors import WorkbenchError
from workbench.store import RunStore
from workbench.train import EarlyStopping

FIX_WORDS = re.compile(r"Fix: |must be|must lie|; use |; set |; pass |checks are|options are|set the|drop ")


class NoParams(nn.Module):
    def forward(self, x):
        return torch.zeros(x.shape[0], 10)


class Frozen(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(64, 10).requires_grad_(False)

    def forward(self, x):
        return self.fc(x.flatten(1))


def fit(**kw):
    return lambda env: env.s.fit(**{"epochs": 1, **kw})


def session(**kw):
    def make(env):
        args = {"model": wb.models.linear, "train": (env.X, env.Y), "root": env.root, **kw}
        return wb.Session(args.pop("model"), args.pop("train"), **args)
    return make


def _nan_labels(env):
    y = env.Y.float().clone()
    y[7] = math.nan
    return (env.X, y)


FIT = [
    ("epochs=0", fit(epochs=0), "epochs"), ("epochs=-1", fit(epochs=-1), "epochs"),
    ("epochs=2.5", fit(epochs=2.5), "epochs"), ("epochs=nan", fit(epochs=math.nan), "epochs"),
    ("epochs=inf", fit(epochs=math.inf), "epochs"), ("epochs='5'", fit(epochs="5"), "epochs"),
    ("epochs=True", fit(epochs=True), "epochs"), ("epochs=None", fit(epochs=None), "epochs"),
    ("epochs=10**7", fit(epochs=10**7), "epochs"),
    ("lr=0", fit(lr=0), "lr"), ("lr=-1e-3", fit(lr=-1e-3), "lr"), ("lr=inf", fit(lr=math.inf), "lr"),
    ("lr=nan", fit(lr=math.nan), "lr"), ("lr='fast'", fit(lr="fast"), "lr"), ("lr=None", fit(lr=None), "lr"),
    ("lr=True", fit(lr=True), "lr"), ("lr=1e3", fit(lr=1e3), "lr"), ("lr=[1e-3]", fit(lr=[1e-3]), "lr"),
    ("lr=-inf", fit(lr=-math.inf), "lr"),
    ("optimizer='adamm'", fit(optimizer="adamm"), "optimizer"), ("optimizer=3", fit(optimizer=3), "optimizer"),
    ("optimizer=None", fit(optimizer=None), "optimizer"), ("optimizer=''", fit(optimizer=""), "optimizer"),
    ("optimizer='rmsprop'", fit(optimizer="rmsprop"), "optimizer"),
    ("weight_decay=-1", fit(weight_decay=-1), "weight_decay"),
    ("weight_decay=nan", fit(weight_decay=math.nan), "weight_decay"),
    ("weight_decay=inf", fit(weight_decay=math.inf), "weight_decay"),
    ("weight_decay='x'", fit(weight_decay="x"), "weight_decay"),
    ("augment='yes'", fit(augment="yes"), "augment"), ("augment=1", fit(augment=1), "augment"),
    ("lr_schedule='linear'", fit(lr_schedule="linear"), "lr_schedule"),
    ("lr_schedule=5", fit(lr_schedule=5), "lr_schedule"),
    ("early_stopping=-1", fit(early_stopping=-1), "patience"), ("early_stopping=0", fit(early_stopping=0), "patience"),
    ("early_stopping=2.5", fit(early_stopping=2.5), "patience"),
    ("early_stopping='3'", fit(early_stopping="3"), "early_stopping"),
    ("early_stopping=[3]", fit(early_stopping=[3]), "early_stopping"),
    ("early_stopping misspelt key", fit(early_stopping={"patiance": 3}), "patiance"),
    ("early_stopping patience=-1", fit(early_stopping={"patience": -1}), "patience"),
    ("early_stopping monitor typo", fit(early_stopping={"monitor": "val_acc"}), "val_acc"),
    ("early_stopping mode='up'", fit(early_stopping={"mode": "up"}), "mode"),
    ("early_stopping min_delta<0", fit(early_stopping={"min_delta": -1}), "min_delta"),
    ("early_stopping restore_best='y'", fit(early_stopping={"restore_best": "y"}), "restore_best"),
    ("EarlyStopping(patience=-1)", fit(early_stopping=EarlyStopping(patience=-1)), "patience"),
    ("batch_size=0", fit(batch_size=0), "batch_size"), ("batch_size=-5", fit(batch_size=-5), "batch_size"),
    ("batch_size=2.5", fit(batch_size=2.5), "batch_size"), ("batch_size='64'", fit(batch_size="64"), "batch_size"),
    ("seed=nan", fit(seed=math.nan), "seed"), ("seed=2**70", fit(seed=2**70), "seed"),
    ("seed=-1", fit(seed=-1), "seed"), ("seed=1.5", fit(seed=1.5), "seed"), ("seed='0'", fit(seed="0"), "seed"),
    ("name='a/b'", fit(name="a/b"), "name"), ("name='../x'", fit(name="../x"), "name"),
    ("name=''", fit(name=""), "name"), ("name=100 chars", fit(name="a" * 100), "name"),
    ("name=5", fit(name=5), "name"), ("name='.hidden'", fit(name=".hidden"), "name"),
    ("name with newline", fit(name="a\nb"), "name"),
    ("reg_strength=-1", fit(reg_strength=-1), "reg_strength"),
    ("reg_strength=nan", fit(reg_strength=math.nan), "reg_strength"),
    ("ema=1.0", fit(ema=1.0), "ema"), ("ema=0", fit(ema=0), "ema"), ("ema=1.5", fit(ema=1.5), "ema"),
    ("ema='x'", fit(ema="x"), "ema"),
    ("swa='yes'", fit(swa="yes"), "swa"), ("checkpoint='no'", fit(checkpoint="no"), "checkpoint"),
    ("background='yes'", fit(background="yes"), "background"),
    ("model_kwargs=[1]", fit(model_kwargs=[1]), "model_kwargs"),
    ("model_kwargs={1: 2}", fit(model_kwargs={1: 2}), "model_kwargs"),
    ("tags='x'", fit(tags="x"), "tags"), ("callbacks=5", fit(callbacks=5), "callbacks"),
    ("callbacks='cb'", fit(callbacks="cb"), "callbacks"),
    ("model with no parameters", fit(model=NoParams()), "no trainable parameters"),
    ("model with frozen parameters", fit(model=Frozen()), "no trainable parameters"),
]

SESSION = [
    ("session seed=nan", session(seed=math.nan), "seed"), ("session seed=2**70", session(seed=2**70), "seed"),
    ("session seed='x'", session(seed="x"), "seed"), ("session batch_size=0", session(batch_size=0), "batch_size"),
    ("session batch_size=-1", session(batch_size=-1), "batch_size"),
    ("session num_workers=-1", session(num_workers=-1), "num_workers"),
    ("task='segmentation'", session(task="segmentation"), "task"),
    ("device='tpu'", session(device="tpu"), "device"), ("device=3", session(device=3), "device"),
    ("device='cuda:9'", session(device="cuda:9") if not torch.cuda.is_available() else session(device="cuda:99"),
     "cuda"),
    ("session reg_strength=-1", session(reg_strength=-1), "reg_strength"),
    ("model='resnet'", session(model="resnet"), "model"),
    ("model=None", session(model=None), "model"),
    ("NaN classification labels", lambda env: session(train=_nan_labels(env))(env), "NaN"),
    ("float-valued integer labels", lambda env: session(train=(env.X, env.Y.float()))(env), "Y.long"),
    ("fractional labels", lambda env: session(train=(env.X, env.Y.float() + 0.5))(env), "regression"),
    ("0-d X", lambda env: session(train=(torch.tensor(1.0), env.Y))(env), "0-d"),
    ("0-d Y", lambda env: session(train=(env.X, torch.tensor(1)))(env), "0-d"),
    ("scalar inputs", lambda env: session(train=(torch.arange(200.0), env.Y))(env), "single number"),
    ("X and Y lengths differ", lambda env: session(train=(env.X, env.Y[:100]))(env), "100"),
    ("empty train", lambda env: session(train=(env.X[:0], env.Y[:0]))(env), "empty"),
    ("NaN in X", lambda env: session(train=(env.X * math.nan, env.Y))(env), "NaN"),
    ("inf in X", lambda env: session(train=(env.X - math.inf, env.Y))(env), "inf"),
    ("negative labels", lambda env: session(train=(env.X, env.Y - 1))(env), "labels"),
    ("num_classes too small", session(num_classes=3), "num_classes"),
    ("2-D labels", lambda env: session(train=(env.X, env.Y[:, None].repeat(1, 2)))(env), "labels"),
    ("test of another image size", lambda env: session(test=(torch.zeros(20, 1, 16, 16), env.Y[:20]))(env),
     "16, 16"),
    ("val of another channel count", lambda env: session(val=(torch.zeros(20, 3, 8, 8), env.Y[:20]))(env),
     "3, 8, 8"),
    ("train is a number", session(train=12), "train"),
    ("train=None", session(train=None), "training set"),
    ("train is a dict", session(train={"x": 1}), "train"),
    ("NaN regression targets", lambda env: session(train=(env.X, _nan_labels(env)[1]), task="regression")(env),
     "NaN"),
    ("augment=True on 1-D features",
     lambda env: wb.Session(wb.models.mlp, (env.X.flatten(1), env.Y), root=env.root).fit(augment=True),
     "augment=True"),
]

CHECKS = [
    ("overfit_batch batches=0", lambda env: env.s.check("overfit_batch", batches=0), "batches"),
    ("overfit_batch batches=-2", lambda env: env.s.check("overfit_batch", batches=-2), "batches"),
    ("overfit_batch steps=0", lambda env: env.s.check("overfit_batch", steps=0), "steps"),
    ("overfit_batch steps=-5", lambda env: env.s.check("overfit_batch", steps=-5), "steps"),
    ("overfit_batch steps=nan", lambda env: env.s.check("overfit_batch", steps=math.nan), "steps"),
    ("overfit_batch lr=0", lambda env: env.s.check("overfit_batch", lr=0), "lr"),
    ("overfit_batch batch_size=0", lambda env: env.s.check("overfit_batch", batch_size=0), "batch_size"),
    ("unknown check", lambda env: env.s.check("overfit_batches"), "overfit_batches"),
    ("unknown check option", lambda env: env.s.check("overfit_batch", batchez=3), "batchez"),
    ("run_checks options not a dict", lambda env: env.s.checks(["overfit_batch"], overfit_batch=5), "dict"),
    ("run_checks options batches=0", lambda env: env.s.checks(["overfit_batch"], overfit_batch={"batches": 0}),
     "batches"),
    ("search epochs=0", lambda env: env.s.search(trials=1, epochs=0), "epochs"),
    ("search epochs=-1", lambda env: env.s.search(trials=1, epochs=-1), "epochs"),
    ("search trials=-1", lambda env: env.s.search(trials=-1), "trials"),
    ("search trials=1.5", lambda env: env.s.search(trials=1.5), "trials"),
    ("search total_trials=0", lambda env: env.s.search(trials=1, total_trials=0), "total_trials"),
    ("search stage='fine'", lambda env: env.s.search(trials=1, stage="fine"), "stage"),
    ("search sampler='grid'", lambda env: env.s.search(trials=1, sampler="grid"), "sampler"),
    ("search objective='acc'", lambda env: env.s.search(trials=1, objective="acc"), "objective"),
    ("search space={}", lambda env: env.s.search({}, trials=1), "space"),
    ("search space of an unknown option", lambda env: env.s.search({"nope": [1, 2]}, trials=1), "nope"),
    ("search space lo=0 on a log scale", lambda env: env.s.search({"lr": ("log", 0, 1)}, trials=1), "lo"),
    ("search space of an unknown kind", lambda env: env.s.search({"lr": ("cubic", 1, 2)}, trials=1), "lr"),
]

RUNS = [
    ("resume unknown id", lambda env: env.s.resume("nope"), "nope"),
    ("resume '../x'", lambda env: env.s.resume("../x"), "not a run id"),
    ("resume epochs=0", lambda env: env.s.resume(env.run.id, epochs=0), "epochs"),
    ("resume epochs='x'", lambda env: env.s.resume(env.run.id, epochs="x"), "epochs"),
    ("resume with another model",
     lambda env: wb.Session(wb.models.mlp, (env.X, env.Y), root=env.root).resume(env.run.id, epochs=2),
     "another model"),
    ("load_run with another model",
     lambda env: wb.Session(wb.models.mlp, (env.X, env.Y), root=env.root).load_run(env.run.id), "another model"),
    ("load_run of a missing checkpoint", lambda env: env.s.load_run(env.run.id, checkpoint=env.root / "x.pt"),
     "no checkpoint"),
    ("run(5)", lambda env: env.s.run(5), "run id"),
    ("run('nope')", lambda env: env.s.run("nope"), "nope"),
]

TABLE = FIT + SESSION + CHECKS + RUNS


def test_the_table_holds_at_least_100_bad_inputs():
    ids = [row[0] for row in TABLE]
    assert len(ids) == len(set(ids)) and len(ids) >= 100


@pytest.fixture(scope="module")
def shared(digits, tmp_path_factory):
    train, test = digits
    X = torch.stack([train[i][0] for i in range(200)])
    Y = torch.tensor([int(train[i][1]) for i in range(200)])
    s = wb.Session(wb.models.linear, (X, Y), (X[:50], Y[:50]), seed=0, root=tmp_path_factory.mktemp("unused"))
    return SimpleNamespace(s=s, X=X, Y=Y)


@pytest.mark.parametrize("name, call, names", TABLE, ids=[row[0] for row in TABLE])
def test_a_bad_input_is_refused_with_the_problem_and_the_fix(shared, tmp_path, name, call, names):
    root = tmp_path / "runs"
    s = shared.s
    s.store, s.last_run, s._live_runs = RunStore(root), None, {}  # a fresh runs folder for this row
    env = SimpleNamespace(s=s, X=shared.X, Y=shared.Y, root=root, run=None)
    if name.startswith(("resume", "load_run")):
        env.run = s.fit(epochs=1)
    before = _disk(root)
    with pytest.raises(WorkbenchError) as e:
        call(env)
    message = str(e.value)
    assert type(e.value) is not WorkbenchError, "a subclass says what kind of problem it is"
    assert re.search(names, message, re.I), f"the message does not name the problem: {message}"
    assert e.value.fix or FIX_WORDS.search(message), f"the message names no fix: {message}"
    assert _disk(root) == before, "the refused call changed the runs on disk"
    assert not list(root.rglob("*.tmp"))


def _disk(root):
    """Every run's status, epoch count and metrics size: what a refused call must leave alone."""
    if not root.exists():
        return {}
    table = RunStore(root).table()
    return {r.id: (r.status, r.epochs, (root / r.id / "metrics.jsonl").stat().st_size) for r in table.itertuples()}
