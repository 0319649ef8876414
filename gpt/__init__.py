"""gpt: a GPT built on minigrad, following 'Build a Large Language Model (From Scratch)'.

Every name below is imported on first use (PEP 562 module `__getattr__`): `gpt.GPTModel`,
`from gpt import GPTModel` and `dir(gpt)` work as if it were imported here, but `import gpt`
itself costs nothing. That keeps the `gpt` command's path to its Ctrl-C handling short (the
console script imports gpt.cli, hence this file, before any of its code runs), and a script
that needs only the tokenizer does not load the model, the trainer or the weight loaders.
"""
import importlib as _importlib

# module (relative to gpt) -> the names it gives gpt, in the order a batch travels
_EXPORTS = {
    # model (chapters 3-4): configs, the GPT model, KV cache, generation, helpers
    ".model.config": ("GPT_CONFIG_124M", "GPT2_CONFIGS", "GPT2_MODEL_CONFIGS", "count_parameters",
                      "validate_config"),
    ".model.attention": ("KVCache", "MultiHeadAttention"),
    ".model.gpt_model": ("FeedForward", "GELU", "GPTModel", "LayerNorm", "TransformerBlock"),
    ".model.generate": ("generate", "sample_next_token", "top_k_filter", "top_p_filter"),
    ".model.utils": ("model_summary", "print_model_summary", "text_to_token_ids", "token_ids_to_text"),

    # tokenizers and data (chapter 2): text -> token ids -> windows and batches
    ".data.tokenizer": ("ByteTokenizer", "TiktokenTokenizer", "Tokenizer"),
    ".data.registry": ("TOKENIZER_KINDS", "TokenizerKind", "get_tokenizer", "tokenizer_from_state"),
    ".data.gpt2_files": ("TokenizerNotFoundError",),
    ".data.bpe": ("train_bpe",),
    ".data.corpus": ("default_corpus_text", "list_text_files", "load_text", "prepare_corpus",
                     "tokenize_files"),
    ".data.loader": ("DataLoader", "SlidingWindowDataset", "create_dataloader", "train_val_split"),

    # pretrained weights (chapter 5.5): OpenAI / Hugging Face GPT-2 folders <-> GPTModel
    ".weights": ("WeightsError", "detect_layout", "is_gpt2_folder", "load_gpt2", "save_gpt2"),

    # finetuning: classification (ch. 6), instructions (ch. 7), LoRA (appendix E)
    ".finetune": ("ClassificationDataset", "InstructionDataset", "LoRALinear", "add_classification_head",
                  "custom_collate_fn", "format_input", "freeze_for_classification", "load_lora_state_dict",
                  "lora_state_dict", "merge_lora", "replace_linear_with_lora"),

    # pretraining and checkpoints (chapter 5); the command line is gpt.cli
    ".training.config": ("PRESETS", "TrainConfig"),
    ".training.loop": ("TrainingError", "TrainResult", "train"),
    ".training.checkpoint": ("CheckpointError", "load_checkpoint", "save_checkpoint"),

    # data-parallel training over MPI: `mpiexec -n N gpt train ...`; mpi4py imported only then
    ".training.distributed": ("DistributedError", "MPIWorld", "world_from_env"),
}
# the subpackages `gpt.data`, `gpt.model`, ... (bound by importing any name above, as before)
_SUBPACKAGES = ("data", "finetune", "model", "training", "weights")

_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted([*_MODULE_OF, *_SUBPACKAGES])


def __getattr__(name: str):
    """`gpt.NAME`: import NAME's module the first time it is asked for, and keep NAME here."""
    if name in _SUBPACKAGES:
        return _importlib.import_module(f".{name}", __name__)
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(_importlib.import_module(_MODULE_OF[name], __name__), name)
    globals()[name] = value  # later look-ups find it here, without calling __getattr__
    return value


def __dir__() -> list[str]:
    """The exported names, imported or not (and the module's own dunders)."""
    return sorted({*__all__, *(name for name in globals() if name.startswith("__"))})
