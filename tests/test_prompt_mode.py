"""`prompt_mode`: the corrected prompt assembly (default) and the released one (docs/method.md §1)."""

import pytest
import torch

from conftest import build_tiny_model
from tdos import TDOSConfig


def with_bpe_like_class_tokens(model):
    """Class names tokenized as CLIP's BPE does (docs/method.md §1): one token per name except "traffic light" and
    "traffic sign" (two tokens each); `[SOT, name.., EOT, pad..]`."""
    learner = model.prompt_learner
    bos, eos = model.config.clip_config.text_config.bos_token_id, model.config.clip_config.text_config.eos_token_id
    ids = torch.full_like(learner.class_input_ids, eos)
    for index, name in model.config.id2label.items():
        tokens = [10 + index, 40 + index] if name.startswith("traffic") else [10 + index]
        ids[index, : len(tokens) + 2] = torch.tensor([bos, *tokens, eos])
    learner.set_prompt_tokens(ids, bos, eos, eos)
    return model


def class_embeddings(prompt_mode: str) -> torch.Tensor:
    model = with_bpe_like_class_tokens(build_tiny_model(prompt_mode=prompt_mode)).eval()
    with torch.no_grad():
        return model.compute_text_embeddings()[: model.config.num_id_classes]


def rows_equal_to(embeddings: torch.Tensor, row: int) -> int:
    return sum(torch.equal(embeddings[row], other) for other in embeddings)


def test_release_mode_ignores_class_names_in_18_of_20_class_prompts():
    embeddings = class_embeddings("release")
    assert rows_equal_to(embeddings, 0) == 18  # every single-token class: road, sidewalk, ..., bicycle, ood
    assert torch.equal(embeddings[6], embeddings[7])  # traffic light == traffic sign
    assert not torch.equal(embeddings[0], embeddings[6])


def test_corrected_mode_gives_every_class_its_own_prompt_embedding():
    embeddings = class_embeddings("corrected")
    assert all(rows_equal_to(embeddings, row) == 1 for row in range(len(embeddings)))


def test_release_mode_ood_prompts_depend_on_their_first_vector_only():
    model = build_tiny_model(prompt_mode="release").eval()
    with torch.no_grad():
        before = model.compute_text_embeddings()
        model.prompt_learner.negative_prompts[:, 1:].normal_()
        model.prompt_learner.contexts.normal_()
        after = model.compute_text_embeddings()
        num_classes = model.config.num_id_classes
        torch.testing.assert_close(after[num_classes:], before[num_classes:], rtol=0, atol=0)
        model.prompt_learner.negative_prompts[:, 0].normal_()
        assert not torch.allclose(model.compute_text_embeddings()[num_classes:], after[num_classes:])


def test_prompt_mode_is_validated_and_saved(tmp_path):
    with pytest.raises(ValueError, match="prompt_mode must be one of"):
        TDOSConfig.from_preset("tiny", prompt_mode="buggy")
    model = build_tiny_model(prompt_mode="release")
    model.save_pretrained(tmp_path)
    assert TDOSConfig.from_pretrained(tmp_path).prompt_mode == "release"
