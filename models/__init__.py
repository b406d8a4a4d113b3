"""Learners, fusion transformer, balancing, stacking, patient-wise CV and metrics: pure
computation (arrays and frames in, arrays, frames and dicts out)."""
