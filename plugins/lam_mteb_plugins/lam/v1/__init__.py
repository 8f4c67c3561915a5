"""LAM v1 (encoder kind ``lam``): MiniLM with each softmax attention replaced by a distilled
DeltaNet block (``model``), its encoder (``encoder``), ``lam-mteb distill`` (``distill``), the
sentence-transformers module (``st``) and the shipped checkpoint (``weights/``)."""
