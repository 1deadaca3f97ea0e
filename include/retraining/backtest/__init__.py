"""``make backtest``: replay a model's history through the pipeline's decisions under three policies."""
