"""Research: optimisation, walk-forward validation, Monte Carlo and look-ahead checks.

Modules stay light to import (numpy at most); Optuna and Dask are imported inside the
functions that run a study, so the bot process never loads them until a study runs.
"""
