"""The context decoder of TDOS (from DenseCLIP): the text embeddings attend to the image's global and dense
embeddings and are refined by a learnable residual `T' = T + gamma * Delta T`."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .configuration_tdos import TDOSConfig


class TDOSContextAttention(nn.Module):
    """Multi-head attention with bias-free q/k/v projections (DenseCLIP context decoder)."""

    def __init__(self, width: int, num_heads: int, dropout: float):
        super().__init__()
        self.num_heads = num_heads
        self.q_proj = nn.Linear(width, width, bias=False)
        self.k_proj = nn.Linear(width, width, bias=False)
        self.v_proj = nn.Linear(width, width, bias=False)
        self.out_proj = nn.Linear(width, width)
        self.dropout = nn.Dropout(dropout)

    def forward(self, queries: torch.Tensor, keys_values: torch.Tensor) -> torch.Tensor:
        batch, num_queries, width = queries.shape

        def split(states: torch.Tensor) -> torch.Tensor:
            return states.view(batch, -1, self.num_heads, width // self.num_heads).transpose(1, 2)

        output = F.scaled_dot_product_attention(
            split(self.q_proj(queries)), split(self.k_proj(keys_values)), split(self.v_proj(keys_values))
        )
        return self.dropout(self.out_proj(output.transpose(1, 2).reshape(batch, num_queries, width)))


class TDOSContextDecoderLayer(nn.Module):
    """Pre-norm layer: self-attention over text, cross-attention to the visual context, MLP."""

    def __init__(self, width: int, num_heads: int, dropout: float):
        super().__init__()
        self.self_attn_layer_norm = nn.LayerNorm(width)
        self.self_attn = TDOSContextAttention(width, num_heads, dropout)
        self.cross_attn_layer_norm = nn.LayerNorm(width)
        self.cross_attn = TDOSContextAttention(width, num_heads, dropout)
        self.final_layer_norm = nn.LayerNorm(width)
        self.mlp = nn.Sequential(
            nn.Linear(width, 4 * width), nn.GELU(), nn.Dropout(dropout), nn.Linear(4 * width, width)
        )
        self.dropout = nn.Dropout(dropout)

    def forward(self, text: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        normed = self.self_attn_layer_norm(text)
        text = text + self.self_attn(normed, normed)
        text = text + self.cross_attn(self.cross_attn_layer_norm(text), memory)
        return text + self.dropout(self.mlp(self.final_layer_norm(text)))


class TDOSContextDecoder(nn.Module):
    """Refines the text embeddings with the image's global and dense embeddings: returns `Delta T` `(B, K, C)`."""

    def __init__(self, config: TDOSConfig):
        super().__init__()
        width, dim = config.context_decoder_hidden_size, config.projection_dim
        self.memory_proj = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, width), nn.LayerNorm(width))
        self.text_proj = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, width))
        self.layers = nn.ModuleList(
            TDOSContextDecoderLayer(width, config.context_decoder_num_heads, config.context_decoder_dropout)
            for _ in range(config.context_decoder_num_layers)
        )
        self.out_proj = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, dim))

    def forward(self, text: torch.Tensor, visual: torch.Tensor) -> torch.Tensor:
        memory = self.memory_proj(visual)
        text = self.text_proj(text)
        for layer in self.layers:
            text = layer(text, memory)
        return self.out_proj(text)



__all__ = ["TDOSContextDecoder"]
