"""The names distillation's options choose from, torch-free: the settings validate a scenario
against them without loading torch, and the code that implements each reads the same tuple."""

AGGREGATIONS = ("max_confidence", "mean", "confidence_weighted", "entropy_reduction")
ENCODINGS = ("float32", "float16", "bfloat16", "topk")  # how values travel (messages.py)
CONFIDENCES = (
    "max_logit", "max_probability", "margin", "entropy", "normalized_logit", "class_prior"
)  # fmt: skip
GATES = ("in_distribution", "energy")  # the registered scores (abstain.py)
