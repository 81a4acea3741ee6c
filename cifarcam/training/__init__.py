"""Training one model: the networks and their layers, augmentation, optimizers and schedule, the
recipe that ties them, bfloat16 where the hardware has it, batches, checkpoints and the fit itself."""
