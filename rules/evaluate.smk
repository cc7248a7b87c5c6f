# Held-out evaluation (knowledge domain): filled in by the evaluation stage.


def knowledge_eval_targets():
    return []
