"""The text branch of TDOS: the prompt learner (CoOp contexts and learnable OOD prompts) and the frozen CLIP text
tower that encodes the assembled prompts."""

from __future__ import annotations

import torch
from torch import nn
from transformers import CLIPTextModel

from .configuration_tdos import TDOSConfig


class TDOSTextEncoder(nn.Module):
    """The frozen CLIP text tower run on assembled prompt embeddings (causal, positions `0..L-1`, end-token pooling)."""

    def __init__(self, config: TDOSConfig):
        super().__init__()
        text_config = config.clip_config.text_config
        self.text_model = CLIPTextModel(text_config)
        self.text_projection = nn.Linear(text_config.hidden_size, config.projection_dim, bias=False)

    @property
    def token_embedding(self) -> nn.Embedding:
        return self.text_model.embeddings.token_embedding

    def forward(
        self, inputs_embeds: torch.Tensor, eos_positions: torch.Tensor, add_position_embeddings: bool = True
    ) -> torch.Tensor:
        """`inputs_embeds` `(N, L, D)` without positions, `eos_positions` `(N,)` → projected embeddings `(N, C)`.
        `add_position_embeddings=False` runs the tower without positions, as the released prompt path did."""
        length = inputs_embeds.shape[1]
        hidden_states = inputs_embeds
        if add_position_embeddings:
            hidden_states = hidden_states + self.text_model.embeddings.position_embedding.weight[:length]
        dtype = hidden_states.dtype
        causal_mask = torch.full((length, length), torch.finfo(dtype).min, dtype=dtype, device=hidden_states.device)
        causal_mask = causal_mask.triu(1)[None, None]
        hidden_states = self.text_model.encoder(inputs_embeds=hidden_states, attention_mask=causal_mask)
        hidden_states = self.text_model.final_layer_norm(hidden_states.last_hidden_state)
        pooled = hidden_states[torch.arange(hidden_states.shape[0], device=hidden_states.device), eos_positions]
        return self.text_projection(pooled)

    def encode_input_ids(self, input_ids: torch.Tensor, eos_token_id: int) -> torch.Tensor:
        """Plain CLIP text features of tokenized prompts `(N, L)` (pooled at the first end token)."""
        eos_positions = (input_ids == eos_token_id).int().argmax(-1)
        return self(self.token_embedding(input_ids), eos_positions)


class TDOSPromptLearner(nn.Module):
    """Learnable prompts: CoOp contexts shared by the class prompts and `M` learnable OOD prompts.

    `prompt_mode="corrected"`: class prompt `c` is `[SOT, ctx_1..ctx_P, name tokens.., EOT, pad..]`, pooled at its end
    token (index shifted by `P`); OOD prompt `i` is `[SOT, neg_i,1..neg_i,P, EOT, pad..]`, pooled at index `P + 1`.
    Both have length `text_context_length`; positions are added by the text encoder (the paper's assembly).

    `prompt_mode="release"` (the released code, docs/method.md §1): class prompt `c` is `[SOT, ctx_1..ctx_P, name
    tokens.., EOT, pad..]` too but pooled at the end token's index in the name tokens alone (not shifted by `P`), and
    OOD prompt `i` is `[neg_i,1, ctx_1..ctx_P, neg_i,2..neg_i,P]` (zero-padded to `text_context_length`) pooled at 0;
    the text encoder adds no positions ([`TDOSPromptLearner.adds_position_embeddings`]).
    """

    def __init__(self, config: TDOSConfig):
        super().__init__()
        width = config.clip_config.text_config.hidden_size
        self.prompt_mode = config.prompt_mode
        self.context_length = config.prompt_context_length
        self.contexts = nn.Parameter(torch.empty(1, config.prompt_context_length, width))
        self.negative_prompts = nn.Parameter(torch.empty(config.num_ood_prompts, config.prompt_context_length, width))
        # Token ids come from the tokenizer when the model is created from CLIP (`set_prompt_tokens`).
        self.register_buffer("class_input_ids", torch.zeros(config.num_id_classes, config.class_name_length, dtype=torch.long))
        self.register_buffer("class_eos_positions", torch.full((config.num_id_classes,), 1, dtype=torch.long))
        self.register_buffer("negative_input_ids", torch.zeros(config.text_context_length, dtype=torch.long))

    def set_prompt_tokens(self, class_input_ids: torch.Tensor, bos_token_id: int, eos_token_id: int, pad_token_id: int):
        """Stores the tokenized class names `(K_id, class_name_length)` and the OOD prompt template."""
        if class_input_ids.shape != self.class_input_ids.shape:
            raise ValueError(f"class_input_ids has shape {tuple(class_input_ids.shape)}, expected {tuple(self.class_input_ids.shape)}")
        is_eos = class_input_ids == eos_token_id
        if not is_eos.any(-1).all():
            raise ValueError("every tokenized class name must contain the end-of-text token")
        self.class_input_ids.copy_(class_input_ids)
        self.class_eos_positions.copy_(is_eos.int().argmax(-1) + self.context_length)
        template = torch.full_like(self.negative_input_ids, pad_token_id)
        template[0], template[self.context_length + 1] = bos_token_id, eos_token_id
        self.negative_input_ids.copy_(template)

    @property
    def adds_position_embeddings(self) -> bool:
        """Whether the text encoder adds positional embeddings to these prompts (not in the release's assembly)."""
        return self.prompt_mode == "corrected"

    def forward(self, token_embedding: nn.Embedding) -> tuple[torch.Tensor, torch.Tensor]:
        """Assembled prompts `(K, L, D)` (class prompts, then OOD prompts) and their end-token positions `(K,)`."""
        names = token_embedding(self.class_input_ids)  # (K_id, L - P, D)
        contexts = self.contexts.expand(names.shape[0], -1, -1).to(names.dtype)
        class_prompts = torch.cat([names[:, :1], contexts, names[:, 1:]], 1)
        if self.prompt_mode == "release":
            return self._release_prompts(class_prompts, contexts[:1])
        template = token_embedding(self.negative_input_ids)  # (L, D)
        num_negatives = self.negative_prompts.shape[0]
        negative_prompts = torch.cat(
            [
                template[None, :1].expand(num_negatives, -1, -1),
                self.negative_prompts.to(names.dtype),
                template[None, self.context_length + 1 :].expand(num_negatives, -1, -1),
            ],
            1,
        )
        negative_eos = self.class_eos_positions.new_full((num_negatives,), self.context_length + 1)
        return torch.cat([class_prompts, negative_prompts]), torch.cat([self.class_eos_positions, negative_eos])

    def _release_prompts(self, class_prompts: torch.Tensor, contexts: torch.Tensor):
        """The released assembly: OOD prompts take the place of the name tokens around the shared contexts, and every
        prompt is pooled at its unshifted end-token index (0 for the OOD prompts)."""
        negatives = self.negative_prompts.to(class_prompts.dtype)  # (M, P, D)
        num_negatives = negatives.shape[0]
        negative_prompts = torch.cat([negatives[:, :1], contexts.expand(num_negatives, -1, -1), negatives[:, 1:]], 1)
        padding = class_prompts.shape[1] - negative_prompts.shape[1]
        negative_prompts = nn.functional.pad(negative_prompts, (0, 0, 0, padding))
        eos = torch.cat([self.class_eos_positions - self.context_length, self.class_eos_positions.new_zeros(num_negatives)])
        return torch.cat([class_prompts, negative_prompts]), eos


__all__ = ["TDOSPromptLearner", "TDOSTextEncoder"]
