# Gather what the study parts found: the claims table (each finding, its statistic, whether it
# holds) for the report. Each study's rule file appends its claims file to CLAIMS_FILES.


rule gather_claims:
    input:
        claims=CLAIMS_FILES,
    output:
        table="results/claims.parquet",
        html=report("results/claims.html", caption="../report/claims.rst", category="Claims"),
    log:
        "logs/gather_claims.log",
    conda:
        "../envs/gnode.yaml"
    params:
        code=CODE["gather_claims"],
    message:
        "Gathering the claims of the study"
    script:
        "../scripts/gather_claims.py"
