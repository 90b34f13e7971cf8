# gnode: the study of gated neural ODEs as one workflow.
# Reads top to bottom: configuration, rules of each part of the study, the final targets.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/flipflop.smk"
include: "workflow/rules/expressivity.smk"
include: "workflow/rules/realworld.smk"
include: "workflow/rules/trainability.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        final_outputs(),
