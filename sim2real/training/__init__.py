"""The training run behind ``train.py`` (data, model, loop, checkpoints, logs) and sweep summaries."""
