# sorlab: train, evaluate and report SORL and its baselines on OGBench (docs/workflow.md).
#   snakemake --cores all                              the default study (config/config.yaml)
#   snakemake --cores all --configfile config/paper.yaml   the paper's grid
from snakemake.utils import min_version

min_version("9.0")


# A --configfile is a complete scenario (config/*.yaml, config/studies/*.yaml, .test/*.yaml):
# the default study is read only when none is given. Several --configfile are merged in order
# (dictionaries key by key), e.g. a scenario, then the overlay config/overlays/cpu-small.yaml.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


# The rules call `sorlab` from PATH (common.smk adds the venv's bin/ when needed).
envvars:
    "PATH",


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/studies.smk"


rule all:
    input:
        final_targets(),
    default_target: True
