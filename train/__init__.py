"""Training stage: datasets (readers, generators, augmentations, builders), recipes, the trainer."""
