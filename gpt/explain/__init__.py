"""`gpt explain`: one self-contained HTML page showing what a GPT does with a prompt.

    capture.py   the model's internals for one prompt, from one forward pass (forward hooks):
                 attention weights, logit lens, residual norms, MLP activations; generation steps
    summary.py   those numbers trimmed and quantized into the page's data (what is embedded, how)
    metrics.py   a training run's metrics.jsonl as charts, whatever keys it holds
    page.py      the HTML page: static/page.html + page.css + the static/*.js files + the data
    build.py     load a run folder or GPT-2 folder, build the data, write the page

    from gpt.explain import explain
    explain("runs/default", "The for statement", out="explain.html")
"""
from .build import ExplainResult, explain, load_model
from .capture import attention_weights, capture_prompt, generation_steps

__all__ = ["ExplainResult", "attention_weights", "capture_prompt", "explain", "generation_steps", "load_model"]
