"""Chapter 2: from text to batches of token ids.

    gpt2_files.py   finding and reading GPT-2's tokenizer files, offline first
    tokenizer.py    the Tokenizer interface and its kinds: bytes, GPT-2's and trained BPEs
    bpe.py          training a byte-level BPE on your own text
    registry.py     tokenizers by name ("bytes", "gpt2", "bpe:N"): `get_tokenizer(name)`;
                    a new kind of tokenizer is one entry there
    corpus.py       where the text comes from (the embedded default, files, folders) and the
                    token caches beside it; `prepare_corpus`: data settings -> token ids
    loader.py       sliding input/target windows and the resumable DataLoader
"""
from .gpt2_files import TokenizerNotFoundError
from .tokenizer import ByteTokenizer, TiktokenTokenizer, Tokenizer
from .registry import TOKENIZER_KINDS, TokenizerKind, get_tokenizer, tokenizer_from_state
from .bpe import train_bpe
from .corpus import default_corpus_text, list_text_files, load_text, prepare_corpus, tokenize_files
from .loader import DataLoader, SlidingWindowDataset, create_dataloader, train_val_split

__all__ = [
    "TokenizerNotFoundError", "ByteTokenizer", "TiktokenTokenizer", "Tokenizer", "TOKENIZER_KINDS",
    "TokenizerKind", "get_tokenizer",
    "tokenizer_from_state", "train_bpe", "default_corpus_text", "list_text_files", "load_text",
    "prepare_corpus", "tokenize_files", "DataLoader", "SlidingWindowDataset", "create_dataloader",
    "train_val_split",
]
