"""GPT-2 weights without any framework: file formats, name mapping, loading, saving, download.

- `safetensors`: Hugging Face's .safetensors, read memory-mapped and written with NumPy.
- `leveldb_table`, `tf_checkpoint`: TensorFlow's tensor-bundle checkpoint (OpenAI's release).
- `mapping`: GPT-2 names and layouts <-> the book's GPTModel state dict.
- `gpt2`: `load_gpt2(path) -> (model, tokenizer)` and `save_gpt2(model, path, tokenizer)`.
- `download`: `gpt download gpt2-small|...` with the standard library.
- `hub_cache`: a hub id (`openai-community/gpt2`) found in the Hugging Face cache, offline.
"""
from .errors import WeightsError
from .safetensors import SafeTensorsFile, load_file, save_file
from .tf_checkpoint import TFCheckpoint, write_tf_checkpoint
from .gpt2 import detect_layout, is_gpt2_folder, load_gpt2, read_gpt2_weights, save_gpt2


def download_main(argv=None) -> int:
    """`gpt download ...` as a program (see gpt.weights.download); returns the exit code."""
    # imported on use, not above: `python -m gpt.weights.download` runs that module as __main__,
    # and a copy already imported by this package would make runpy warn and load it twice
    from .download import download_main as main
    return main(argv)


def add_download_parser(subparsers):
    """Mount `download` on an argparse CLI; the handler is `args.func(args) -> exit code`."""
    from .download import add_download_parser as add  # (on use: see download_main)
    return add(subparsers)


__all__ = [
    "WeightsError", "SafeTensorsFile", "load_file", "save_file", "TFCheckpoint", "write_tf_checkpoint",
    "detect_layout", "is_gpt2_folder", "load_gpt2", "read_gpt2_weights", "save_gpt2",
    "add_download_parser", "download_main",
]
