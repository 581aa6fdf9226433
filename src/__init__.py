"""MAML (Finn et al., 2017) for few-shot Omniglot classification in MindSpore."""
