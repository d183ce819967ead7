"""The command line's parts: its arguments and how results are printed (``cli`` dispatches)."""
