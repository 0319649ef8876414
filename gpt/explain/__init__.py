"""`gpt explain`: one self-contained HTML page showing what a GPT does with a prompt.

    capture.py   the model's internals for one prompt (attention, logit lens, norms, MLP)
    summary.py   those numbers trimmed and quantized into the page's data (JSON)
    page.py      the HTML page: template + CSS + JS (files beside this one) + data
"""
