"""CIFAR-10 in gray and in colour, explained: the logic behind the DVC stages, one subpackage per job.

    core/      errors, atomic files, params.yaml and its checks, named choices, names, the backend
    data/      download, the archive readers, the train/validation split and grayscale
    training/  the networks, their layers, augmentation, optimizers, schedule, the recipe, resumable training
    explain/   class activation maps, their faithfulness, which images to show, explaining your own images
    study/     metrics, calibration, statistics, test-time augmentation, tables, figures, the write-up
    scale/     data-parallel training, -S grids, Slurm sweeps
    cli.py     the `cifarcam` command: predict, sweep

Importing the package or any subpackage loads no backend: modules that compute with Keras import
it through `cifarcam.core.backend`.
"""
