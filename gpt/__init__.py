"""gpt: a GPT built on minigrad, following 'Build a Large Language Model (From Scratch)'."""

# model (chapters 3-4): configs, the GPT model, KV cache, generation, helpers
from .model.config import GPT_CONFIG_124M, GPT2_CONFIGS, GPT2_MODEL_CONFIGS, count_parameters, validate_config
from .model.attention import KVCache, MultiHeadAttention
from .model.gpt_model import FeedForward, GELU, GPTModel, LayerNorm, TransformerBlock
from .model.generate import generate, sample_next_token, top_k_filter, top_p_filter
from .model.utils import model_summary, print_model_summary, text_to_token_ids, token_ids_to_text

# tokenizers and data (chapter 2): text -> token ids -> windows and batches
from .data.tokenizer import ByteTokenizer, TiktokenTokenizer, Tokenizer
from .data.registry import TOKENIZER_KINDS, TokenizerKind, get_tokenizer, tokenizer_from_state
from .data.gpt2_files import TokenizerNotFoundError
from .data.bpe import train_bpe
from .data.corpus import default_corpus_text, list_text_files, load_text, prepare_corpus, tokenize_files
from .data.loader import DataLoader, SlidingWindowDataset, create_dataloader, train_val_split

# pretrained weights (chapter 5.5): OpenAI / Hugging Face GPT-2 folders <-> GPTModel
from .weights import WeightsError, detect_layout, is_gpt2_folder, load_gpt2, save_gpt2

# finetuning: classification (ch. 6), instructions (ch. 7), LoRA (appendix E)
from .finetune import (ClassificationDataset, InstructionDataset, LoRALinear, add_classification_head,
                       custom_collate_fn, format_input, freeze_for_classification, load_lora_state_dict,
                       lora_state_dict, merge_lora, replace_linear_with_lora)

# pretraining and checkpoints (chapter 5); the command line is gpt.cli
from .training.config import PRESETS, TrainConfig
from .training.loop import TrainingError, TrainResult, train
from .training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

# data-parallel training over MPI: `mpiexec -n N gpt train ...`; mpi4py imported only then
from .training.distributed import DistributedError, MPIWorld, world_from_env
