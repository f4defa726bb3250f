"""`tdos.sync_batch_norm`: batch statistics of the global batch under a 2-process CPU (gloo) group."""

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from tdos.sync_batch_norm import SyncBatchNorm, convert_sync_batchnorm


def reference_batch_norm():
    torch.manual_seed(0)
    norm = nn.BatchNorm2d(3)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.uniform_(-0.5, 0.5)
    return norm


def global_batch():
    return torch.randn(4, 3, 5, 6, generator=torch.Generator().manual_seed(1)) * 3 + 1


def worker(rank, init_file, results):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        norm, count = convert_sync_batchnorm(nn.Sequential(reference_batch_norm()))
        assert count == 1 and isinstance(norm[0], SyncBatchNorm)
        inputs = global_batch()[2 * rank : 2 * rank + 2].requires_grad_()
        output = norm(inputs)
        (output * torch.arange(output.numel()).view_as(output)).sum().backward()
        results[rank] = {
            "output": output.detach(),
            "input_grad": inputs.grad,
            "weight_grad": norm[0].weight.grad,
            "running_mean": norm[0].running_mean.clone(),
            "running_var": norm[0].running_var.clone(),
        }
    finally:
        dist.destroy_process_group()


def test_two_cpu_processes_normalise_with_the_statistics_of_the_global_batch(tmp_path):
    results = mp.Manager().dict()
    mp.spawn(worker, args=(str(tmp_path / "init"), results), nprocs=2)
    norm = reference_batch_norm()
    inputs = global_batch().requires_grad_()
    output = norm(inputs)
    (output[:2] * torch.arange(output[:2].numel()).view_as(output[:2])).sum().backward(retain_graph=True)
    weights = torch.arange(output[2:].numel()).view_as(output[2:])
    (output[2:] * weights).sum().backward()
    torch.testing.assert_close(torch.cat([results[0]["output"], results[1]["output"]]), output.detach())
    torch.testing.assert_close(torch.cat([results[0]["input_grad"], results[1]["input_grad"]]), inputs.grad, atol=1e-5, rtol=1e-4)
    # each process holds its own share of the weight gradient; DDP sums them
    torch.testing.assert_close(results[0]["weight_grad"] + results[1]["weight_grad"], norm.weight.grad, atol=1e-4, rtol=1e-4)
    for rank in (0, 1):
        torch.testing.assert_close(results[rank]["running_mean"], norm.running_mean)
        torch.testing.assert_close(results[rank]["running_var"], norm.running_var)


def test_without_a_process_group_it_is_plain_batch_norm():
    reference = reference_batch_norm()
    converted, count = convert_sync_batchnorm(reference_batch_norm())
    assert count == 1
    inputs = global_batch()
    torch.testing.assert_close(converted(inputs), reference(inputs))
    torch.testing.assert_close(converted.running_var, reference.running_var)
    converted.eval(), reference.eval()
    torch.testing.assert_close(converted(inputs), reference(inputs))
