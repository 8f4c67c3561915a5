"""LAM v2 (encoder kind ``lam2``): MiniLM's softmax attention per window + a gated delta-rule
memory across windows (``model``), its encoder (``encoder``), the document state (``slots``) and
the shipped checkpoint (``weights/``)."""
