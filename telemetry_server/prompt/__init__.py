"""The natural-language prompt parser: prompts to queries, pure and free of I/O.

`grammar` reads a prompt by rules into a `model.ParsedPrompt`, which `rendering` shows in a `/query`
answer. `plugin` is the package's edge: the seam (`QUERY_PARSER`) through which another parser backs up
or replaces the rules, and the one validation every such parser's answer goes through. `llm` is the pure
half of the parser that asks a language model (the HTTP call is services/llm_prompt_parser.py).
"""
