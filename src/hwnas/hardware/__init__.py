"""Hardware cost: timing models for real, and device profiles (lookup table + predictor)
that carry those timings to machines where the device is not."""
