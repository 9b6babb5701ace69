"""Image files decoded in worker processes at reduced size: the same numbers as in one process, cached (recipe I.2)."""

import os
import shutil
import time

import numpy as np
import pytest
from PIL import Image

from workbench.data import audit
from workbench.data import decode as dec
from workbench.data.decode import clear_cache, decode_files


def _photo(seed, px):
    """A smooth random colour picture with noise, like a downscaled photo."""
    rng = np.random.default_rng(seed)
    base = Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)).resize((px, px), Image.BICUBIC)
    a = np.asarray(base, np.float32) + rng.normal(0, 6, (px, px, 3))
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


@pytest.fixture
def jpegs(tmp_path):
    root = tmp_path / "jpegs"
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
    paths = []
    for i in range(40):
        p = root / ("a", "b")[i % 2] / f"{i:03d}.jpg"
        _photo(i, 128 if i % 3 else 256).save(p, quality=92)
        paths.append(str(p))
    return root, paths


def _all(paths, **kw):
    parts = list(decode_files(paths, **kw))
    assert [s for s, _ in parts] == list(range(0, len(paths), kw.get("chunk", dec.CHUNK)))
    return {k: np.concatenate([getattr(d, k) for _, d in parts]) for k in ("hashes", "p01", "p99", "entropy",
                                                                            "thumbs", "sizes")}


def test_workers_give_the_numbers_of_one_process(jpegs):
    _, paths = jpegs
    clear_cache()
    here = _all(paths, workers=0)
    clear_cache()
    pool = _all(paths, workers=2, chunk=8)   # five chunks over two forked workers
    for k in here:
        assert np.array_equal(here[k], pool[k]), k
    assert here["sizes"].tolist() == [[128, 128] if i % 3 else [256, 256] for i in range(40)]
    assert len({tuple(h) for h in here["hashes"]}) == 40


def test_reduced_decode_matches_the_full_decode(jpegs):
    """Draft mode decodes a 256 px JPEG at 64 px; its statistics match those of the full image, resized."""
    _, paths = jpegs
    clear_cache()
    got = _all(paths, workers=0)
    for i in (0, 3, 6):   # the 256 px ones
        full = Image.open(paths[i]).convert("L")
        g = np.asarray(full.resize((64, 64), Image.BILINEAR), np.float32) / 255
        thumb = np.asarray(Image.fromarray(g, "F").resize((16, 16), Image.BILINEAR))
        assert np.abs(got["thumbs"][i] - thumb).max() < 0.03
        assert got["p01"][i] == pytest.approx(np.quantile(g, 0.01), abs=0.03)
        assert got["p99"][i] == pytest.approx(np.quantile(g, 0.99), abs=0.03)


def test_cache_is_keyed_by_size_and_time(jpegs, monkeypatch):
    _, paths = jpegs
    clear_cache()
    first = _all(paths, workers=0)
    calls = []
    real = dec._decode_one
    monkeypatch.setattr(dec, "_decode_one", lambda *a: calls.append(a[0]) or real(*a))
    again = _all(paths, workers=0)
    assert calls == [] and np.array_equal(first["hashes"], again["hashes"])
    _photo(999, 128).save(paths[5], quality=92)
    os.utime(paths[5], ns=(time.time_ns(), time.time_ns() + 10**9))
    changed = _all(paths, workers=0)
    assert calls == [paths[5]]
    assert not np.array_equal(changed["hashes"][5], first["hashes"][5])


def test_folder_audit_through_workers_finds_copies_and_broken_files(jpegs):
    root, paths = jpegs
    shutil.copyfile(paths[1], root / "b" / "copy.jpg")                       # a byte copy
    _photo(7, 128).save(root / "a" / "orig.png")
    _photo(7, 128).save(root / "a" / "resaved.png", compress_level=1)       # other bytes, the same pixels
    (root / "a" / "empty.jpg").write_bytes(b"")
    clear_cache()
    dec_in = dec.IN_PROCESS
    try:
        dec.IN_PROCESS = 0     # force the worker pool on this small folder
        report = audit(root, issues=("corrupt", "exact_duplicate"))
    finally:
        dec.IN_PROCESS = dec_in
    files = report.meta["files"]["data"]
    dup = report.of("exact_duplicate")
    groups = dup.groupby("group")["index"].apply(lambda s: sorted(files[i] for i in s)).tolist()
    assert sorted(groups) == [["a/orig.png", "a/resaved.png"], ["b/001.jpg", "b/copy.jpg"]]
    corrupt = report.of("corrupt")
    assert [files[i] for i in corrupt["index"]] == ["a/empty.jpg"] and "0 bytes" in corrupt["detail"].iloc[0]
