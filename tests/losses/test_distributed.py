"""``sync_across_ranks=True``: two gloo processes mining their shards together give the loss,
gradient and statistics of one process on the concatenated batch."""

from __future__ import annotations

import pytest
import torch
import torch.multiprocessing as mp

from segohem.losses import OhemCELoss, TopKCELoss

WORLD = 2
CASES = {
    "fallback": lambda: OhemCELoss(thresh=0.9, n_min=0.5),
    "threshold": lambda: OhemCELoss(thresh=0.3, n_min=2),
    "default_n_min": lambda: OhemCELoss(thresh=0.7),
    "weighted_fallback": lambda: OhemCELoss(thresh=0.95, n_min=0.6,
                                            weight=[1.0, 2.0, 0.5, 1.5, 1.0]),
    "per_image": lambda: OhemCELoss(thresh=0.8, n_min=30, per_image=True),
    "topk": lambda: TopKCELoss(top_k=0.3),
}


def make_batch(case: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(4, 5, 12, 12) logits with many exact ties, labels with ignore; image 2 and 3 (rank 1's
    shard) are entirely ignored in one case so that a rank has no valid pixel."""
    gen = torch.Generator().manual_seed(sum(map(ord, case)))
    logits = torch.randint(-3, 4, (4, 5, 12, 12), generator=gen).float() / 2  # ties
    labels = torch.randint(0, 5, (4, 12, 12), generator=gen)
    labels[torch.rand(4, 12, 12, generator=gen) < 0.2] = 255
    if case == "threshold":
        labels[2:] = 255
    return logits, labels


def run(loss_fn, logits, labels):
    logits = logits.clone().requires_grad_(True)
    loss = loss_fn(logits, labels)
    loss.backward()
    stats = loss_fn.last_stats
    return loss.detach(), logits.grad, stats


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank,
                            world_size=WORLD)
    try:
        results = {}
        for case, factory in CASES.items():
            logits, labels = make_batch(case)
            shard = slice(rank * 2, rank * 2 + 2)
            loss_fn = factory()
            loss_fn.sync_across_ranks = True
            loss, grad, stats = run(loss_fn, logits[shard], labels[shard])
            local_fn = factory()  # default: each rank mines alone
            local_loss, _, _ = run(local_fn, logits[shard], labels[shard])
            results[case] = {"loss": loss, "grad": grad, "stats": stats.as_dict(),
                             "class_valid": stats.class_valid, "class_kept": stats.class_kept,
                             "local_loss": local_loss}
        torch.save(results, f"{out_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def rank_results(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddp")
    mp.start_processes(_worker, args=(str(tmp / "init"), str(tmp)), nprocs=WORLD,
                       start_method="spawn", join=True)
    return [torch.load(tmp / f"rank{r}.pt") for r in range(WORLD)]


@pytest.mark.parametrize("case", list(CASES))
def test_global_mining_equals_one_process_on_the_concatenated_batch(rank_results, case):
    logits, labels = make_batch(case)
    loss, grad, stats = run(CASES[case](), logits, labels)
    for rank, results in enumerate(rank_results):
        res = results[case]
        shard = slice(rank * 2, rank * 2 + 2)
        torch.testing.assert_close(res["loss"], loss, rtol=1e-6, atol=1e-7)
        # DDP averages gradients over ranks: each rank back-propagates WORLD x its share.
        torch.testing.assert_close(res["grad"] / WORLD, grad[shard], rtol=1e-5, atol=1e-8)
        for key, value in stats.as_dict().items():
            torch.testing.assert_close(res["stats"][key], value, rtol=1e-6, atol=1e-6,
                                       msg=f"{case}: stats {key}")
    # The per-class counts stay per rank (the module sums them once per epoch, not every
    # step); with the global selection, their sum over the ranks is the one-process count.
    for key in ("class_valid", "class_kept"):
        total = sum(results[case][key] for results in rank_results)
        torch.testing.assert_close(total, getattr(stats, key), rtol=1e-6, atol=1e-5,
                                   msg=f"{case}: {key}")


def test_per_rank_mining_differs_without_the_option(rank_results):
    # Sanity check that the cases exercise something: mining each shard alone gives other
    # values than global mining in the fallback case.
    loss, _, _ = run(CASES["fallback"](), *make_batch("fallback"))
    local = [results["fallback"]["local_loss"] for results in rank_results]
    assert any(not torch.allclose(value, loss) for value in local)


def test_option_is_a_no_op_in_a_single_process():
    logits, labels = make_batch("fallback")
    plain, grad, _ = run(OhemCELoss(thresh=0.9, n_min=0.5), logits, labels)
    synced, grad_synced, _ = run(OhemCELoss(thresh=0.9, n_min=0.5, sync_across_ranks=True),
                                 logits, labels)
    assert torch.equal(plain, synced) and torch.equal(grad, grad_synced)
