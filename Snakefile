# SAGAN reproduction workflow: thin rules over the `sagan` CLI (see README, "Workflow").
#   snakemake --cores 2 --configfile config/demo.yaml      # synthetic demo, CPU
#   snakemake --profile workflow/profiles/local            # the paper, one GPU
#   snakemake --profile workflow/profiles/slurm            # the paper, SLURM cluster
from snakemake.utils import min_version, validate

min_version("9.0")

# The paper config is the default; a --configfile replaces it instead of being merged into it.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/runs.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/targets.smk"


# Before any job runs (not in a dry run): stop with one message if a real dataset cannot be fetched.
onstart:
    check_sources_or_stop()


# Every table and figure of the experiment (results/<name>/).
rule all:
    input:
        all_targets(),
