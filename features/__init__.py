"""Image IO, preprocessing, backbones, batched extraction, the embedding store and demo data."""
