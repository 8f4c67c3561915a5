"""What LAM v1 and v2 share: the tokenizer (``text``), the MiniLM stack and checkpoint loading
(``model``), the delta-rule kernels (``kernels``) and the encoder helpers (``encoder``)."""
