"""Reports read the store and the front; they never see the searcher."""
