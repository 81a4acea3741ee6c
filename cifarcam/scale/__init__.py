"""Beyond one process: data-parallel training over devices and hosts, -S grids, and a grid as a
Slurm array job."""
