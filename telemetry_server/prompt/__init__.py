"""The natural-language prompt parser: prompts to queries by rules, pure and free of I/O."""
