"""OpenAI CLIP's text cleaning, applied before tokenisation so that TDOS prompts get OpenAI's token ids.

OpenAI's tokenizer (`clip.tokenize`, `open_clip`'s `SimpleTokenizer`) first repairs the text with ftfy (mojibake,
curly quotes, HTML entities, ...), unescapes HTML entities twice (`&amp;amp;` -> `&`), and collapses whitespace; then
it lower-cases and applies BPE. transformers' `CLIPTokenizer` only normalises (NFC, whitespace, lower case), and it
rebuilds that normaliser when a folder is loaded, so a converted folder's `tokenizer.json` cannot carry the cleaning.
`clean_text` does it instead; TDOS passes its class prompts and OOD words through it (`tdos.from_clip`,
`tdos.ood_prompts`), and `tokenizer([clean_text(t) for t in texts])` gives OpenAI's ids for any text.
"""

from __future__ import annotations

import html


def clean_text(text: str) -> str:
    """`text` cleaned as OpenAI's CLIP tokenizer cleans it before BPE (case is left to the tokenizer)."""
    try:
        import ftfy
    except ImportError as error:
        raise ImportError("tdos.text_cleaning needs ftfy, as OpenAI's CLIP tokenizer does: pip install ftfy") from error
    return " ".join(html.unescape(html.unescape(ftfy.fix_text(text))).split())


def clean_texts(texts) -> list[str]:
    """`clean_text` of every text of an iterable, as a list."""
    return [clean_text(text) for text in texts]
