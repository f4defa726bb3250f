"""benchmarks/inference_rounding.py: imposing attention masks, counting differing positions, the printed tables."""

import sys
from pathlib import Path

import torch


REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]

import inference_rounding  # noqa: E402


@torch.no_grad()
def test_imposed_masks_replace_the_predictors_and_nothing_else(tiny_model):
    model = tiny_model.eval()
    window = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    for optimisations in ((), inference_rounding.OPTIMISATIONS):
        semantic_map, masks = inference_rounding.window_map(model, window, optimisations)
        assert masks and all(mask.dtype == torch.bool for mask in masks)
        same, recorded = inference_rounding.window_map(model, window, optimisations, imposed=masks)
        assert torch.equal(same, semantic_map)
        assert all(torch.equal(a, b) for a, b in zip(recorded, masks))  # the predictor still computes its own
        inverted, _ = inference_rounding.window_map(model, window, optimisations, imposed=[~mask for mask in masks])
        assert (inverted - semantic_map).abs().max() > 1e-4  # the imposed masks reach the attention
    assert model.transformer_decoder.decoder.mask_predictor._forward_hooks == {}


def test_differing_positions_counts_each_query_key_once_over_the_heads():
    heads, queries, keys = 2, 3, 5
    mask = torch.zeros(heads, queries, keys, dtype=torch.bool)
    other = mask.clone()
    other[:, 1, 4] = True  # one position, repeated over both heads as the predictor does
    other[:, 2, 0] = True
    assert inference_rounding.differing_positions([mask, mask], [other, mask], heads) == [2, 0]


def test_main_prints_a_row_per_window_and_the_worst_differences(capsys):
    inference_rounding.main(["--preset", "tiny", "--size", "64", "112", "--windows", "2"])
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| 0 |") or line.startswith("| 1 |")]
    assert len(rows) == 2 and "| 2 |" not in out
    for name in inference_rounding.COMPARISONS:
        line = next(line for line in out.splitlines() if line.startswith(f"| {name} |"))
        assert 0 <= float(line.split("|")[2]) < 1e-4  # fp32 rounding at tiny dims
    assert "mask positions differing from float64's over all windows and layers: release " in out
