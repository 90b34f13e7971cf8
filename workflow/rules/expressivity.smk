# The expressivity study: fit sinusoid targets with autonomous nODE/gnODE classes (one job per
# flow field x gating, all N batched), score them, and draw the figures.

EX_FLOWS = range(len(CFG.expressivity.flows))
EX_GATED = [int(g) for g in CFG.expressivity.gated]
EX_FIGURES = ["heatmaps", "iso", "params", "r2", "examples"]
CLAIMS_FILES.append("results/expressivity/claims.parquet")


rule fit_expressivity:
    output:
        fits="results/expressivity/fits/flow{flow}_gated{gated}.parquet",
    log:
        "logs/fit_expressivity/flow{flow}_gated{gated}.log",
    benchmark:
        "logs/benchmarks/fit_expressivity/flow{flow}_gated{gated}.tsv"
    conda:
        "../envs/gnode.yaml"
    threads: CFG.threads
    resources:
        mem_mb=4000,
        runtime=240,
        gpu=USES_GPU,
    params:
        settings=planned("fit_expressivity", "settings"),
        code=CODE["fit_expressivity"],
    message:
        "Fitting expressivity targets: flow field {wildcards.flow}, gated={wildcards.gated}"
    script:
        "../scripts/fit_expressivity.py"


rule score_expressivity:
    input:
        fits=expand("results/expressivity/fits/flow{flow}_gated{gated}.parquet", flow=EX_FLOWS, gated=EX_GATED),
    output:
        scores="results/expressivity/scores.parquet",
        claims="results/expressivity/claims.parquet",
    log:
        "logs/score_expressivity.log",
    conda:
        "../envs/gnode.yaml"
    params:
        sweep=planned("score_expressivity", "sweep"),
        thresholds=planned("score_expressivity", "thresholds"),
        code=CODE["score_expressivity"],
    message:
        "Scoring the expressivity sweep"
    script:
        "../scripts/score_expressivity.py"


rule examples_expressivity:
    output:
        examples="results/expressivity/examples.parquet",
    log:
        "logs/examples_expressivity.log",
    conda:
        "../envs/gnode.yaml"
    threads: CFG.threads
    resources:
        mem_mb=2000,
        runtime=60,
        gpu=USES_GPU,
    params:
        settings=planned("examples_expressivity", "settings"),
        code=CODE["examples_expressivity"],
    message:
        "Fitting the expressivity example panel"
    script:
        "../scripts/examples_expressivity.py"


rule plot_expressivity:
    input:
        fits=rules.score_expressivity.input.fits,
        scores=rules.score_expressivity.output.scores,
        examples=rules.examples_expressivity.output.examples,
    output:
        heatmaps=report(
            "results/figures/expressivity/heatmaps.png",
            caption="../report/expressivity_heatmaps.rst",
            category="Expressivity",
        ),
        iso=report(
            "results/figures/expressivity/iso.png", caption="../report/expressivity_iso.rst", category="Expressivity"
        ),
        params=report(
            "results/figures/expressivity/params.png",
            caption="../report/expressivity_params.rst",
            category="Expressivity",
        ),
        r2=report(
            "results/figures/expressivity/r2.png", caption="../report/expressivity_r2.rst", category="Expressivity"
        ),
        examples=report(
            "results/figures/expressivity/examples.png",
            caption="../report/expressivity_examples.rst",
            category="Expressivity",
        ),
        pdf=expand("results/figures/expressivity/{name}.pdf", name=EX_FIGURES),
    log:
        "logs/plot_expressivity.log",
    conda:
        "../envs/gnode.yaml"
    params:
        threshold=planned("plot_expressivity", "threshold"),
        code=CODE["plot_expressivity"],
    message:
        "Drawing the expressivity figures"
    script:
        "../scripts/plot_expressivity.py"
