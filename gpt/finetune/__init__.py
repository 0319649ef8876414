"""Finetuning (the book's chapters 6 and 7, appendix E): classification, instructions, LoRA.

    from gpt.finetune import add_classification_head, freeze_for_classification
    from gpt.finetune import format_input, custom_collate_fn, InstructionDataset
    from gpt.finetune import LoRALinear, replace_linear_with_lora, merge_lora
"""
from .classify import (ClassificationDataset, add_classification_head, calc_accuracy, calc_loss,
                       calc_loss_batch, classification_logits, classify_text,
                       freeze_for_classification, label_names_of, predict, random_split,
                       read_classification_file, train_classifier, write_classification_file)
from .instruct import (InstructionDataset, custom_collate_fn, format_input, format_response,
                       generate_response, generate_test_responses, load_instruction_data,
                       split_instruction_data, train_instruct, validate_records)
from .lora import (LoRALinear, load_lora_state_dict, lora_layers, lora_state_dict, merge_lora,
                   replace_linear_with_lora)

__all__ = [
    "ClassificationDataset", "add_classification_head", "calc_accuracy", "calc_loss",
    "calc_loss_batch", "classification_logits", "classify_text", "freeze_for_classification",
    "label_names_of", "predict", "random_split", "read_classification_file", "train_classifier",
    "write_classification_file",
    "InstructionDataset", "custom_collate_fn", "format_input", "format_response",
    "generate_response", "generate_test_responses", "load_instruction_data",
    "split_instruction_data", "train_instruct", "validate_records",
    "LoRALinear", "load_lora_state_dict", "lora_layers", "lora_state_dict",
    "merge_lora", "replace_linear_with_lora",
]
