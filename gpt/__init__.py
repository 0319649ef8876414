"""gpt: a GPT built on minigrad, following 'Build a Large Language Model (From Scratch)'."""
