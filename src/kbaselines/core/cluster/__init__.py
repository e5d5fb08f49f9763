"""Running at scale: atomic checkpoints, preemption and requeue, exact resume, DDP and SLURM glue.

Modules (imported one by one, so that light tools such as the SLURM dry run do not load torch):
``checkpoint_io`` (atomic checkpoints), ``resume`` (which checkpoint a fold resumes from),
``requeue`` (preemption signal), ``resumable`` (exact mid-epoch resume), ``fold_plan`` (rank 0
decides), ``run_name`` (one folder per start), ``environment`` (SLURMEnvironment from config),
``performance`` (compile, channels-last), ``hydra_callbacks`` (run folder checked before Hydra
writes, summary after a multirun), ``csv_logger`` (metrics of every start kept), ``dry_run`` (the
sbatch script without a cluster).
"""
